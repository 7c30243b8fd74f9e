//! The `fhir-r4` parser: FHIR R4 JSON in, clinical records out.
//!
//! Accepts a Bundle (any type, nested Bundles included) or a single resource.
//! Maps Observation (with components), MedicationStatement, MedicationRequest,
//! Condition, AllergyIntolerance and Encounter to records; DocumentReference
//! attachments with inline text become notes and text sections; Patient becomes
//! a short demographics section. Every record keeps the resource id and the
//! byte span of the resource's JSON, so a citation can point into the upload.
//! Other resource types are counted in a warning, never silently dropped.

mod clinical;
mod documents;
mod json;

use std::collections::BTreeMap;

use clinical::{allergy, condition, encounter, medication, observation};
use documents::{document_reference, patient};
use medmemory_plugin_sdk::parser::{
    ClinicalRecord, Document, Guest, Parsed, PluginError, PluginInfo, Span, TextSection,
};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The largest document this plugin accepts; the host may set a lower cap.
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// Bundles nested deeper than this are refused.
const MAX_BUNDLE_DEPTH: usize = 4;

/// The parser; public so that native fuzz targets call it as the host does.
pub struct FhirParser;

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

// Exported from the component only: a native build (fuzz targets, tests)
// links no component export names.
#[cfg(target_arch = "wasm32")]
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

/// What the resources of a document map to, so far.
#[derive(Default)]
pub(crate) struct Output {
    pub(crate) records: Vec<ClinicalRecord>,
    pub(crate) sections: Vec<TextSection>,
    pub(crate) warnings: Vec<String>,
    pub(crate) skipped: BTreeMap<String, usize>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::base64;

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
