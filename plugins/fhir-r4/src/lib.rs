//! The `fhir-r4` parser: FHIR R4 JSON in, clinical records out.
//!
//! Accepts a Bundle (any type, nested Bundles included) or a single resource.
//! Maps Observation (with components), MedicationStatement, MedicationRequest,
//! Condition, AllergyIntolerance and Encounter to records; DocumentReference
//! attachments with inline text become notes and text sections; Patient becomes
//! a short demographics section. Every record keeps the resource id and the
//! byte span of the resource's JSON, so a citation can point into the upload.
//! Other resource types are counted in a warning, never silently dropped.

use std::collections::BTreeMap;

use medmemory_plugin_sdk::parser::{
    ClinicalRecord, Coding, Document, Guest, Parsed, PluginError, PluginInfo, Quantity, RecordKind,
    ReferenceRange, Span, TextSection,
};
use medmemory_plugin_sdk::text;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The largest document this plugin accepts; the host may set a lower cap.
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// Bundles nested deeper than this are refused.
const MAX_BUNDLE_DEPTH: usize = 4;

struct FhirParser;

impl Guest for FhirParser {
    fn describe() -> PluginInfo {
        PluginInfo::parser(
            "fhir-r4",
            env!("CARGO_PKG_VERSION"),
            "FHIR R4 JSON (Bundle or resource): observations, medications, conditions, allergies, encounters, documents.",
            &["application/fhir+json"],
        )
    }

    fn parse(doc: Document) -> Result<Parsed, PluginError> {
        doc.at_most(MAX_BYTES)?;
        parse_json(doc.utf8()?)
    }
}

medmemory_plugin_sdk::parser::export!(FhirParser);

/// Parses a FHIR JSON document.
pub fn parse_json(json: &str) -> Result<Parsed, PluginError> {
    let root: &RawValue = serde_json::from_str(json)
        .map_err(|e| PluginError::invalid(format!("not valid JSON: {e}")))?;
    let mut out = Output::default();
    visit(json, root, &mut out, 0)?;
    let mut warnings = out.warnings;
    for (kind, count) in out.skipped {
        warnings.push(format!("{count} {kind} resource(s) not mapped"));
    }
    Ok(Parsed {
        records: out.records,
        sections: out.sections,
        warnings,
    })
}

#[derive(Default)]
struct Output {
    records: Vec<ClinicalRecord>,
    sections: Vec<TextSection>,
    warnings: Vec<String>,
    skipped: BTreeMap<String, usize>,
}

#[derive(Deserialize)]
struct Bundle<'a> {
    #[serde(borrow, default)]
    entry: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
}

/// Maps one resource (recursing into Bundles). `raw` borrows from `doc`, which
/// gives each resource its byte span.
fn visit(doc: &str, raw: &RawValue, out: &mut Output, depth: usize) -> Result<(), PluginError> {
    let json = raw.get();
    let start = json.as_ptr() as usize - doc.as_ptr() as usize;
    let span = Span::bytes(start, start + json.len());
    let value: Value =
        serde_json::from_str(json).map_err(|e| PluginError::invalid(format!("bad JSON: {e}")))?;
    let Some(resource_type) = value.get("resourceType").and_then(Value::as_str) else {
        return Err(PluginError::invalid(
            "not a FHIR resource: `resourceType` is missing",
        ));
    };
    match resource_type {
        "Bundle" => {
            if depth >= MAX_BUNDLE_DEPTH {
                return Err(PluginError::invalid("Bundles nested too deeply"));
            }
            let bundle: Bundle<'_> = serde_json::from_str(json)
                .map_err(|e| PluginError::invalid(format!("malformed Bundle: {e}")))?;
            for resource in bundle.entry.into_iter().filter_map(|e| e.resource) {
                visit(doc, resource, out, depth + 1)?;
            }
        }
        "Observation" => out.records.extend(observation(&value, span)),
        "MedicationStatement" | "MedicationRequest" => {
            out.records.push(medication(resource_type, &value, span))
        }
        "Condition" => out.records.push(condition(&value, span)),
        "AllergyIntolerance" => out.records.push(allergy(&value, span)),
        "Encounter" => out.records.push(encounter(&value, span)),
        "DocumentReference" => document_reference(&value, span, out),
        "Patient" => out.sections.push(patient(&value, span)),
        other => *out.skipped.entry(other.to_owned()).or_default() += 1,
    }
    Ok(())
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(*key),
        })
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

