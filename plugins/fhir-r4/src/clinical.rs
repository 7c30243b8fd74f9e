//! The clinical resources: Observation (with components), MedicationStatement
//! and MedicationRequest, Condition, AllergyIntolerance and Encounter, each
//! to records that keep the resource id and its byte span.

use medmemory_plugin_sdk::parser::{ClinicalRecord, Coding, RecordKind, Span};
use serde_json::Value;

use crate::json::{base, concept, concept_code, owned, reference_range, str_at, value, when};

pub(crate) fn observation(v: &Value, span: Span) -> Vec<ClinicalRecord> {
    let (codes, label) = concept(&v["code"]);
    let label = label.unwrap_or_else(|| "Observation".into());
    let (mut start, end) = when(v, "effective");
    if start.is_none() {
        start = owned(str_at(v, &["issued"]));
    }
    let fill = |mut record: ClinicalRecord, item: &Value| {
        record.status = owned(str_at(v, &["status"]));
        record.value = value(item);
        record.reference_range = reference_range(item);
        record.interpretation = concept_code(item, "interpretation").or_else(|| {
            owned(str_at(
                item,
                &["interpretation", "0", "coding", "0", "code"],
            ))
        });
        record.effective = start.clone();
        record.effective_end = end.clone();
        record
    };
    let components = v.get("component").and_then(Value::as_array);
    match components {
        Some(parts) if !parts.is_empty() && value(v).is_none() => parts
            .iter()
            .map(|part| {
                let (codes, part_label) = concept(&part["code"]);
                let record = base(
                    RecordKind::Observation,
                    v,
                    codes,
                    part_label.unwrap_or_else(|| label.clone()),
                    span,
                )
                .detail("panel", Some(label.clone()));
                fill(record, part)
            })
            .collect(),
        _ => vec![fill(
            base(RecordKind::Observation, v, codes, label, span),
            v,
        )],
    }
}

pub(crate) fn medication(resource_type: &str, v: &Value, span: Span) -> ClinicalRecord {
    let (codes, label) = match v.get("medicationCodeableConcept") {
        Some(c) => concept(c),
        None => (
            Vec::new(),
            owned(str_at(v, &["medicationReference", "display"])),
        ),
    };
    let (mut start, end) = when(v, "effective");
    if start.is_none() {
        start = owned(str_at(v, &["authoredOn"]));
    }
    let dosage = str_at(v, &["dosage", "0", "text"])
        .or_else(|| str_at(v, &["dosageInstruction", "0", "text"]));
    base(
        RecordKind::Medication,
        v,
        codes,
        label.unwrap_or_else(|| "Medication".into()),
        span,
    )
    .status(str_at(v, &["status"]))
    .effective(start, end)
    .detail("dosage", dosage)
    .detail("intent", str_at(v, &["intent"]))
    .detail("resource", Some(resource_type))
}

pub(crate) fn condition(v: &Value, span: Span) -> ClinicalRecord {
    let (codes, label) = concept(&v["code"]);
    let (mut start, _) = when(v, "onset");
    if start.is_none() {
        start = owned(str_at(v, &["recordedDate"]));
    }
    let (end, _) = when(v, "abatement");
    let category = str_at(v, &["category", "0", "coding", "0", "code"]);
    base(
        RecordKind::Condition,
        v,
        codes,
        label.unwrap_or_else(|| "Condition".into()),
        span,
    )
    .status(concept_code(v, "clinicalStatus"))
    .effective(start, end)
    .detail("verification", concept_code(v, "verificationStatus"))
    .detail("category", category)
}

pub(crate) fn allergy(v: &Value, span: Span) -> ClinicalRecord {
    let (codes, label) = concept(&v["code"]);
    let (mut start, _) = when(v, "onset");
    if start.is_none() {
        start = owned(str_at(v, &["recordedDate"]));
    }
    let reactions: Vec<String> = v
        .get("reaction")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|r| {
            r.get("manifestation")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|m| concept(m).1)
        .collect();
    base(
        RecordKind::Allergy,
        v,
        codes,
        label.unwrap_or_else(|| "Allergy".into()),
        span,
    )
    .status(concept_code(v, "clinicalStatus"))
    .effective(start, None)
    .detail(
        "reaction",
        (!reactions.is_empty()).then(|| reactions.join(", ")),
    )
    .detail("severity", str_at(v, &["reaction", "0", "severity"]))
    .detail("criticality", str_at(v, &["criticality"]))
    .detail("category", str_at(v, &["category", "0"]))
}

pub(crate) fn encounter(v: &Value, span: Span) -> ClinicalRecord {
    let (mut codes, label) = v
        .get("type")
        .and_then(|t| t.get(0))
        .map(concept)
        .unwrap_or_default();
    let class = v.get("class");
    if let Some(code) = class.and_then(|c| str_at(c, &["code"])) {
        codes.push(Coding::new(
            str_at(class.unwrap_or(&Value::Null), &["system"]).unwrap_or(""),
            code,
            class.and_then(|c| str_at(c, &["display"])),
        ));
    }
    let label = label
        .or_else(|| class.and_then(|c| owned(str_at(c, &["display"]))))
        .unwrap_or_else(|| "Encounter".into());
    let reason = v
        .get("reasonCode")
        .and_then(|r| r.get(0))
        .and_then(|c| concept(c).1);
    base(RecordKind::Encounter, v, codes, label, span)
        .status(str_at(v, &["status"]))
        .effective(
            owned(str_at(v, &["period", "start"])),
            owned(str_at(v, &["period", "end"])),
        )
        .detail("class", class.and_then(|c| str_at(c, &["code"])))
        .detail("reason", reason)
}
