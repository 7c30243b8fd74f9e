//! The first-party parsers, compiled to components and run in the sandbox on
//! the samples in `tests/samples`: records asserted field by field, sections,
//! warnings, and malformed inputs that must be `plugin_invalid_input`.

use std::sync::Arc;

use medmemory::plugins::document_parser::Parsed;
use medmemory::plugins::types::{ClinicalRecord, RecordKind};
use medmemory::plugins::{Limits, PluginHost, Registry};
use medmemory_tests::{component, sample};

const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";
const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10-cm";

struct Parsers {
    registry: Registry,
    _cache: tempfile::TempDir,
}

impl Parsers {
    fn new() -> Parsers {
        let cache = tempfile::tempdir().unwrap();
        let host = PluginHost::new(Limits {
            fuel: 2_000_000_000,
            memory_bytes: 128 * 1024 * 1024,
            deadline_ms: 10_000,
            max_input_bytes: 4 * 1024 * 1024,
            max_output_bytes: 8 * 1024 * 1024,
            max_records: 20_000,
            max_sections: 5_000,
        })
        .expect("engine");
        let registry = Registry::new(Arc::new(host), cache.path().to_path_buf());
        for name in ["text", "fhir-r4", "hl7v2", "ccda", "pdf"] {
            registry.install(&component(name)).expect(name);
        }
        Parsers {
            registry,
            _cache: cache,
        }
    }

    fn run(&self, plugin: &str, media_type: &str, bytes: &[u8]) -> Result<Parsed, String> {
        let plugin = self
            .registry
            .list()
            .into_iter()
            .find(|p| p.info.name == plugin)
            .expect("installed");
        let ctx = self.registry.host().default_context();
        let (result, _) = self
            .registry
            .host()
            .parse(&plugin.pre, &ctx, media_type, bytes);
        result.map_err(|f| f.code().to_owned())
    }

    fn parse(&self, plugin: &str, media_type: &str, path: &str) -> (Parsed, Vec<u8>) {
        let bytes = sample(path);
        let parsed = self
            .run(plugin, media_type, &bytes)
            .unwrap_or_else(|code| panic!("{path}: {code}"));
        (parsed, bytes)
    }
}

fn find<'a>(parsed: &'a Parsed, display: &str) -> &'a ClinicalRecord {
    parsed
        .records
        .iter()
        .find(|r| r.display == display)
        .unwrap_or_else(|| {
            let all: Vec<&str> = parsed.records.iter().map(|r| r.display.as_str()).collect();
            panic!("no record {display:?} in {all:?}")
        })
}

fn detail<'a>(record: &'a ClinicalRecord, name: &str) -> Option<&'a str> {
    record
        .details
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn code(record: &ClinicalRecord, i: usize) -> (&str, &str) {
    let c = &record.codes[i];
    (c.system.as_str(), c.code.as_str())
}

fn source<'a>(record: &ClinicalRecord, bytes: &'a [u8]) -> &'a str {
    let span = record.source.expect("a source span");
    std::str::from_utf8(&bytes[span.start as usize..span.end as usize]).unwrap()
}