/// The codings of a CodeableConcept and its best label.
fn concept(v: &Value) -> (Vec<Coding>, Option<String>) {
    let codes: Vec<Coding> = v
        .get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let code = str_at(c, &["code"])?;
            Some(Coding::new(
                str_at(c, &["system"]).unwrap_or(""),
                code,
                str_at(c, &["display"]),
            ))
        })
        .collect();
    let label = str_at(v, &["text"])
        .map(str::to_owned)
        .or_else(|| codes.iter().find_map(|c| c.display.clone()))
        .or_else(|| codes.first().map(|c| c.code.clone()));
    (codes, label)
}

/// The first coding's code of a CodeableConcept at `key`, e.g. a status.
fn concept_code(v: &Value, key: &str) -> Option<String> {
    owned(str_at(v, &[key, "coding", "0", "code"]))
}

fn base(
    kind: RecordKind,
    v: &Value,
    codes: Vec<Coding>,
    label: String,
    span: Span,
) -> ClinicalRecord {
    let mut record = ClinicalRecord::new(kind, label).source(span);
    record.codes = codes;
    record.source_id = owned(str_at(v, &["id"]));
    record
}

/// The value[x] of an Observation or component.
fn value(v: &Value) -> Option<Quantity> {
    if let Some(q) = v.get("valueQuantity") {
        let unit = str_at(q, &["unit"]).or_else(|| str_at(q, &["code"]));
        return q.get("value").and_then(Value::as_f64).map(|n| Quantity {
            value: Some(n),
            text: q.get("value").map(|n| n.to_string()),
            unit: owned(unit),
        });
    }
    if let Some(s) = str_at(v, &["valueString"]) {
        return Some(Quantity::parse(s, None));
    }
    if let Some(c) = v.get("valueCodeableConcept") {
        return concept(c).1.map(|label| Quantity::parse(&label, None));
    }
    if let Some(n) = v.get("valueInteger").and_then(Value::as_i64) {
        return Some(Quantity::number(n as f64, None));
    }
    if let Some(b) = v.get("valueBoolean").and_then(Value::as_bool) {
        return Some(Quantity::parse(if b { "true" } else { "false" }, None));
    }
    None
}

fn reference_range(v: &Value) -> Option<ReferenceRange> {
    let range = v.get("referenceRange")?.get(0)?;
    let low = range
        .get("low")
        .and_then(|q| q.get("value"))
        .and_then(Value::as_f64);
    let high = range
        .get("high")
        .and_then(|q| q.get("value"))
        .and_then(Value::as_f64);
    let text = owned(str_at(range, &["text"])).or_else(|| match (low, high) {
        (Some(l), Some(h)) => Some(format!("{l}-{h}")),
        (None, Some(h)) => Some(format!("<={h}")),
        (Some(l), None) => Some(format!(">={l}")),
        (None, None) => None,
    });
    Some(ReferenceRange { low, high, text })
}

/// effective[x] / onset[x] style times: a dateTime, an instant or a Period.
fn when(v: &Value, prefix: &str) -> (Option<String>, Option<String>) {
    for suffix in ["DateTime", "Instant", "Date"] {
        if let Some(t) = str_at(v, &[&format!("{prefix}{suffix}")]) {
            return (Some(t.to_owned()), None);
        }
    }
    let period = format!("{prefix}Period");
    (
        owned(str_at(v, &[&period, "start"])),
        owned(str_at(v, &[&period, "end"])),
    )
}

