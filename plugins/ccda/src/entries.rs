//! Coded entries to records: problems, medications, allergies, and results
//! and vital signs with their values and reference ranges.

use medmemory_plugin_sdk::parser::{ClinicalRecord, Coding, Quantity, RecordKind, ReferenceRange};
use medmemory_plugin_sdk::text::squash_whitespace;
use medmemory_plugin_sdk::{systems, values};
use roxmltree::Node;

use crate::xml::{child, children, find, is, span, text_of, with_template};
use crate::{SectionKind, XSI};

/// CDA code system OIDs as FHIR URIs.
pub(crate) fn system_uri(oid: &str) -> String {
    match oid {
        "2.16.840.1.113883.6.1" => systems::LOINC.into(),
        "2.16.840.1.113883.6.96" => systems::SNOMED.into(),
        "2.16.840.1.113883.6.88" => systems::RXNORM.into(),
        "2.16.840.1.113883.6.90" => systems::ICD10.into(),
        "2.16.840.1.113883.6.103" => "http://hl7.org/fhir/sid/icd-9-cm".into(),
        "2.16.840.1.113883.12.292" => systems::CVX.into(),
        "2.16.840.1.113883.6.8" => systems::UCUM.into(),
        "" => String::new(),
        other => format!("urn:oid:{other}"),
    }
}

/// A CD/CE element (`code`, `value`) and its translations as codings, plus
/// the best label (displayName, else originalText, else the code).
pub(crate) fn coded(node: Node<'_, '_>) -> (Vec<Coding>, Option<String>) {
    let mut codes = Vec::new();
    for n in std::iter::once(node).chain(children(node, "translation")) {
        if let Some(code) = n.attribute("code") {
            codes.push(Coding::new(
                &system_uri(n.attribute("codeSystem").unwrap_or("")),
                code,
                n.attribute("displayName"),
            ));
        }
    }
    let original = child(node, "originalText")
        .map(|t| squash_whitespace(&text_of(t)))
        .filter(|t| !t.is_empty());
    let label = node
        .attribute("displayName")
        .map(str::to_owned)
        .or(original)
        .or_else(|| codes.iter().find_map(|c| c.display.clone()))
        .or_else(|| codes.first().map(|c| c.code.clone()));
    (codes, label)
}

/// effectiveTime as (start, end): `@value`, or `low`/`high`.
pub(crate) fn times(node: Node<'_, '_>) -> (Option<String>, Option<String>) {
    let Some(time) = child(node, "effectiveTime") else {
        return (None, None);
    };
    if let Some(v) = time.attribute("value") {
        return (values::hl7_timestamp(v), None);
    }
    let at = |name| {
        child(time, name)
            .and_then(|n| n.attribute("value"))
            .and_then(values::hl7_timestamp)
    };
    (at("low"), at("high"))
}

pub(crate) fn status(node: Node<'_, '_>) -> Option<String> {
    child(node, "statusCode")
        .and_then(|s| s.attribute("code"))
        .map(str::to_owned)
}

pub(crate) fn record(
    kind: RecordKind,
    codes: Vec<Coding>,
    label: String,
    entry: Node<'_, '_>,
) -> ClinicalRecord {
    let mut record = ClinicalRecord::new(kind, label).source(span(entry));
    record.codes = codes;
    record
}

pub(crate) fn problem(entry: Node<'_, '_>) -> Option<ClinicalRecord> {
    let concern = find(entry, "act");
    let observation = with_template(entry, "2.16.840.1.113883.10.20.22.4.4")
        .or_else(|| find(entry, "observation"))?;
    let (codes, label) = coded(child(observation, "value")?);
    let (start, end) = times(observation);
    Some(
        record(
            RecordKind::Condition,
            codes,
            label.unwrap_or_else(|| "Problem".into()),
            entry,
        )
        .status(concern.and_then(status).or_else(|| status(observation)))
        .effective(start, end),
    )
}