#[test]
fn fhir_bundle_records_field_by_field() {
    let parsers = Parsers::new();
    let (parsed, bytes) = parsers.parse("fhir-r4", "application/fhir+json", "fhir/bundle.json");
    assert_eq!(parsed.records.len(), 9, "{:#?}", parsed.records);
    assert_eq!(
        parsed.warnings,
        vec!["1 Immunization resource(s) not mapped"]
    );

    let a1c = find(&parsed, "Hemoglobin A1c");
    assert!(matches!(a1c.kind, RecordKind::Observation));
    assert_eq!(code(a1c, 0), (LOINC, "4548-4"));
    assert_eq!(a1c.status.as_deref(), Some("final"));
    let value = a1c.value.as_ref().unwrap();
    assert_eq!((value.value, value.unit.as_deref()), (Some(7.2), Some("%")));
    let range = a1c.reference_range.as_ref().unwrap();
    assert_eq!((range.low, range.high), (Some(4.0), Some(5.6)));
    assert_eq!(a1c.interpretation.as_deref(), Some("H"));
    assert_eq!(a1c.effective.as_deref(), Some("2024-03-05T09:30:00Z"));
    assert_eq!(a1c.source_id.as_deref(), Some("obs-a1c"));
    let json: serde_json::Value = serde_json::from_str(source(a1c, &bytes)).unwrap();
    assert_eq!(json["id"], "obs-a1c", "the span is exactly the resource");

    let systolic = find(&parsed, "Systolic blood pressure");
    assert_eq!(code(systolic, 0), (LOINC, "8480-6"));
    let value = systolic.value.as_ref().unwrap();
    assert_eq!(
        (value.value, value.unit.as_deref()),
        (Some(132.0), Some("mmHg"))
    );
    assert_eq!(detail(systolic, "panel"), Some("Blood pressure"));
    assert_eq!(
        find(&parsed, "Diastolic blood pressure")
            .value
            .as_ref()
            .unwrap()
            .value,
        Some(84.0)
    );

    let metformin = find(&parsed, "metformin hydrochloride 500 MG Oral Tablet");
    assert!(matches!(metformin.kind, RecordKind::Medication));
    assert_eq!(code(metformin, 0), (RXNORM, "860975"));
    assert_eq!(metformin.status.as_deref(), Some("active"));
    assert_eq!(metformin.effective.as_deref(), Some("2015-06-01"));
    assert_eq!(
        detail(metformin, "dosage"),
        Some("500 mg twice daily with meals")
    );
    assert_eq!(detail(metformin, "resource"), Some("MedicationStatement"));

    let lisinopril = find(&parsed, "lisinopril 10 MG Oral Tablet");
    assert_eq!(lisinopril.effective.as_deref(), Some("2023-11-20"));
    assert_eq!(detail(lisinopril, "dosage"), Some("10 mg once daily"));
    assert_eq!(detail(lisinopril, "intent"), Some("order"));

    let diabetes = find(&parsed, "Type 2 diabetes");
    assert!(matches!(diabetes.kind, RecordKind::Condition));
    assert_eq!(code(diabetes, 0), (SNOMED, "44054006"));
    assert_eq!(code(diabetes, 1), (ICD10, "E11.9"));
    assert_eq!(diabetes.status.as_deref(), Some("active"));
    assert_eq!(diabetes.effective.as_deref(), Some("2015-05-20"));
    assert_eq!(detail(diabetes, "verification"), Some("confirmed"));

    let penicillin = find(&parsed, "Penicillin");
    assert!(matches!(penicillin.kind, RecordKind::Allergy));
    assert_eq!(code(penicillin, 0), (RXNORM, "7980"));
    assert_eq!(detail(penicillin, "reaction"), Some("Hives"));
    assert_eq!(detail(penicillin, "severity"), Some("moderate"));
    assert_eq!(detail(penicillin, "criticality"), Some("high"));
    assert_eq!(penicillin.effective.as_deref(), Some("2010-02-01"));

    let visit = find(&parsed, "Encounter for check up");
    assert!(matches!(visit.kind, RecordKind::Encounter));
    assert_eq!(visit.status.as_deref(), Some("finished"));
    assert_eq!(visit.effective.as_deref(), Some("2024-03-05T09:00:00Z"));
    assert_eq!(visit.effective_end.as_deref(), Some("2024-03-05T09:40:00Z"));
    assert_eq!(detail(visit, "class"), Some("AMB"));
    assert_eq!(detail(visit, "reason"), Some("Diabetes follow-up"));

    let note = find(&parsed, "Diabetes follow-up note");
    assert!(matches!(note.kind, RecordKind::Note));
    assert_eq!(code(note, 0), (LOINC, "11506-3"));
    let sections: Vec<(Option<&str>, &str)> = parsed
        .sections
        .iter()
        .map(|s| (s.title.as_deref(), s.text.as_str()))
        .collect();
    assert!(
        sections.contains(&(
            Some("Plan"),
            "Continue metformin. Recheck HbA1c in 3 months."
        )),
        "{sections:?}"
    );
    assert!(
        sections.contains(&(
            Some("Patient"),
            "Name: Ada M Example. Born 1961-04-12. Gender: female."
        )),
        "{sections:?}"
    );

    let (single, _) = parsers.parse("fhir-r4", "application/fhir+json", "fhir/observation.json");
    assert_eq!(single.records.len(), 1);
    assert_eq!(single.records[0].display, "Hemoglobin A1c");
}

