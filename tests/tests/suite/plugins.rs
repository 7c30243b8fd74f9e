//! The sandbox with compiled components: the `text` parser, the hostile test
//! plugins, the contract-version plugins and the three scaffolds that
//! `cargo xtask plugin new` generates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use medmemory::plugins::clinical_rules::{HookRequest, PatientRecord};
use medmemory::plugins::evidence_retriever::{Evidence, Query};
use medmemory::plugins::records::StoredRecord;
use medmemory::plugins::search::Hit;
use medmemory::plugins::types::{ClinicalRecord, Coding, Quantity, RecordKind};
use medmemory::plugins::{
    CacheStats, CallContext, FixtureMemory, Kind, Limits, PluginHost, Registry,
};
use medmemory_tests::component;

fn limits(fuel: u64, memory_mib: usize, deadline_ms: u64) -> Limits {
    Limits {
        fuel,
        memory_bytes: memory_mib * 1024 * 1024,
        deadline_ms,
        max_input_bytes: 1024 * 1024,
        max_output_bytes: 1024 * 1024,
        max_records: 20_000,
        max_sections: 5_000,
    }
}

fn registry(limits: Limits, cache: &std::path::Path) -> Registry {
    let host = PluginHost::new(limits).expect("engine");
    Registry::new(Arc::new(host), cache.to_path_buf())
}

fn ctx(registry: &Registry) -> CallContext {
    registry.host().default_context()
}

#[test]
fn text_plugin_parses_sections_with_spans() {
    let bytes = component("text");
    let cache = tempfile::tempdir().unwrap();
    let registry = registry(limits(1_000_000_000, 64, 5000), cache.path());
    let plugin = registry.install(&bytes).expect("install");
    assert_eq!(plugin.info.name, "text");
    assert_eq!(plugin.info.kind, Kind::Parser);
    assert_eq!(plugin.info.wit_version, "0.2.0");
    assert_eq!(plugin.info.id.len(), 64);
    assert!(plugin.info.media_types.iter().any(|m| m == "text/plain"));

    let doc = "# Plan\nStart metformin.\n\nRecheck in 3 months.\n";
    let (parsed, outcome) =
        registry
            .host()
            .parse(&plugin.pre, &ctx(&registry), "text/plain", doc.as_bytes());
    let parsed = parsed.expect("parse");
    let sections: Vec<(Option<&str>, &str)> = parsed
        .sections
        .iter()
        .map(|s| (s.title.as_deref(), s.text.as_str()))
        .collect();
    assert_eq!(
        sections,
        vec![
            (Some("Plan"), "Start metformin."),
            (Some("Plan"), "Recheck in 3 months.")
        ]
    );
    let span = &parsed.sections[1].source;
    assert_eq!(
        &doc[span.start as usize..span.end as usize],
        "Recheck in 3 months."
    );
    assert!(outcome.fuel_used > 0);
    assert!(outcome.peak_memory_bytes > 0);

    // Invalid UTF-8 is the plugin's own invalid-input error, not a host failure.
    let (result, _) = registry.host().parse(
        &plugin.pre,
        &ctx(&registry),
        "text/plain",
        &[0xff, 0xfe, 0x00],
    );
    assert_eq!(result.unwrap_err().code(), "plugin_invalid_input");

    // Input over the limit is refused before the call.
    let big = vec![b'a'; 1024 * 1024 + 1];
    let (result, outcome) = registry
        .host()
        .parse(&plugin.pre, &ctx(&registry), "text/plain", &big);
    assert_eq!(result.unwrap_err().code(), "plugin_input_too_large");
    assert_eq!(outcome.fuel_used, 0);

    // Compiled once: a second registry over the same cache loads, not compiles,
    // and a precompiled artefact is never accepted as an upload.
    let cached: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1);
    assert_eq!(
        registry.cache_stats(),
        CacheStats {
            compiled: 1,
            loaded: 0
        }
    );
    let second = registry_again(cache.path());
    let started = Instant::now();
    let again = second.install(&bytes).expect("install from cache");
    let cached_load = started.elapsed();
    assert_eq!(again.info.id, plugin.info.id);
    assert_eq!(
        second.cache_stats(),
        CacheStats {
            compiled: 0,
            loaded: 1
        },
        "the second install must load the cached code, not compile"
    );
    let precompiled = std::fs::read(&cached[0]).unwrap();
    assert_eq!(
        registry_again(cache.path())
            .install(&precompiled)
            .err()
            .map(|e| e.code()),
        Some("plugin_not_a_component")
    );
    eprintln!("cached load of text.wasm: {cached_load:?}");
}

