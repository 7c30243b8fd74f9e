//! `bench rules`: the CDS Hooks service and the alerts on arrival, in
//! process, for one patient with `records` records and every first-party
//! rule enabled: p50/p99 of one hook call per service (the rule in the
//! sandbox, the patient's records read from SQL, FHIR draft orders read by
//! the parser, cards stored), and of one arrival (every rule of the clinic
//! run for the patient and its alerts stored, as after each ingested
//! document).

use std::time::{Duration, Instant};

use medmemory::app::App;
use medmemory::config::Settings;
use medmemory::db::new_id;
use medmemory::db::records::{Coding, NewRecord, Provenance, RecordFields, RecordKind, Value};
use medmemory::ingest::Arrival;
use medmemory::plugins::CallFor;
use medmemory::rules::cds::HookCall;
use serde_json::json;

use crate::{Rng, median, percentile};

const LOINC: &str = "http://loinc.org";
const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const SNOMED: &str = "http://snomed.info/sct";

/// A varied synthetic history: labs (potassium, sodium, HbA1c, eGFR, blood
/// pressure), medications, conditions and an allergy, spread over years.
fn history(n: usize) -> Vec<NewRecord> {
    let mut rng = Rng(0x5eed);
    let labs = [
        ("2823-3", "Potassium", 4.2, "mmol/L"),
        ("2951-2", "Sodium", 140.0, "mmol/L"),
        ("4548-4", "Hemoglobin A1c", 7.4, "%"),
        ("33914-3", "eGFR", 64.0, "mL/min/1.73m2"),
        ("8480-6", "Systolic blood pressure", 132.0, "mm[Hg]"),
        ("8462-4", "Diastolic blood pressure", 84.0, "mm[Hg]"),
    ];
    let fixed = [
        (RecordKind::Medication, RXNORM, "6809", "Metformin 500 mg"),
        (RecordKind::Medication, RXNORM, "29046", "Lisinopril 10 mg"),
        (
            RecordKind::Condition,
            SNOMED,
            "44054006",
            "Type 2 diabetes mellitus",
        ),
        (RecordKind::Allergy, RXNORM, "7980", "Penicillin G"),
    ];
    let mut out = Vec::with_capacity(n);
    for (i, (kind, system, code, display)) in fixed.iter().enumerate().take(n) {
        out.push(record(*kind, system, code, display, None, 2015 + i));
    }
    for i in out.len()..n {
        let (code, display, base, unit) = labs[i % labs.len()];
        let value = base * (1.0 + f64::from(rng.unit()) * 0.1);
        let year = 2010 + i * 14 / n;
        out.push(record(
            RecordKind::Observation,
            LOINC,
            code,
            display,
            Some((value, unit)),
            year,
        ));
    }
    out
}

fn record(
    kind: RecordKind,
    system: &str,
    code: &str,
    display: &str,
    value: Option<(f64, &str)>,
    year: usize,
) -> NewRecord {
    NewRecord {
        id: new_id(),
        fields: RecordFields {
            kind,
            codes: vec![Coding {
                system: system.into(),
                code: code.into(),
                display: None,
            }],
            display: display.into(),
            status: Some(
                if kind == RecordKind::Observation {
                    "final"
                } else {
                    "active"
                }
                .into(),
            ),
            value: value.map(|(v, unit)| Value {
                value: Some(v),
                text: None,
                unit: Some(unit.into()),
            }),
            reference_range: None,
            interpretation: None,
            effective: Some(format!("{year}-06-{:02}", 1 + code.len() % 28)),
            effective_end: None,
            details: Vec::new(),
        },
        provenance: Provenance::default(),
    }
}

fn report(label: &str, mut times: Vec<f64>) {
    times.iter_mut().for_each(|t| *t *= 1000.0);
    println!(
        "{label}: {} calls, p50 {:.1} ms, p99 {:.1} ms",
        times.len(),
        median(times.clone()),
        percentile(times, 0.99)
    );
}

pub async fn run(plugins: &std::path::Path, records: usize, rounds: usize) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let settings = Settings {
        data_dir: scratch.path().to_path_buf(),
        plugins_dir: Some(plugins.to_path_buf()),
        ..Default::default()
    };
    let deadline = Duration::from_millis(settings.cds_deadline_ms);
    let app = App::build(settings).await?;
    let (clinic, patient) = crate::bench_patient(&app).await?;
    let history = history(records);
    app.db()
        .add_records(clinic, patient.id, &history, &[])
        .await?;
    let offered = app.rules.offered(clinic).await?;
    anyhow::ensure!(
        !offered.is_empty(),
        "no rule plugins in {}",
        plugins.display()
    );
    let who = CallFor {
        clinic: Some(clinic),
        patient: Some(patient.id),
        request_id: None,
    };
    let draft = json!({"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft",
        "intent": "order", "medicationCodeableConcept": {"coding": [{"system": RXNORM,
        "code": "308182", "display": "Amoxicillin 250 MG Oral Capsule"}]}});
    println!(
        "rules on this machine ({records} records, {} services, deadline {} ms):",
        offered.len(),
        deadline.as_millis()
    );
    let mut all = Vec::new();
    for service in &offered {
        let mut times = Vec::with_capacity(rounds);
        let mut cards = 0;
        for _ in 0..rounds {
            let call = HookCall {
                hook: service.service.hook.clone(),
                hook_instance: new_id().to_string(),
                user_id: Some("Practitioner/bench".into()),
                draft_orders: if service.service.hook == "patient-view" {
                    Vec::new()
                } else {
                    vec![draft.clone()]
                },
                selections: vec!["MedicationRequest/draft-1".into()],
                ..HookCall::default()
            };
            let started = Instant::now();
            let answer = app
                .rules
                .hook(&patient, service, call, (&who, "bench", deadline))
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", service.id))?;
            times.push(started.elapsed().as_secs_f64());
            anyhow::ensure!(!answer.degraded, "{} ran out of time", service.id);
            cards = answer.evaluation.cards.len();
        }
        all.extend(times.iter().copied());
        report(&format!("  CDS {} ({cards} card(s))", service.id), times);
    }
    report("  CDS call, every service", all);
    let mut arrivals = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let arrival = Arrival {
            clinic,
            patient: patient.id,
            records: vec![history[history.len() - 1].id],
        };
        let started = Instant::now();
        app.rules.run(&arrival).await?;
        arrivals.push(started.elapsed().as_secs_f64());
    }
    report(
        "  alerts per ingested document (every rule, stored)",
        arrivals,
    );
    Ok(())
}