#[test]
fn hl7_oru_results_field_by_field() {
    let parsers = Parsers::new();
    let (parsed, bytes) = parsers.parse("hl7v2", "application/x-hl7-v2+er7", "hl7/oru_r01.hl7");
    assert_eq!(parsed.records.len(), 6);
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);

    let cholesterol = find(&parsed, "Cholesterol [Mass/volume] in Serum or Plasma");
    assert_eq!(code(cholesterol, 0), (LOINC, "2093-3"));
    let value = cholesterol.value.as_ref().unwrap();
    assert_eq!(
        (value.value, value.unit.as_deref()),
        (Some(212.0), Some("mg/dL"))
    );
    let range = cholesterol.reference_range.as_ref().unwrap();
    assert_eq!(
        (range.low, range.high, range.text.as_deref()),
        (None, Some(200.0), Some("<200"))
    );
    assert_eq!(cholesterol.interpretation.as_deref(), Some("H"));
    assert_eq!(cholesterol.status.as_deref(), Some("final"));
    assert_eq!(
        cholesterol.effective.as_deref(),
        Some("2024-03-05T08:30:00")
    );
    assert!(source(cholesterol, &bytes).starts_with("OBX|1|NM|2093-3^"));

    let hdl = find(&parsed, "HDL Cholesterol");
    assert_eq!(hdl.reference_range.as_ref().unwrap().low, Some(40.0));
    assert_eq!(
        hdl.effective.as_deref(),
        Some("2024-03-05T08:30:00"),
        "OBR-7 when OBX-14 is empty"
    );

    let a1c = find(&parsed, "Hemoglobin A1c/Hemoglobin.total in Blood");
    let value = a1c.value.as_ref().unwrap();
    assert_eq!((value.value, value.unit.as_deref()), (Some(7.2), Some("%")));
    assert_eq!(a1c.reference_range.as_ref().unwrap().high, Some(5.6));

    let comment = find(&parsed, "Service comment");
    let value = comment.value.as_ref().unwrap();
    assert_eq!(
        value.text.as_deref(),
        Some("Result confirmed by repeat analysis"),
        "repetitions joined"
    );
    assert_eq!(value.value, None);

    let color = find(&parsed, "Color of Urine");
    assert_eq!(
        color.value.as_ref().unwrap().text.as_deref(),
        Some("Yellow")
    );
    assert_eq!(color.status.as_deref(), Some("preliminary"));

    assert_eq!(parsed.sections.len(), 1);
    assert_eq!(parsed.sections[0].title.as_deref(), Some("Lipid panel"));
    assert_eq!(
        parsed.sections[0].text, "Fasting sample.\nPatient on statin trial & diet change.",
        "escapes decoded"
    );
}