fn registry_again(cache: &std::path::Path) -> Registry {
    registry(limits(1_000_000_000, 64, 5000), cache)
}

#[test]
fn non_components_are_refused() {
    let cache = tempfile::tempdir().unwrap();
    let registry = registry(limits(1000, 16, 100), cache.path());
    for bytes in [&b"\0asm\x01\x00\x00\x00"[..], b"hello", b""] {
        assert_eq!(
            registry.install(bytes).err().map(|e| e.code()),
            Some("plugin_not_a_component")
        );
    }
    assert!(registry.list().is_empty());
}

/// Each hostile component is refused at install or fails its own call with its
/// stable code, within its budget; the good plugin answers right after each.
#[test]
fn hostile_plugins_fail_alone_with_stable_codes() {
    let cache = tempfile::tempdir().unwrap();
    let registry = registry(limits(200_000_000, 32, 2000), cache.path());
    let good = registry.install(&component("text")).expect("install text");

    for (name, code) in [
        ("filesystem", "plugin_forbidden_import"),
        ("sockets", "plugin_forbidden_import"),
    ] {
        let error = registry
            .install(&component(name))
            .err()
            .unwrap_or_else(|| panic!("{name} installed"));
        assert_eq!(error.code(), code, "{name}: {error}");
    }
    assert_eq!(registry.list().len(), 1, "a refused plugin left a trace");

    let failing = [
        ("loop", "plugin_fuel_exhausted"),
        ("memory-bomb", "plugin_memory_exceeded"),
        ("recursion", "plugin_trapped"),
        ("panic", "plugin_trapped"),
        ("huge-output", "plugin_output_too_large"),
    ];
    for (name, code) in failing {
        let plugin = registry
            .install(&component(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let started = Instant::now();
        let (result, _) = registry.host().parse(
            &plugin.pre,
            &ctx(&registry),
            "application/x-hostile",
            b"input",
        );
        let elapsed = started.elapsed();
        let failure = result.err().unwrap_or_else(|| panic!("{name} succeeded"));
        assert_eq!(failure.code(), code, "{name}: {failure}");
        assert!(
            elapsed < Duration::from_secs(3),
            "{name} ran {elapsed:?}, past its budget"
        );

        let (ok, _) = registry.host().parse(
            &good.pre,
            &ctx(&registry),
            "text/plain",
            b"Plan:\nWalk daily.\n",
        );
        assert_eq!(ok.expect("the good plugin still answers").sections.len(), 1);
    }
}

/// With fuel to spare, the epoch deadline is what stops a runaway plugin.
#[test]
fn the_deadline_stops_a_loop_that_fuel_would_not() {
    let cache = tempfile::tempdir().unwrap();
    let registry = registry(limits(u64::MAX, 32, 300), cache.path());
    let plugin = registry.install(&component("loop")).expect("install");
    let started = Instant::now();
    let (result, _) =
        registry
            .host()
            .parse(&plugin.pre, &ctx(&registry), "application/x-hostile", b"x");
    assert_eq!(result.unwrap_err().code(), "plugin_deadline_exceeded");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
}

/// Output is capped by count as well as by bytes: fifty thousand
/// one-character records are small in bytes but each would be a row and an
/// embedding.
#[test]
fn a_flood_of_tiny_records_hits_the_record_cap() {
    let cache = tempfile::tempdir().unwrap();
    let mut capped = limits(2_000_000_000, 128, 10_000);
    capped.max_records = 10_000;
    let registry = registry(capped, cache.path());
    let plugin = registry
        .install(&component("record-flood"))
        .expect("install");
    let (result, _) =
        registry
            .host()
            .parse(&plugin.pre, &ctx(&registry), "application/x-hostile", b"x");
    assert_eq!(result.unwrap_err().code(), "plugin_output_too_large");

    // Under a higher cap the same output passes: the count is what failed.
    let mut roomy = capped;
    roomy.max_records = 50_000;
    let registry = self::registry(roomy, cache.path());
    let plugin = registry
        .install(&component("record-flood"))
        .expect("install");
    let (result, _) =
        registry
            .host()
            .parse(&plugin.pre, &ctx(&registry), "application/x-hostile", b"x");
    assert_eq!(result.expect("within the cap").records.len(), 50_000);
}

/// A plugin that sleeps (a monotonic-clock timer and `wasi:io/poll`) gets
/// every sleep back at once, so its loop meets fuel or the deadline like any
/// other loop instead of holding the host in a sleep no limit applies to.
#[test]
fn a_sleeping_plugin_is_stopped_by_its_limits() {
    let cache = tempfile::tempdir().unwrap();
    let registry = registry(limits(u64::MAX, 32, 500), cache.path());
    let plugin = registry.install(&component("sleep")).expect("install");
    let started = Instant::now();
    let (result, _) =
        registry
            .host()
            .parse(&plugin.pre, &ctx(&registry), "application/x-hostile", b"x");
    let elapsed = started.elapsed();
    assert_eq!(result.unwrap_err().code(), "plugin_deadline_exceeded");
    // An honoured sleep would take an hour; the bound is loose so that a
    // loaded machine does not fail a correctness test on timing.
    assert!(elapsed < Duration::from_secs(10), "slept {elapsed:?}");

    // With a fuel budget, the loop of sleeps burns it like any loop.
    let registry = registry_with_fuel(cache.path());
    let plugin = registry.install(&component("sleep")).expect("install");
    let (result, _) =
        registry
            .host()
            .parse(&plugin.pre, &ctx(&registry), "application/x-hostile", b"x");
    assert_eq!(result.unwrap_err().code(), "plugin_fuel_exhausted");
}

fn registry_with_fuel(cache: &std::path::Path) -> Registry {
    registry(limits(2_000_000, 32, 60_000), cache)
}

/// `medmemory plugin run` of a sleeping plugin reports the failure; it used to
/// panic with "Cannot start a runtime from within a runtime".
#[test]
fn plugin_run_reports_a_sleeping_plugin_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("sleep.wasm");
    let input = dir.path().join("input.bin");
    std::fs::write(&wasm, component("sleep")).unwrap();
    std::fs::write(&input, b"x").unwrap();
    let started = Instant::now();
    let output = std::process::Command::new(medmemory_tests::binary())
        .args(["plugin", "run", "--deadline-ms", "500"])
        .arg(&wasm)
        .arg("--input")
        .arg(&input)
        .args(["--media-type", "application/x-hostile"])
        .env("MEDMEMORY_DATA_DIR", dir.path().join("data"))
        .output()
        .expect("run medmemory");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!output.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let code = report["error"][0].as_str().unwrap_or_default();
    assert!(
        code == "plugin_deadline_exceeded" || code == "plugin_fuel_exhausted",
        "{report}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A plugin built against 0.2.9 runs on this 0.2.0 host, and so does one
/// built against the previous contract (0.1.0); one built against 0.3.0 is
/// refused with a message that says what the host accepts.
#[test]
fn semver_compatible_contracts_are_accepted_and_others_refused() {
    let cache = tempfile::tempdir().unwrap();
    let registry = registry(limits(100_000_000, 32, 2000), cache.path());
    for (name, version) in [("contract-minor", "0.2.9"), ("contract-legacy", "0.1.0")] {
        let plugin = registry
            .install(&component(name))
            .unwrap_or_else(|e| panic!("{version} installs: {e}"));
        assert_eq!(plugin.info.wit_version, version);
        assert_eq!(plugin.info.kind, Kind::Parser);
        let (parsed, _) = registry.host().parse(
            &plugin.pre,
            &ctx(&registry),
            &format!("application/x-{name}"),
            b"12345",
        );
        assert_eq!(
            parsed
                .unwrap_or_else(|e| panic!("{version} parses: {e}"))
                .sections[0]
                .text,
            "5 bytes"
        );
    }

    let error = registry
        .install(&component("contract-major"))
        .err()
        .expect("0.3.0 is refused");
    assert_eq!(error.code(), "plugin_incompatible_contract");
    let message = error.to_string();
    assert!(
        message.contains("@0.3.0") && message.contains("0.2.x and 0.1.x"),
        "{message}"
    );
}

fn a1c(when: &str, value: f64) -> ClinicalRecord {
    ClinicalRecord {
        kind: RecordKind::Observation,
        codes: vec![Coding {
            system: "http://loinc.org".into(),
            code: "4548-4".into(),
            display: None,
        }],
        display: "HbA1c".into(),
        status: Some("final".into()),
        value: Some(Quantity {
            value: Some(value),
            text: None,
            unit: Some("%".into()),
        }),
        reference_range: None,
        interpretation: None,
        effective: Some(when.into()),
        effective_end: None,
        details: Vec::new(),
        source_id: None,
        source: None,
    }
}

/// The clinical-rule scaffold, as generated: describes its service, raises a
/// card above the clinic's threshold (via the `config` import), and the host
/// assigns card ids; a bad setting is the plugin's invalid-input error.
#[test]
fn the_clinical_rule_scaffold_raises_cards() {
    let cache = tempfile::tempdir().unwrap();
    let registry = registry(limits(100_000_000, 32, 2000), cache.path());
    let rule = registry
        .install(&component("scaffold-clinical-rule"))
        .expect("install");
    assert_eq!(rule.info.kind, Kind::ClinicalRule);
    assert_eq!(rule.info.services.len(), 1);
    assert_eq!(rule.info.services[0].hook, "patient-view");

    let request: HookRequest = serde_json::from_value(serde_json::json!({
        "service_id": "scaffold-clinical-rule", "hook": "patient-view", "hook_instance": "h1",
        "now": "2025-01-01T00:00:00Z",
        "patient": { "id": "p1", "birth_date": "1961-04-12", "sex": "female", "records": [] },
        "context": { "user_id": null, "encounter_id": null, "draft_orders": [], "selections": [] },
        "prefetch": [], "new_records": []
    }))
    .expect("request");
    let mut request = request;
    request.patient.records = vec![
        PatientRecord {
            id: "r1".into(),
            record: a1c("2024-01-05", 7.1),
        },
        PatientRecord {
            id: "r2".into(),
            record: a1c("2024-06-05", 9.3),
        },
    ];

    let (evaluation, outcome) = registry
        .host()
        .evaluate(&rule.pre, &ctx(&registry), &request);
    let cards = evaluation.expect("evaluate").cards;
    assert_eq!(cards.len(), 1);
    assert!(cards[0].summary.contains("9.3"), "{}", cards[0].summary);
    assert!(cards[0].uuid.as_deref().is_some_and(|u| u.len() == 36));
    assert_eq!(
        cards[0].evidence,
        ["r2"],
        "the card cites the record it is about"
    );
    assert!(outcome.fuel_used > 0);

    let with = |threshold: &str| CallContext {
        limits: registry.host().limits(),
        config: BTreeMap::from([("threshold".to_owned(), threshold.to_owned())]),
    };
    let (evaluation, _) = registry.host().evaluate(&rule.pre, &with("10"), &request);
    assert!(evaluation.expect("evaluate").cards.is_empty());
    let (error, _) = registry.host().evaluate(&rule.pre, &with("high"), &request);
    assert_eq!(error.unwrap_err().code(), "plugin_invalid_input");

    // A rule is not a parser.
    let (wrong, _) = registry
        .host()
        .parse(&rule.pre, &ctx(&registry), "text/plain", b"x");
    assert_eq!(wrong.unwrap_err().code(), "plugin_wrong_kind");
}

fn hit(id: &str, text: &str) -> Hit {
    Hit {
        chunk_id: id.into(),
        document_id: Some("doc".into()),
        record_id: None,
        kind: RecordKind::Note,
        score: 1.0,
        similarity: None,
        text: text.into(),
        section: None,
        effective: None,
    }
}

fn query(text: &str, limit: u32) -> Query {
    Query {
        text: text.into(),
        history: Vec::new(),
        limit,
        now: "2025-01-01T00:00:00Z".into(),
    }
}

/// The retriever scaffold fuses the host's keyword and vector searches; a
/// retriever's results that point at ids the host did not hand out in the
/// call (another patient's, made up) are ignored and counted.
#[test]
fn retrievers_see_only_what_search_hands_them() {
    let cache = tempfile::tempdir().unwrap();
    let registry = registry(limits(100_000_000, 32, 2000), cache.path());
    let retriever = registry
        .install(&component("scaffold-retriever"))
        .expect("install");
    assert_eq!(retriever.info.kind, Kind::Retriever);
    let memory = FixtureMemory {
        chunks: vec![
            hit("a", "amoxicillin rash drug"),
            hit("b", "penicillin reactions drug"),
            hit("c", "hives"),
        ],
        ..FixtureMemory::default()
    };
    let (ranked, outcome) = registry.host().retrieve(
        &retriever.pre,
        &ctx(&registry),
        &query("drug reactions", 2),
        Box::new(memory),
    );
    let ranked = ranked.expect("retrieve");
    assert_eq!(ranked.len(), 2);
    assert!(matches!(&ranked[0].evidence, Evidence::Chunk(id) if id == "b"));
    assert_eq!(outcome.chunks_seen.len(), 4, "two searches, two hits each");
    assert_eq!(outcome.ignored, 0);

    let fabricator = registry.install(&component("fabricator")).expect("install");
    let stolen = CallContext {
        limits: registry.host().limits(),
        config: BTreeMap::from([("steal".to_owned(), "other-chunk,other-record".to_owned())]),
    };
    let memory = FixtureMemory {
        chunks: vec![hit("a", "potassium high")],
        records: vec![StoredRecord {
            record_id: "r1".into(),
            document_id: None,
            record: a1c("2024-01-05", 7.1),
        }],
        ..FixtureMemory::default()
    };
    let (result, outcome) = registry.host().retrieve(
        &fabricator.pre,
        &stolen,
        &query("potassium", 10),
        Box::new(memory),
    );
    let kept: Vec<String> = result
        .expect("the call succeeds; what was not handed out is dropped")
        .iter()
        .map(|r| match &r.evidence {
            Evidence::Chunk(id) => format!("chunk:{id}"),
            Evidence::Record(id) => format!("record:{id}"),
        })
        .collect();
    assert_eq!(kept, ["chunk:a", "record:r1"]);
    assert_eq!(outcome.ignored, 5, "4 stolen and 1 made-up result");
}

/// The parser scaffold turns lab lines into observations.
#[test]
fn the_parser_scaffold_finds_lab_values() {
    let cache = tempfile::tempdir().unwrap();
    let registry = registry(limits(100_000_000, 32, 2000), cache.path());
    let parser = registry
        .install(&component("scaffold-parser"))
        .expect("install");
    let doc = b"Visit\nHbA1c: 6.4 %\n";
    let (parsed, _) = registry
        .host()
        .parse(&parser.pre, &ctx(&registry), "text/plain", doc);
    let parsed = parsed.expect("parse");
    assert_eq!(parsed.records.len(), 1);
    assert_eq!(parsed.records[0].value.as_ref().unwrap().value, Some(6.4));
    assert_eq!(parsed.records[0].codes[0].code, "4548-4");
}

/// The first-party rules, compiled, through the host's card checks: a
/// critical potassium card citing its record, and on `order-select` a
/// penicillin-allergy card whose recommended suggestion deletes the selected
/// draft order; every card passes the CDS Hooks invariants (none dropped).
#[test]
fn first_party_rules_raise_cds_hooks_cards_that_pass_the_host_checks() {
    let cache = tempfile::tempdir().unwrap();
    let registry = registry(limits(1_000_000_000, 64, 5000), cache.path());
    let labs = registry
        .install(&component("rule-critical-labs"))
        .expect("install");
    let allergy = registry
        .install(&component("rule-penicillin-allergy"))
        .expect("install");
    assert_eq!(allergy.info.services.len(), 2);

    let mut potassium = a1c("2024-05-01", 6.4);
    potassium.codes[0].code = "2823-3".into();
    potassium.value.as_mut().unwrap().unit = Some("mmol/L".into());
    let request: HookRequest = serde_json::from_value(serde_json::json!({
        "service_id": "critical-labs", "hook": "patient-view", "hook_instance": "h1",
        "now": "2025-01-01T00:00:00Z",
        "patient": { "id": "p1", "birth_date": null, "sex": null, "records": [] },
        "context": { "user_id": null, "encounter_id": null, "draft_orders": [], "selections": [] },
        "prefetch": [], "new_records": []
    }))
    .expect("request");
    let mut labs_request = request.clone();
    labs_request.patient.records = vec![PatientRecord {
        id: "k1".into(),
        record: potassium,
    }];
    let (evaluation, outcome) = registry
        .host()
        .evaluate(&labs.pre, &ctx(&registry), &labs_request);
    let cards = evaluation.expect("evaluate").cards;
    assert_eq!(outcome.ignored, 0);
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].summary, "Potassium 6.4 mmol/L is critically high");
    assert_eq!(cards[0].evidence, ["k1"]);

    let mut order_request = request;
    order_request.service_id = "penicillin-allergy-order-select".into();
    order_request.hook = "order-select".into();
    order_request.patient.records = vec![PatientRecord {
        id: "al1".into(),
        record: ClinicalRecord {
            kind: RecordKind::Allergy,
            display: "Penicillin".into(),
            status: Some("active".into()),
            ..a1c("2019-01-01", 0.0)
        },
    }];
    order_request.context = serde_json::from_value(serde_json::json!({
        "user_id": "Practitioner/7", "encounter_id": null,
        "draft_orders": [{ "resource_type": "MedicationRequest", "id": "rx-amox", "record": null,
            "fhir_json": "{\"resourceType\":\"MedicationRequest\",\"id\":\"rx-amox\",\"medicationCodeableConcept\":{\"text\":\"Amoxicillin 500 mg\"}}" }],
        "selections": ["MedicationRequest/rx-amox"]
    }))
    .expect("context");
    let (evaluation, outcome) =
        registry
            .host()
            .evaluate(&allergy.pre, &ctx(&registry), &order_request);
    let cards = evaluation.expect("evaluate").cards;
    assert_eq!(outcome.ignored, 0, "every card passes the CDS Hooks checks");
    assert_eq!(cards.len(), 1, "{cards:?}");
    let delete = &cards[0].suggestions[0].actions[0];
    assert_eq!(
        delete.resource_id.as_deref(),
        Some("MedicationRequest/rx-amox")
    );
    assert_eq!(cards[0].evidence, ["al1"]);
    // Metformin with an eGFR of 24: a critical card with a stop suggestion.
    let metformin_rule = registry
        .install(&component("rule-metformin-egfr"))
        .expect("install");
    let mut egfr = a1c("2024-05-01", 24.0);
    egfr.codes[0].code = "33914-3".into();
    let metformin = ClinicalRecord {
        kind: RecordKind::Medication,
        codes: Vec::new(),
        display: "Metformin 500 MG Oral Tablet".into(),
        status: Some("active".into()),
        value: None,
        source_id: Some("rx-met".into()),
        ..a1c("2020-01-01", 0.0)
    };
    let mut renal = order_request;
    renal.service_id = "metformin-egfr".into();
    renal.hook = "patient-view".into();
    renal.patient.records = vec![
        PatientRecord {
            id: "e1".into(),
            record: egfr,
        },
        PatientRecord {
            id: "m1".into(),
            record: metformin,
        },
    ];
    let (evaluation, outcome) =
        registry
            .host()
            .evaluate(&metformin_rule.pre, &ctx(&registry), &renal);
    let cards = evaluation.expect("evaluate").cards;
    assert_eq!((cards.len(), outcome.ignored), (1, 0), "{cards:?}");
    assert_eq!(cards[0].evidence, ["m1", "e1"]);
}
