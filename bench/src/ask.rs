//! `bench ask`: `/ask` end to end in process (retrieval through the
//! `hybrid` retriever plugin, the cosine gate, the prompt, the local burn
//! decoder, grounding, storage and audit) for one synthetic patient, at 1
//! and 4 concurrent clients: p50 and p99 of the whole answer and of the
//! time to the first accepted text.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use medmemory::app::App;
use medmemory::config::Settings;
use medmemory::db::new_id;
use medmemory::db::records::{Detail, NewRecord, Provenance, RecordFields, RecordKind};
use medmemory::ingest::pipeline::Origin;
use medmemory::rag::{Event, Question};
use tokio::sync::mpsc;

use crate::{median, percentile};

const NOTES: [&str; 6] = [
    "Laboratory report. HbA1c 7.2 % measured on 2024-03-05, down from 8.1 % in 2023.",
    "Medication list. Metformin 500 mg twice daily, started 2023-01-10. Lisinopril 10 mg daily.",
    "Allergies: penicillin (rash, 2019). No known food allergies.",
    "Visit 2024-04-02: blood pressure 138/86 mmHg, advised to walk 30 minutes daily.",
    "Kidney function 2024-03-05: creatinine 88 umol/L, eGFR 71 mL/min/1.73m2.",
    "Eye exam 2023-11-20: no diabetic retinopathy. Next screening in one year.",
];

const QUESTIONS: [&str; 4] = [
    "What was the last HbA1c?",
    "What medications does she take?",
    "What was her blood pressure at the last visit?",
    "How is her kidney function?",
];

/// One answer: total, first-token and first-accepted-text latency in seconds.
async fn one(
    app: &App,
    clinic: uuid::Uuid,
    patient: uuid::Uuid,
    text: &str,
) -> anyhow::Result<(f64, f64, f64)> {
    let started = Instant::now();
    let prepared = app
        .rag
        .prepare(Question {
            clinic,
            patient,
            text: text.to_owned(),
            conversation: None,
            retriever: None,
            asked_by: "bench".into(),
            request_id: None,
        })
        .await?;
    let (tx, mut rx) = mpsc::channel(256);
    let first = tokio::spawn(async move {
        let mut first = None;
        while let Some(event) = rx.recv().await {
            if first.is_none() && matches!(event, Event::Text(_)) {
                first = Some(started.elapsed());
            }
        }
        first
    });
    let answer = app.rag.answer(prepared, Some(tx)).await?;
    let total = started.elapsed().as_secs_f64();
    let first = first.await?.map_or(total, |d: Duration| d.as_secs_f64());
    // The model's first token, counted from the question (retrieval and
    // queueing included).
    let token = answer.timings.first_token_ms.map_or(total, |ms| {
        (answer.timings.retrieval_ms + answer.timings.queue_ms + ms) as f64 / 1000.0
    });
    Ok((total, token, first))
}

pub async fn run(models: &Path, plugins: &Path, rounds: usize) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let settings = Settings {
        data_dir: scratch.path().to_path_buf(),
        models_dir: Some(models.to_path_buf()),
        plugins_dir: Some(plugins.to_path_buf()),
        generator: "local".into(),
        answer_max_tokens: 64,
        answer_queue: 16,
        answer_tokens_per_clinic_hour: i64::MAX,
        ..Default::default()
    };
    let app = Arc::new(App::build(settings).await?);
    anyhow::ensure!(app.load_models().await, "the embedder did not load");
    anyhow::ensure!(
        app.engines.models.load_llm(models.to_path_buf()).await,
        "the generator did not load"
    );
    let (clinic, patient) = crate::bench_patient(&app).await?;
    let patient = patient.id;
    let origin = Origin {
        clinic,
        patient,
        document: None,
    };
    // Notes posted as records (as a client would), each one chunk.
    let records: Vec<NewRecord> = NOTES
        .iter()
        .map(|text| NewRecord {
            id: new_id(),
            fields: RecordFields {
                kind: RecordKind::Note,
                codes: Vec::new(),
                display: "Clinical note".into(),
                status: None,
                value: None,
                reference_range: None,
                interpretation: None,
                effective: None,
                effective_end: None,
                details: vec![Detail {
                    name: "text".into(),
                    value: (*text).to_owned(),
                }],
            },
            provenance: Provenance::default(),
        })
        .collect();
    let indexer = app.ingest.indexer();
    let prepared = indexer.prepare(&origin, &records, Vec::new()).await?;
    let db = app.db().clone();
    indexer
        .commit(&origin, &prepared, async |chunks| {
            db.add_records(clinic, patient, &records, chunks)
                .await
                .map(|()| true)
        })
        .await?;

    for clients in [1usize, 4] {
        let (mut totals, mut tokens, mut firsts) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let mut tasks = Vec::new();
            for client in 0..clients {
                let app = app.clone();
                let question = QUESTIONS[(round + client) % QUESTIONS.len()];
                tasks.push(tokio::spawn(async move {
                    one(&app, clinic, patient, question).await
                }));
            }
            for task in tasks {
                let (total, token, first) = task.await??;
                totals.push(total);
                tokens.push(token);
                firsts.push(first);
            }
        }
        println!(
            "/ask at {clients} concurrent client(s), {} answers: total p50 {:.2} s, p99 {:.2} s; first token p50 {:.2} s, p99 {:.2} s; first accepted sentence p50 {:.2} s, p99 {:.2} s",
            totals.len(),
            median(totals.clone()),
            percentile(totals, 0.99),
            median(tokens.clone()),
            percentile(tokens, 0.99),
            median(firsts.clone()),
            percentile(firsts, 0.99),
        );
    }
    Ok(())
}