#[test]
fn hl7_admissions_and_discharges() {
    let parsers = Parsers::new();
    let (admit, _) = parsers.parse("hl7v2", "application/x-hl7-v2+er7", "hl7/adt_a01.hl7");
    assert_eq!(admit.records.len(), 4);
    let stay = find(&admit, "Inpatient admission");
    assert!(matches!(stay.kind, RecordKind::Encounter));
    assert_eq!(stay.status.as_deref(), Some("in-progress"));
    assert_eq!(stay.effective.as_deref(), Some("2024-03-10T07:00:00"));
    assert_eq!(stay.effective_end, None);
    assert_eq!(detail(stay, "location"), Some("4W 412 B CITYHOSP"));
    assert_eq!(detail(stay, "attending"), Some("JOHN SMITH"));
    let diabetes = find(&admit, "Type 2 diabetes mellitus without complications");
    assert!(matches!(diabetes.kind, RecordKind::Condition));
    assert_eq!(code(diabetes, 0), (ICD10, "E11.9"));
    assert_eq!(diabetes.effective.as_deref(), Some("2024-03-10"));
    let allergy = find(&admit, "Penicillin G");
    assert!(matches!(allergy.kind, RecordKind::Allergy));
    assert_eq!(code(allergy, 0), (RXNORM, "7980"));
    assert_eq!(detail(allergy, "severity"), Some("severe"));
    assert_eq!(detail(allergy, "reaction"), Some("Hives, Wheezing"));

    let (discharge, _) = parsers.parse("hl7v2", "application/x-hl7-v2+er7", "hl7/adt_a03.hl7");
    let stay = find(&discharge, "Inpatient discharge");
    assert_eq!(stay.status.as_deref(), Some("finished"));
    assert_eq!(stay.effective_end.as_deref(), Some("2024-03-14T15:30:00"));
    assert_eq!(stay.source_id.as_deref(), Some("V2024031"));
}

#[test]
fn ccda_sections_and_entries_field_by_field() {
    let parsers = Parsers::new();
    let (parsed, bytes) = parsers.parse("ccda", "application/cda+xml", "ccda/ccd.xml");
    assert_eq!(parsed.records.len(), 6, "{:#?}", parsed.records);

    let allergy = find(&parsed, "Penicillin G");
    assert!(matches!(allergy.kind, RecordKind::Allergy));
    assert_eq!(code(allergy, 0), (RXNORM, "7980"));
    assert_eq!(allergy.status.as_deref(), Some("active"));
    assert_eq!(detail(allergy, "reaction"), Some("Hives"));
    assert_eq!(detail(allergy, "severity"), Some("Moderate"));
    assert_eq!(allergy.effective.as_deref(), Some("2010-02-01"));
    assert!(source(allergy, &bytes).starts_with("<entry"));

    let metformin = find(&parsed, "metformin hydrochloride 500 MG Oral Tablet");
    assert_eq!(code(metformin, 0), (RXNORM, "860975"));
    assert_eq!(metformin.effective.as_deref(), Some("2015-06-01"));
    assert_eq!(detail(metformin, "dose"), Some("500 mg"));
    assert_eq!(detail(metformin, "route"), Some("Oral"));

    let diabetes = find(&parsed, "Diabetes mellitus type 2");
    assert!(matches!(diabetes.kind, RecordKind::Condition));
    assert_eq!(code(diabetes, 0), (SNOMED, "44054006"));
    assert_eq!(code(diabetes, 1), (ICD10, "E11.9"));
    assert_eq!(diabetes.status.as_deref(), Some("active"));
    assert_eq!(diabetes.effective.as_deref(), Some("2015-05-20"));

    let a1c = find(&parsed, "Hemoglobin A1c/Hemoglobin.total in Blood");
    let value = a1c.value.as_ref().unwrap();
    assert_eq!((value.value, value.unit.as_deref()), (Some(7.2), Some("%")));
    let range = a1c.reference_range.as_ref().unwrap();
    assert_eq!((range.low, range.high), (Some(4.0), Some(5.6)));
    assert_eq!(a1c.interpretation.as_deref(), Some("H"));
    assert_eq!(a1c.effective.as_deref(), Some("2024-03-05T08:30:00-05:00"));
    assert_eq!(detail(a1c, "panel"), Some("Hemoglobin A1c panel"));
    assert_eq!(detail(a1c, "category"), Some("laboratory"));

    let weight = find(&parsed, "Body weight");
    assert_eq!(weight.value.as_ref().unwrap().value, Some(82.0));
    assert_eq!(detail(weight, "category"), Some("vital-signs"));
    assert_eq!(
        find(&parsed, "Systolic blood pressure")
            .value
            .as_ref()
            .unwrap()
            .unit
            .as_deref(),
        Some("mm[Hg]")
    );

    let sections: Vec<(Option<&str>, &str)> = parsed
        .sections
        .iter()
        .map(|s| (s.title.as_deref(), s.text.as_str()))
        .collect();
    assert_eq!(sections.len(), 6, "{sections:?}");
    assert!(
        sections.contains(&(
            Some("Allergies"),
            "Substance; Reaction; Severity\nPenicillin G; Hives; Moderate"
        )),
        "{sections:?}"
    );
    assert!(
        sections.contains(&(
            Some("Plan of Care"),
            "Recheck HbA1c in three months. Annual retinal screening due in May."
        )),
        "{sections:?}"
    );
}

