//! The job worker: claims queued jobs from the database and runs them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{chunking, render};
use crate::app::App;
use crate::db::chunks::Chunk;
use crate::db::jobs::Job;
use crate::db::{new_id, now};
use crate::memory::VectorRow;
use crate::plugins::{CallError, CallFor};

/// How long an idle worker sleeps before polling again without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(2);

/// Wakes the worker when a job is queued.
#[derive(Clone, Default)]
pub struct Worker {
    wake: Arc<Notify>,
}

impl Worker {
    /// Tells the worker there is work.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs jobs until the process ends.
    pub async fn run(self, app: Arc<App>) {
        loop {
            match app.db.claim_job().await {
                Ok(Some(job)) => {
                    let id = job.id;
                    if let Err(failure) = run_job(&app, &job).await {
                        tracing::warn!(job = %id, code = failure.code, "ingestion job failed");
                        metrics::counter!("ingest_jobs_total", "outcome" => failure.code)
                            .increment(1);
                        if let Err(e) = app.db.fail_job(id, failure.code, &failure.detail).await {
                            tracing::error!(job = %id, error = %e, "could not record job failure");
                        }
                    } else {
                        tracing::info!(job = %id, "ingestion job succeeded");
                        metrics::counter!("ingest_jobs_total", "outcome" => "succeeded")
                            .increment(1);
                    }
                }
                Ok(None) => {
                    let _ = tokio::time::timeout(IDLE_POLL, self.wake.notified()).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not claim a job");
                    tokio::time::sleep(IDLE_POLL).await;
                }
            }
        }
    }
}

/// Why a job failed: a stable code and a PHI-free detail.
#[derive(Debug)]
pub struct JobFailure {
    /// Stable code.
    pub code: &'static str,
    /// Explanation without patient data.
    pub detail: String,
}

fn failure(code: &'static str, detail: impl Into<String>) -> JobFailure {
    JobFailure {
        code,
        detail: detail.into(),
    }
}

/// Runs one claimed job: parse, chunk, embed, index, commit.
pub async fn run_job(app: &Arc<App>, job: &Job) -> Result<(), JobFailure> {
    let internal = |e: &dyn std::fmt::Display| failure("internal", format!("{e}"));
    let document = app
        .db
        .document_in_clinic(job.clinic_id, job.document_id)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| failure("document_missing", "the document was deleted"))?;
    let bytes = app
        .blobs
        .get(&document.sha256)
        .await
        .map_err(|e| internal(&e))?;
    let (parser, ctx) = app
        .plugins
        .parser_for(job.clinic_id, &document.media_type)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| {
            failure(
                "no_parser",
                format!("no enabled parser handles {}", document.media_type),
            )
        })?;

    // Parse in the sandbox (off the async runtime), audited.
    let who = CallFor {
        clinic: Some(job.clinic_id),
        patient: Some(document.patient_id),
        request_id: None,
    };
    let (parsed, outcome) = app
        .plugins
        .parse(&parser, ctx, &who, &document.media_type, Arc::new(bytes))
        .await
        .map_err(|e| match e {
            CallError::Plugin(f) => failure(f.code(), f.to_string()),
            CallError::Audit(m) => failure("audit_failed", m),
        })?;
    tracing::debug!(job = %job.id, fuel = outcome.fuel_used, elapsed_ms = outcome.elapsed.as_millis() as u64, "parsed");
    let _ = app.db.set_job_progress(job.id, 0.3).await;

    let embedder = app
        .embedder()
        .ok_or_else(|| failure("model_unavailable", "the embedding model is not loaded"))?;
    // Records become searchable text too: "her last A1c" finds an HL7 result.
    let mut sections: Vec<_> = parsed.sections;
    sections.extend(parsed.records.iter().map(render::record_section));
    let pieces = {
        let embedder = embedder.clone();
        tokio::task::spawn_blocking(move || {
            let count = |text: &str| embedder.count_tokens(text).unwrap_or(usize::MAX / 2);
            sections
                .iter()
                .flat_map(|s| {
                    chunking::split(
                        s.title.as_deref(),
                        &s.text,
                        s.source.start as usize,
                        s.source.end as usize,
                        &count,
                    )
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| internal(&e))?
    };

    let texts: Vec<String> = pieces
        .iter()
        .map(|p| embed_text(p.section.as_deref(), &p.text))
        .collect();
    let vectors = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        embedder.embed(&refs)
    })
    .await
    .map_err(|e| internal(&e))?
    .map_err(|e| failure("model_failed", e.to_string()))?;
    let _ = app.db.set_job_progress(job.id, 0.8).await;

    let at = now();
    let chunks: Vec<Chunk> = pieces
        .into_iter()
        .enumerate()
        .map(|(i, p)| Chunk {
            id: new_id(),
            clinic_id: job.clinic_id,
            patient_id: document.patient_id,
            document_id: document.id,
            ordinal: i as i64,
            section: p.section,
            text: p.text,
            span_start: p.start as i64,
            span_end: p.end as i64,
            created_at: at,
        })
        .collect();
    let rows: Vec<VectorRow> = chunks
        .iter()
        .zip(vectors)
        .map(|(c, vector)| VectorRow {
            chunk_id: c.id,
            patient_id: c.patient_id,
            document_id: c.document_id,
            vector,
        })
        .collect();
    app.vectors
        .replace_document(job.clinic_id, document.id, &rows)
        .await
        .map_err(|e| failure("vector_store_failed", e.to_string()))?;
    app.db
        .complete_job(job, &chunks)
        .await
        .map_err(|e| internal(&e))?;
    Ok(())
}

/// The text embedded for a chunk: its section title gives it context.
pub fn embed_text(section: Option<&str>, text: &str) -> String {
    match section {
        Some(title) => format!("{title}: {text}"),
        None => text.to_owned(),
    }
}
