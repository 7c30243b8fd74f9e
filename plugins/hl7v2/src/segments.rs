//! The segments that become records: `OBX` observations, the `PV1` visit as an
//! encounter, `DG1` diagnoses as conditions and `AL1` allergies.

use medmemory_plugin_sdk::parser::{ClinicalRecord, Coding, Quantity, RecordKind, ReferenceRange};
use medmemory_plugin_sdk::values;

use crate::er7::{Delimiters, Segment, coded, components, repetitions, unescape};

pub(crate) fn observation(
    seg: &Segment<'_>,
    d: Delimiters,
    order_time: Option<String>,
) -> ClinicalRecord {
    let (codes, label) =
        coded(seg.field(3), d).unwrap_or_else(|| (Vec::new(), "Observation".into()));
    let value_type = seg.field(2);
    let values = repetitions(seg.field(5), d);
    let unit = components(seg.field(6), d)
        .into_iter()
        .find(|u| !u.is_empty());
    let value = match value_type {
        // Coded values: their text, not the code.
        "CE" | "CWE" | "CNE" => {
            coded(seg.field(5), d).map(|(_, label)| Quantity::parse(&label, None))
        }
        // Structured numeric: `<^0.5` or `>^200`.
        "SN" => {
            let joined = components(seg.field(5), d).concat();
            Some(Quantity::parse(&joined, unit.as_deref()))
        }
        _ if values.is_empty() => None,
        _ => Some(Quantity::parse(&values.join(" "), unit.as_deref())),
    };
    let range = unescape(seg.field(7), d);
    let mut record = ClinicalRecord::new(RecordKind::Observation, label)
        .status(Some(result_status(seg.field(11))).filter(|s| !s.is_empty()))
        .effective(values::hl7_timestamp(seg.field(14)).or(order_time), None)
        .detail("value-type", Some(value_type))
        .source(seg.span());
    record.codes = codes;
    record.value = value;
    record.reference_range = (!range.trim().is_empty()).then(|| ReferenceRange::parse(&range));
    record.interpretation = repetitions(seg.field(8), d).into_iter().next();
    record
}

/// OBX-11 codes (HL7 table 0085) as FHIR observation statuses.
pub(crate) fn result_status(code: &str) -> String {
    match code {
        "F" => "final",
        "P" => "preliminary",
        "C" => "corrected",
        "X" => "cancelled",
        "R" | "I" | "S" => "registered",
        "" => "",
        other => other,
    }
    .to_owned()
}

pub(crate) fn encounter(seg: &Segment<'_>, d: Delimiters, message_type: &str) -> ClinicalRecord {
    let class = seg.field(2);
    let class_name = match class {
        "I" => "Inpatient",
        "O" => "Outpatient",
        "E" => "Emergency",
        "P" => "Preadmit",
        "R" => "Recurring patient",
        "B" => "Obstetrics",
        _ => "Visit",
    };
    let discharged = message_type == "ADT^A03";
    let label = format!(
        "{class_name} {}",
        if discharged { "discharge" } else { "admission" }
    );
    let location: Vec<String> = components(seg.field(3), d)
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    let mut record = ClinicalRecord::new(RecordKind::Encounter, label)
        .status(Some(if discharged {
            "finished"
        } else {
            "in-progress"
        }))
        .effective(
            values::hl7_timestamp(seg.field(44)),
            values::hl7_timestamp(seg.field(45)),
        )
        .detail("class", Some(class))
        .detail("location", Some(location.join(" ")))
        .detail(
            "attending",
            components(seg.field(7), d).get(1..3).map(|name| {
                name.iter()
                    .rev()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .trim()
                    .to_owned()
            }),
        )
        .source(seg.span());
    record.source_id = components(seg.field(19), d)
        .into_iter()
        .next()
        .filter(|v| !v.is_empty());
    record.codes.push(Coding::new(
        "http://terminology.hl7.org/CodeSystem/v2-0004",
        class,
        Some(class_name),
    ));
    record
}

pub(crate) fn diagnosis(seg: &Segment<'_>, d: Delimiters) -> ClinicalRecord {
    let (codes, label) = coded(seg.field(3), d)
        .or_else(|| Some((Vec::new(), unescape(seg.field(4), d))).filter(|(_, l)| !l.is_empty()))
        .unwrap_or_else(|| (Vec::new(), "Diagnosis".into()));
    let mut record = ClinicalRecord::new(RecordKind::Condition, label)
        .effective(values::hl7_timestamp(seg.field(5)), None)
        .detail("diagnosis-type", Some(seg.field(6)))
        .source(seg.span());
    record.codes = codes;
    record
}

pub(crate) fn allergy(seg: &Segment<'_>, d: Delimiters) -> ClinicalRecord {
    let (codes, label) = coded(seg.field(3), d).unwrap_or_else(|| (Vec::new(), "Allergy".into()));
    let severity = match seg.field(4) {
        "SV" => Some("severe"),
        "MO" => Some("moderate"),
        "MI" => Some("mild"),
        _ => None,
    };
    let mut record = ClinicalRecord::new(RecordKind::Allergy, label)
        .detail("category", coded(seg.field(2), d).map(|(_, l)| l))
        .detail("severity", severity)
        .detail("reaction", Some(repetitions(seg.field(5), d).join(", ")))
        .effective(values::hl7_timestamp(seg.field(6)), None)
        .source(seg.span());
    record.codes = codes;
    record
}