#[test]
fn pdf_text_layer_by_page_and_scans_warn() {
    let parsers = Parsers::new();
    let (parsed, _) = parsers.parse("pdf", "application/pdf", "pdf/text.pdf");
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let page = |n: u32| -> String {
        parsed
            .sections
            .iter()
            .filter(|s| s.source.page == Some(n))
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        page(1).contains("Amoxicillin 500 mg three times daily"),
        "{:?}",
        parsed.sections
    );
    assert!(
        page(2).contains("Chest X-ray in six weeks"),
        "{:?}",
        parsed.sections
    );
    assert!(!page(1).contains("Chest X-ray"));

    let (scan, _) = parsers.parse("pdf", "application/pdf", "pdf/scanned.pdf");
    assert!(scan.sections.is_empty());
    assert_eq!(scan.warnings.len(), 1);
    assert!(
        scan.warnings[0].contains("no text layer"),
        "{:?}",
        scan.warnings
    );
}

/// Truncated, wrongly encoded, deeply nested or foreign input is the plugin's
/// `plugin_invalid_input`, never a trap or a host failure; oversized input is
/// refused by the host before the call.
#[test]
fn malformed_inputs_are_invalid_input() {
    let parsers = Parsers::new();
    let bundle = sample("fhir/bundle.json");
    let ccd = sample("ccda/ccd.xml");
    let mut latin1 = sample("hl7/adt_a03.hl7");
    latin1.extend_from_slice(b"NTE|1||caf\xe9\n");
    let deep_json = format!(
        "{{\"resourceType\":\"Bundle\",\"entry\":{}",
        "[".repeat(50_000)
    );
    let deep_xml = format!(
        "<ClinicalDocument xmlns=\"urn:hl7-org:v3\">{}",
        "<component>".repeat(50_000)
    );
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "fhir-r4",
            "application/fhir+json",
            bundle[..bundle.len() / 2].to_vec(),
        ),
        ("fhir-r4", "application/fhir+json", deep_json.into_bytes()),
        (
            "fhir-r4",
            "application/fhir+json",
            b"{\"no\":\"resourceType\"}".to_vec(),
        ),
        ("hl7v2", "application/x-hl7-v2+er7", latin1),
        ("hl7v2", "application/x-hl7-v2+er7", b"PID|1||x".to_vec()),
        ("ccda", "application/cda+xml", ccd[..ccd.len() / 2].to_vec()),
        ("ccda", "application/cda+xml", deep_xml.into_bytes()),
        (
            "ccda",
            "application/cda+xml",
            b"<html><body/></html>".to_vec(),
        ),
        (
            "pdf",
            "application/pdf",
            b"%PDF-1.7\n1 0 obj << /Type /Catalog".to_vec(),
        ),
        ("text", "text/plain", vec![0xc3, 0x28]),
    ];
    for (plugin, media_type, bytes) in cases {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
        assert_eq!(
            parsers.run(plugin, media_type, &bytes).err().as_deref(),
            Some("plugin_invalid_input"),
            "{plugin} on {head:?}"
        );
    }
    let huge = vec![b'a'; 4 * 1024 * 1024 + 1];
    assert_eq!(
        parsers.run("text", "text/plain", &huge).err().as_deref(),
        Some("plugin_input_too_large")
    );
}