pub(crate) fn medication(entry: Node<'_, '_>) -> Option<ClinicalRecord> {
    let admin = find(entry, "substanceAdministration")?;
    let material = find(admin, "manufacturedMaterial")?;
    let (codes, label) = coded(child(material, "code")?);
    // The first effectiveTime is the period; a second (PIVL_TS) is the frequency.
    let (start, end) = times(admin);
    let dose = child(admin, "doseQuantity").and_then(|d| {
        let value = d.attribute("value")?;
        Some(
            format!("{value} {}", d.attribute("unit").unwrap_or(""))
                .trim()
                .to_owned(),
        )
    });
    let route = child(admin, "routeCode").and_then(|r| coded(r).1);
    Some(
        record(
            RecordKind::Medication,
            codes,
            label.unwrap_or_else(|| "Medication".into()),
            entry,
        )
        .status(status(admin))
        .effective(start, end)
        .detail("dose", dose)
        .detail("route", route),
    )
}

pub(crate) fn allergy(entry: Node<'_, '_>) -> Option<ClinicalRecord> {
    let concern = find(entry, "act");
    let observation = with_template(entry, "2.16.840.1.113883.10.20.22.4.7")
        .or_else(|| find(entry, "observation"))?;
    let allergen = find(observation, "playingEntity").and_then(|p| child(p, "code"));
    let (codes, label) = allergen.map(coded).unwrap_or_default();
    let reaction = with_template(observation, "2.16.840.1.113883.10.20.22.4.9")
        .and_then(|r| child(r, "value"))
        .and_then(|v| coded(v).1);
    let severity = with_template(observation, "2.16.840.1.113883.10.20.22.4.8")
        .and_then(|r| child(r, "value"))
        .and_then(|v| coded(v).1);
    let (start, _) = times(observation);
    Some(
        record(
            RecordKind::Allergy,
            codes,
            label.unwrap_or_else(|| "Allergy".into()),
            entry,
        )
        .status(concern.and_then(status))
        .effective(start, None)
        .detail("reaction", reaction)
        .detail("severity", severity),
    )
}

pub(crate) fn results(entry: Node<'_, '_>, kind: SectionKind) -> Vec<ClinicalRecord> {
    let panel = find(entry, "organizer")
        .and_then(|o| child(o, "code"))
        .and_then(|c| coded(c).1);
    entry
        .descendants()
        .filter(|n| is(*n, "observation"))
        .filter_map(|observation| {
            let (codes, label) = coded(child(observation, "code")?);
            let (start, end) = times(observation);
            let mut r = record(
                RecordKind::Observation,
                codes,
                label.unwrap_or_else(|| "Result".into()),
                observation,
            )
            .status(status(observation))
            .effective(start, end)
            .detail("panel", panel.clone())
            .detail(
                "category",
                Some(if kind == SectionKind::VitalSigns {
                    "vital-signs"
                } else {
                    "laboratory"
                }),
            );
            r.value = child(observation, "value").and_then(result_value);
            r.interpretation = child(observation, "interpretationCode")
                .and_then(|i| i.attribute("code"))
                .map(str::to_owned);
            r.reference_range = find(observation, "observationRange").and_then(range);
            Some(r)
        })
        .collect()
}

pub(crate) fn result_value(value: Node<'_, '_>) -> Option<Quantity> {
    match value.attribute((XSI, "type")).unwrap_or("") {
        "PQ" | "INT" | "REAL" => Some(Quantity::parse(
            value.attribute("value")?,
            value.attribute("unit"),
        )),
        "CD" | "CE" | "CO" => coded(value).1.map(|l| Quantity::parse(&l, None)),
        _ => {
            let text = squash_whitespace(&text_of(value));
            (!text.is_empty()).then(|| Quantity::parse(&text, None))
        }
    }
}

pub(crate) fn range(observation_range: Node<'_, '_>) -> Option<ReferenceRange> {
    let text = child(observation_range, "text")
        .map(|t| squash_whitespace(&text_of(t)))
        .filter(|t| !t.is_empty());
    let bound = |name| {
        child(observation_range, "value")
            .and_then(|v| child(v, name))
            .and_then(|b| b.attribute("value"))
            .and_then(values::number)
    };
    let (low, high) = (bound("low"), bound("high"));
    match (text, low, high) {
        (Some(text), None, None) => Some(ReferenceRange::parse(&text)),
        (None, None, None) => None,
        (text, low, high) => Some(ReferenceRange { low, high, text }),
    }
}
