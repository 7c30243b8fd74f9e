//! A patient's memory as a FHIR R4 `Bundle` (type `collection`): the Patient
//! first, then one resource per record: Observation, MedicationStatement,
//! Condition, AllergyIntolerance, Encounter, DocumentReference (notes).
//!
//! Required elements are always present (statuses fall back to `unknown`
//! where the value set has it), codes keep their systems, and times are
//! written as FHIR dateTime (or instant, where R4 demands one).
//!
//! Domain: uses `db` (patients and records); `http` serves the result.

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::db::patients::Patient;
use crate::db::records::{Record, RecordFields, effective_instant};

const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const ALLERGY_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";

/// The bundle of a patient and their records.
pub fn bundle(patient: &Patient, records: &[Record], at: DateTime<Utc>) -> Value {
    let subject = json!({ "reference": format!("urn:uuid:{}", patient.id) });
    let mut entries = vec![entry(&patient.id.to_string(), patient_resource(patient))];
    for record in records {
        let resource = record_resource(record, &subject);
        entries.push(entry(&record.id.to_string(), resource));
    }
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "entry": entries,
    })
}

fn entry(id: &str, resource: Value) -> Value {
    json!({ "fullUrl": format!("urn:uuid:{id}"), "resource": resource })
}

fn patient_resource(patient: &Patient) -> Value {
    let mut resource = json!({
        "resourceType": "Patient",
        "id": patient.id.to_string(),
        "name": [{ "family": patient.family_name, "given": [patient.given_name] }],
        "gender": patient.sex,
        "birthDate": patient.birth_date.format("%Y-%m-%d").to_string(),
    });
    if let Some(mrn) = &patient.mrn {
        resource["identifier"] = json!([{
            "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR" }] },
            "system": format!("urn:medmemory:clinic:{}:mrn", patient.clinic_id),
            "value": mrn,
        }]);
    }
    resource
}

/// A FHIR dateTime for a clinical time: the original text when it already is
/// one, else the instant it denotes, else nothing.
fn date_time(text: Option<&str>) -> Option<String> {
    let text = text?.trim();
    let partial_date = match text.len() {
        4 => NaiveDate::parse_from_str(&format!("{text}-01-01"), "%Y-%m-%d").is_ok(),
        7 => NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").is_ok(),
        10 => NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
        _ => false,
    };
    if partial_date || DateTime::parse_from_rfc3339(text).is_ok() {
        return Some(text.to_owned());
    }
    effective_instant(text).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn concept(fields: &RecordFields) -> Value {
    let codings: Vec<Value> = fields
        .codes
        .iter()
        .map(|c| {
            let mut coding = json!({ "system": c.system, "code": c.code });
            if let Some(display) = &c.display {
                coding["display"] = json!(display);
            }
            coding
        })
        .collect();
    let mut concept = json!({ "text": fields.display });
    if !codings.is_empty() {
        concept["coding"] = Value::Array(codings);
    }
    concept
}

fn detail<'a>(fields: &'a RecordFields, name: &str) -> Option<&'a str> {
    fields
        .details
        .iter()
        .find(|d| d.name == name)
        .map(|d| d.value.as_str())
}

fn one_of(value: Option<&str>, allowed: &[&str]) -> Option<String> {
    let value = value?.trim().to_ascii_lowercase();
    allowed.contains(&value.as_str()).then_some(value)
}

/// Sets `<prefix>DateTime` or `<prefix>Period` from the record's times.
fn timing(resource: &mut Map<String, Value>, fields: &RecordFields, prefix: &str) {
    let start = date_time(fields.effective.as_deref());
    let end = date_time(fields.effective_end.as_deref());
    match (start, end) {
        (Some(start), None) => {
            resource.insert(format!("{prefix}DateTime"), json!(start));
        }
        (start, Some(end)) => {
            let mut period = Map::new();
            if let Some(start) = start {
                period.insert("start".into(), json!(start));
            }
            period.insert("end".into(), json!(end));
            resource.insert(format!("{prefix}Period"), Value::Object(period));
        }
        (None, None) => {}
    }
}

