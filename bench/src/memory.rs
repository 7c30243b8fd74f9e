//! `medmemory-bench memory`: the figures behind `cargo xtask bench memory`.
//!
//! - embedding throughput (sentences/s) for short sentences and 200-token
//!   passages at batch 1 and 8;
//! - ingest throughput (documents/min) for mixed text, HL7 v2 and FHIR
//!   documents through the real pipeline (blob store, job queue, plugins,
//!   chunking, embedding, LanceDB, SQLite), in process;
//! - search latency (p50, p99) for one patient with 1,000 chunks in synthetic
//!   tables of the given sizes, for vector, keyword and hybrid search.
//!
//! Everything runs in a temporary folder; nothing touches the configured data.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{TimeDelta, Utc};
use uuid::Uuid;

use medmemory::app::App;
use medmemory::config::Settings;
use medmemory::db::documents::NewDocument;
use medmemory::db::patients::PatientFields;
use medmemory::memory::fusion;
use medmemory::memory::{Ranked, Scope, VectorRow, VectorStore};
use medmemory::ml::{DIM, Embedder};

use crate::{Rng, median, percentile};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Documents to ingest (0 skips the ingest run).
    pub documents: usize,
    /// Synthetic table sizes for the search run (empty skips it).
    pub table_sizes: Vec<usize>,
    /// `tests/samples`, for the HL7 and FHIR documents.
    pub samples: PathBuf,
    /// A scratch folder (removed after).
    pub scratch: PathBuf,
}

/// Short clinical sentences, shared with the sentence-transformers side of
/// `cargo xtask bench memory` so that both embed the same texts.
static SENTENCES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    include_str!("../../xtask/bench/sentences.txt")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect()
});

/// Runs the whole benchmark and prints a report on stdout.
pub async fn memory(settings: &Settings, options: &Options) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.scratch)?;
    let models = settings.models_dir();
    let embedder = Arc::new(
        tokio::task::spawn_blocking(move || Embedder::load(&models))
            .await?
            .context("loading the embedding model")?,
    );
    println!("embedding throughput (all-MiniLM-L6-v2, burn flex CPU backend), sentences/s:");
    embedding(&embedder)?;
    if options.documents > 0 {
        ingest(settings, options).await?;
    }
    for size in &options.table_sizes {
        search(&embedder, &options.scratch, *size).await?;
    }
    let _ = std::fs::remove_dir_all(&options.scratch);
    Ok(())
}

fn embedding(embedder: &Embedder) -> anyhow::Result<()> {
    let short: Vec<String> = (0..64)
        .map(|i| SENTENCES[i % SENTENCES.len()].to_owned())
        .collect();
    let mut passage = String::new();
    let mut i = 0;
    while embedder.count_tokens(&passage)? < 200 {
        passage.push_str(SENTENCES[i % SENTENCES.len()]);
        passage.push(' ');
        i += 1;
    }
    let passages: Vec<String> = (0..16).map(|_| passage.clone()).collect();
    for (label, texts) in [
        ("short sentences", &short),
        ("200-token passages", &passages),
    ] {
        for batch in [1, 8] {
            let mut rates = Vec::new();
            for _ in 0..3 {
                let started = Instant::now();
                for group in texts.chunks(batch) {
                    let refs: Vec<&str> = group.iter().map(String::as_str).collect();
                    embedder.embed(&refs)?;
                }
                rates.push(texts.len() as f64 / started.elapsed().as_secs_f64());
            }
            println!(
                "  {label:<19} batch {batch}: {:>7.1} (median of 3 runs of {})",
                median(rates),
                texts.len()
            );
        }
    }
    Ok(())
}

fn mixed_document(samples: &Path, i: usize) -> anyhow::Result<Vec<u8>> {
    Ok(match i % 3 {
        0 => format!(
            "Visit note {i}.\n\nHistory:\n{}\n\nPlan:\n{}\n",
            SENTENCES[i % SENTENCES.len()],
            SENTENCES[(i + 3) % SENTENCES.len()]
        )
        .into_bytes(),
        1 => std::fs::read_to_string(samples.join("hl7/oru_r01.hl7"))?
            .replace("MSG00001", &format!("MSG{i:06}"))
            .into_bytes(),
        _ => std::fs::read_to_string(samples.join("fhir/bundle.json"))?
            .replace("example-summary", &format!("bench-{i}"))
            .into_bytes(),
    })
}