fn observation(v: &Value, span: Span) -> Vec<ClinicalRecord> {
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

fn medication(resource_type: &str, v: &Value, span: Span) -> ClinicalRecord {
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

fn condition(v: &Value, span: Span) -> ClinicalRecord {
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

fn allergy(v: &Value, span: Span) -> ClinicalRecord {
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

fn encounter(v: &Value, span: Span) -> ClinicalRecord {
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

fn document_reference(v: &Value, span: Span, out: &mut Output) {
    let title = str_at(v, &["description"])
        .map(str::to_owned)
        .or_else(|| v.get("type").and_then(|t| concept(t).1))
        .unwrap_or_else(|| "Document".into());
    let attachments = v
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for content in attachments {
        let attachment = &content["attachment"];
        let media = str_at(attachment, &["contentType"]).unwrap_or("text/plain");
        let media = media.split(';').next().unwrap_or(media).trim();
        let Some(data) = str_at(attachment, &["data"]) else {
            out.warnings
                .push("a DocumentReference attachment has no inline data".into());
            continue;
        };
        if !matches!(media, "text/plain" | "text/markdown") {
            out.warnings.push(format!(
                "a DocumentReference attachment of type {media} was not indexed"
            ));
            continue;
        }
        let Some(text) = base64(data).and_then(|b| String::from_utf8(b).ok()) else {
            out.warnings
                .push("a DocumentReference attachment is not valid base64 UTF-8 text".into());
            continue;
        };
        let title = str_at(attachment, &["title"]).map_or(title.clone(), str::to_owned);
        let mut note = base(RecordKind::Note, v, Vec::new(), title.clone(), span)
            .status(str_at(v, &["status"]))
            .effective(owned(str_at(v, &["date"])), None);
        if let Some(t) = v.get("type") {
            note.codes = concept(t).0;
        }
        out.records.push(note);
        for section in text::sections(&text) {
            out.sections.push(TextSection {
                title: section.title.or_else(|| Some(title.clone())),
                text: section.text,
                source: span,
            });
        }
    }
}

fn patient(v: &Value, span: Span) -> TextSection {
    let name = v
        .get("name")
        .and_then(|n| n.get(0))
        .map(|n| {
            let given: Vec<&str> = n
                .get("given")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let family = str_at(n, &["family"]).unwrap_or("");
            format!("{} {family}", given.join(" ")).trim().to_owned()
        })
        .unwrap_or_default();
    let mut facts = Vec::new();
    if !name.is_empty() {
        facts.push(format!("Name: {name}."));
    }
    if let Some(birth) = str_at(v, &["birthDate"]) {
        facts.push(format!("Born {birth}."));
    }
    if let Some(gender) = str_at(v, &["gender"]) {
        facts.push(format!("Gender: {gender}."));
    }
    TextSection {
        title: Some("Patient".into()),
        text: facts.join(" "),
        source: span,
    }
}

/// Standard base64 (RFC 4648, padding optional, whitespace ignored).
fn base64(data: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in data.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_text() {
        assert_eq!(base64("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert_eq!(base64("aGk").unwrap(), b"hi");
        assert!(base64("a$b").is_none());
    }

    #[test]
    fn a_single_observation_with_its_span() {
        let json = r#"{"resourceType":"Observation","id":"a1c","status":"final",
            "code":{"coding":[{"system":"http://loinc.org","code":"4548-4","display":"Hemoglobin A1c"}]},
            "valueQuantity":{"value":7.2,"unit":"%"},"effectiveDateTime":"2024-03-05"}"#;
        let parsed = parse_json(json).unwrap();
        let r = &parsed.records[0];
        assert_eq!(r.display, "Hemoglobin A1c");
        assert_eq!(r.value.as_ref().unwrap().value, Some(7.2));
        assert_eq!(r.source.unwrap().end as usize, json.len());
    }

    #[test]
    fn malformed_inputs_are_invalid_input() {
        for bad in [
            "{\"resourceType\":\"Bundle\",\"entry\":[",
            "{\"no\":\"type\"}",
            "[1,2,3]",
            &"[".repeat(10_000),
        ] {
            match parse_json(bad) {
                Err(PluginError::InvalidInput(_)) => {}
                other => panic!("{bad:.40}: {:?}", other.map(|p| p.records.len())),
            }
        }
    }
}