fn record_resource(record: &Record, subject: &Value) -> Value {
    let f = &record.fields;
    let mut r = Map::new();
    r.insert("id".into(), json!(record.id.to_string()));
    match f.kind.as_str() {
        "observation" => {
            r.insert("resourceType".into(), json!("Observation"));
            let status = one_of(
                f.status.as_deref(),
                &[
                    "registered",
                    "preliminary",
                    "final",
                    "amended",
                    "corrected",
                    "cancelled",
                    "entered-in-error",
                    "unknown",
                ],
            );
            r.insert("status".into(), json!(status.unwrap_or("unknown".into())));
            r.insert("code".into(), concept(f));
            r.insert("subject".into(), subject.clone());
            timing(&mut r, f, "effective");
            if let Some(value) = &f.value {
                match value.value {
                    Some(number) => {
                        let mut quantity = json!({ "value": number });
                        if let Some(unit) = &value.unit {
                            quantity["unit"] = json!(unit);
                        }
                        r.insert("valueQuantity".into(), quantity);
                    }
                    None => {
                        if let Some(text) = &value.text {
                            r.insert("valueString".into(), json!(text));
                        }
                    }
                }
            }
            if let Some(range) = &f.reference_range {
                let mut out = Map::new();
                if let Some(low) = range.low {
                    out.insert("low".into(), json!({ "value": low }));
                }
                if let Some(high) = range.high {
                    out.insert("high".into(), json!({ "value": high }));
                }
                if let Some(text) = &range.text {
                    out.insert("text".into(), json!(text));
                }
                if !out.is_empty() {
                    r.insert("referenceRange".into(), json!([Value::Object(out)]));
                }
            }
            if let Some(flag) = &f.interpretation {
                r.insert(
                    "interpretation".into(),
                    json!([{ "coding": [{ "system": INTERPRETATION, "code": flag }], "text": flag }]),
                );
            }
        }
        "medication" => {
            r.insert("resourceType".into(), json!("MedicationStatement"));
            let status = one_of(
                f.status.as_deref(),
                &[
                    "active",
                    "completed",
                    "entered-in-error",
                    "intended",
                    "stopped",
                    "on-hold",
                    "unknown",
                    "not-taken",
                ],
            );
            r.insert("status".into(), json!(status.unwrap_or("unknown".into())));
            r.insert("medicationCodeableConcept".into(), concept(f));
            r.insert("subject".into(), subject.clone());
            timing(&mut r, f, "effective");
            if let Some(dosage) = detail(f, "dosage") {
                r.insert("dosage".into(), json!([{ "text": dosage }]));
            }
        }
        "condition" => {
            r.insert("resourceType".into(), json!("Condition"));
            if let Some(status) = one_of(
                f.status.as_deref(),
                &[
                    "active",
                    "recurrence",
                    "relapse",
                    "inactive",
                    "remission",
                    "resolved",
                ],
            ) {
                r.insert(
                    "clinicalStatus".into(),
                    json!({ "coding": [{ "system": CONDITION_CLINICAL, "code": status }] }),
                );
            }
            r.insert("code".into(), concept(f));
            r.insert("subject".into(), subject.clone());
            if let Some(onset) = date_time(f.effective.as_deref()) {
                r.insert("onsetDateTime".into(), json!(onset));
            }
            if let Some(end) = date_time(f.effective_end.as_deref()) {
                r.insert("abatementDateTime".into(), json!(end));
            }
        }
        "allergy" => {
            r.insert("resourceType".into(), json!("AllergyIntolerance"));
            if let Some(status) = one_of(f.status.as_deref(), &["active", "inactive", "resolved"]) {
                r.insert(
                    "clinicalStatus".into(),
                    json!({ "coding": [{ "system": ALLERGY_CLINICAL, "code": status }] }),
                );
            }
            r.insert("code".into(), concept(f));
            r.insert("patient".into(), subject.clone());
            if let Some(onset) = date_time(f.effective.as_deref()) {
                r.insert("onsetDateTime".into(), json!(onset));
            }
            if let Some(c) = one_of(
                detail(f, "criticality"),
                &["low", "high", "unable-to-assess"],
            ) {
                r.insert("criticality".into(), json!(c));
            }
            if let Some(reaction) = detail(f, "reaction") {
                let mut out = json!({ "manifestation": [{ "text": reaction }] });
                if let Some(s) = one_of(detail(f, "severity"), &["mild", "moderate", "severe"]) {
                    out["severity"] = json!(s);
                }
                r.insert("reaction".into(), json!([out]));
            }
        }
        "encounter" => {
            r.insert("resourceType".into(), json!("Encounter"));
            let status = one_of(
                f.status.as_deref(),
                &[
                    "planned",
                    "arrived",
                    "triaged",
                    "in-progress",
                    "onleave",
                    "finished",
                    "cancelled",
                    "entered-in-error",
                    "unknown",
                ],
            );
            r.insert("status".into(), json!(status.unwrap_or("unknown".into())));
            let class = detail(f, "class").unwrap_or("AMB");
            r.insert("class".into(), json!({ "system": ACT_CODE, "code": class }));
            // The class is also among the codes when it came from FHIR; the
            // type keeps the others.
            let mut typed = f.clone();
            typed.codes.retain(|c| c.system != ACT_CODE);
            r.insert("type".into(), json!([concept(&typed)]));
            r.insert("subject".into(), subject.clone());
            let start = date_time(f.effective.as_deref());
            let end = date_time(f.effective_end.as_deref());
            if start.is_some() || end.is_some() {
                let mut period = Map::new();
                if let Some(start) = start {
                    period.insert("start".into(), json!(start));
                }
                if let Some(end) = end {
                    period.insert("end".into(), json!(end));
                }
                r.insert("period".into(), Value::Object(period));
            }
            if let Some(reason) = detail(f, "reason") {
                r.insert("reasonCode".into(), json!([{ "text": reason }]));
            }
        }
        _ => {
            r.insert("resourceType".into(), json!("DocumentReference"));
            r.insert("status".into(), json!("current"));
            if !f.codes.is_empty() {
                r.insert("type".into(), concept(f));
            }
            r.insert("subject".into(), subject.clone());
            // DocumentReference.date is an instant: full time with a zone.
            if let Some(at) = record.effective_at {
                r.insert(
                    "date".into(),
                    json!(at.to_rfc3339_opts(SecondsFormat::Secs, true)),
                );
            }
            r.insert("description".into(), json!(f.display));
            let text = detail(f, "text").unwrap_or(&f.display);
            let data = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
            r.insert(
                "content".into(),
                json!([{ "attachment": { "contentType": "text/plain", "data": data, "title": f.display } }]),
            );
        }
    }
    Value::Object(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clinical_times_become_fhir_date_times() {
        assert_eq!(date_time(Some("2024-03-05")).as_deref(), Some("2024-03-05"));
        assert_eq!(date_time(Some("2024")).as_deref(), Some("2024"));
        assert_eq!(
            date_time(Some("202403051030")).as_deref(),
            Some("2024-03-05T10:30:00Z")
        );
        assert_eq!(
            date_time(Some("2024-03-05T10:30:00+02:00")).as_deref(),
            Some("2024-03-05T10:30:00+02:00")
        );
        assert_eq!(date_time(Some("soon")), None);
    }
}