async fn ingest(settings: &Settings, options: &Options) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    settings.data_dir = options.scratch.join("ingest");
    settings.database_url = None;
    settings.vector_uri = None;
    let app = App::build(settings).await?;
    app.ingest.prepare().await?;
    anyhow::ensure!(app.load_models().await, "the embedding model did not load");
    let db = app.db();
    let clinic = db.create_clinic("Bench").await?.id;
    let mut patients = Vec::new();
    for p in 0..10 {
        let fields = PatientFields {
            given_name: format!("Bench{p}"),
            family_name: "Patient".into(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1960, 1, 1).unwrap_or_default(),
            sex: "unknown".into(),
            mrn: None,
        };
        patients.push(db.create_patient(clinic, &fields).await?.id);
    }
    for i in 0..options.documents {
        let bytes = mixed_document(&options.samples, i)?;
        let patient = patients[i % patients.len()];
        let sha = app.stores.blobs.put(clinic, patient, &bytes).await?;
        let new = NewDocument {
            media_type: medmemory::ingest::sniff::media_type(&bytes).to_owned(),
            declared_media_type: None,
            size_bytes: bytes.len() as i64,
            sha256: sha,
        };
        db.create_document(clinic, patient, &new).await?;
    }
    let started = Instant::now();
    tokio::spawn(app.ingest.clone().run());
    app.ingest.wake();
    loop {
        let counts = db.job_counts().await?;
        let open: i64 = counts
            .iter()
            .filter(|(s, _)| s == "queued" || s == "running")
            .map(|(_, n)| n)
            .sum();
        if open == 0 {
            let failed: i64 = counts
                .iter()
                .filter(|(s, _)| s == "failed")
                .map(|(_, n)| n)
                .sum();
            let minutes = started.elapsed().as_secs_f64() / 60.0;
            println!(
                "ingest: {} mixed documents (text, HL7 v2, FHIR) in {:.1} s: {:.0} documents/min, {failed} failed",
                options.documents,
                minutes * 60.0,
                options.documents as f64 / minutes
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn random_vector(rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIM).map(|_| rng.unit()).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    for x in &mut v {
        *x /= norm;
    }
    v
}

fn random_text(rng: &mut Rng) -> String {
    let mut words: Vec<String> = (0..12).map(|_| format!("w{}", rng.next() % 5000)).collect();
    words.push(SENTENCES[(rng.next() % SENTENCES.len() as u64) as usize].to_owned());
    words.join(" ")
}

async fn search(embedder: &Arc<Embedder>, scratch: &Path, size: usize) -> anyhow::Result<()> {
    let dir = scratch.join(format!("vectors-{size}"));
    let _ = std::fs::remove_dir_all(&dir);
    let store = VectorStore::open(dir.to_str().unwrap_or("vectors")).await?;
    let clinic = Uuid::now_v7();
    let target = Uuid::now_v7();
    let others: Vec<Uuid> = (0..999).map(|_| Uuid::now_v7()).collect();
    let kinds = ["note", "observation", "medication", "condition"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let loading = Instant::now();
    let batch = 10_000;
    let mut written = 0;
    while written < size {
        let n = batch.min(size - written);
        let rows: Vec<VectorRow> = (0..n)
            .map(|i| {
                // 1,000 of the rows belong to the target patient, spread out.
                let patient = if (written + i) % (size / 1000).max(1) == 0 {
                    target
                } else {
                    others[(rng.next() % others.len() as u64) as usize]
                };
                VectorRow {
                    chunk_id: Uuid::now_v7(),
                    patient_id: patient,
                    document_id: Some(Uuid::now_v7()),
                    record_id: None,
                    kind: kinds[(rng.next() % 4) as usize].to_owned(),
                    effective_at: Some(Utc::now() - TimeDelta::days((rng.next() % 3650) as i64)),
                    text: random_text(&mut rng),
                    vector: random_vector(&mut rng),
                }
            })
            .collect();
        store.append(clinic, &rows).await?;
        written += n;
    }
    store.refresh_indexes(clinic).await?;
    println!(
        "search, one patient of 1,000 chunks in a table of {size} chunks (loaded and indexed in {:.0} s), ms:",
        loading.elapsed().as_secs_f64()
    );
    let scope = Scope::default();
    let queries: Vec<String> = (0..50)
        .map(|i| format!("{} w{}", SENTENCES[i % SENTENCES.len()], rng.next() % 5000))
        .collect();
    let (mut vector, mut keyword, mut hybrid, mut embed) = (vec![], vec![], vec![], vec![]);
    for query in &queries {
        let started = Instant::now();
        let model = embedder.clone();
        let text = query.clone();
        let q = tokio::task::spawn_blocking(move || model.embed(&[text.as_str()]))
            .await??
            .pop()
            .unwrap_or_default();
        embed.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        let v = store.vector_search(clinic, target, &scope, &q, 30).await?;
        vector.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        let k = store
            .keyword_search(clinic, target, &scope, query, 30)
            .await?;
        keyword.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        let (v2, k2) = tokio::join!(
            store.vector_search(clinic, target, &scope, &q, 30),
            store.keyword_search(clinic, target, &scope, query, 30)
        );
        let fused: Vec<Ranked> = fusion::reciprocal_rank(&[&v2?, &k2?], 10);
        hybrid.push(started.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(!v.is_empty() && !fused.is_empty(), "search found nothing");
        let _ = k;
    }
    for (label, xs) in [
        ("query embedding", embed),
        ("vector", vector),
        ("keyword (BM25)", keyword),
        ("hybrid (both + RRF)", hybrid),
    ] {
        println!(
            "  {label:<20} p50 {:>7.1}  p99 {:>7.1}",
            percentile(xs.clone(), 0.5),
            percentile(xs, 0.99)
        );
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
