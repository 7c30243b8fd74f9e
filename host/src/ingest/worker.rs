//! The job worker: claims queued jobs from the database and runs them.

use std::sync::Arc;
use std::time::Duration;

use super::Ingest;
use super::pipeline::{Committed, Origin, PipelineError};
use super::render;
use crate::db::documents::Document;
use crate::db::jobs::{Claim, Job};
use crate::db::records::{Coding, Detail, NewRecord, Provenance, Range, RecordFields, Value};
use crate::db::{new_id, now};
use crate::plugins::types::ClinicalRecord;
use crate::plugins::{CallError, CallFor, PluginFailure};

/// How long an idle worker sleeps before polling again without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(2);

/// How this process works the queue.
#[derive(Debug, Clone)]
pub struct WorkerPolicy {
    /// Jobs run at once by this process.
    pub workers: usize,
    /// Jobs of one clinic running at once across every instance.
    pub per_clinic: u32,
    /// How long a claimed job stays a worker's without a renewal.
    pub lease: Duration,
    /// How old an orphan vector or blob must be before the start-up sweep
    /// removes it.
    pub sweep_grace: Duration,
}

impl WorkerPolicy {
    /// The policy from the settings, each value at least 1 (the lease at
    /// least 5 seconds).
    pub fn from_settings(settings: &crate::config::Settings) -> WorkerPolicy {
        WorkerPolicy {
            workers: settings.ingest_workers.clamp(1, 64),
            per_clinic: settings.ingest_jobs_per_clinic.max(1),
            lease: Duration::from_secs(settings.job_lease_secs.clamp(5, 3600)),
            sweep_grace: Duration::from_secs(settings.sweep_grace_secs),
        }
    }
}

impl Ingest {
    /// Runs `policy.workers` workers until the process ends. Each claims one
    /// job at a time under a lease that it renews while the job runs.
    pub async fn run(self: Arc<Self>) {
        let instance = new_id();
        let mut workers = tokio::task::JoinSet::new();
        for slot in 0..self.policy.workers {
            let claim = Claim {
                owner: format!("{instance}/{slot}"),
                lease: chrono::TimeDelta::from_std(self.policy.lease)
                    .unwrap_or(chrono::TimeDelta::seconds(30)),
                per_clinic: i64::from(self.policy.per_clinic),
                max_starts: super::MAX_INTERRUPTIONS,
            };
            workers.spawn(self.clone().work(claim));
        }
        while workers.join_next().await.is_some() {}
    }

    async fn work(self: Arc<Self>, claim: Claim) {
        loop {
            match self.db.claim_job(&claim).await {
                Ok(Some(job)) => {
                    let id = job.id;
                    // Another job may be waiting for a free slot.
                    self.wake.notify_one();
                    match self.run_leased(&job, &claim).await {
                        Ok(()) => {
                            tracing::info!(job = %id, "ingestion job succeeded");
                            metrics::counter!("ingest_jobs_total", "outcome" => "succeeded")
                                .increment(1);
                        }
                        Err(failure) => settle(&self, &job, failure).await,
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

    /// Runs `job` while renewing its lease. A run whose lease was lost (the
    /// database was out of reach longer than the lease and another worker
    /// took the job) goes on to its end, where its finishing statements find
    /// the job no longer its own and change nothing.
    async fn run_leased(&self, job: &Job, claim: &Claim) -> Result<(), JobFailure> {
        let run = run_job(self, job);
        tokio::pin!(run);
        let mut held = true;
        loop {
            tokio::select! {
                result = &mut run => return result,
                () = tokio::time::sleep(self.policy.lease / 3), if held => {
                    match self.db.renew_lease(job, now() + claim.lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            held = false;
                            tracing::warn!(job = %job.id, "a running job is no longer this worker's");
                        }
                        Err(e) => tracing::warn!(job = %job.id, error = %e, "could not renew a job lease"),
                    }
                }
            }
        }
    }
}

/// The code of a run that lost its lease: nothing is recorded for it.
const LEASE_LOST: &str = "lease_lost";

/// Why a job failed: a stable code, a PHI-free detail, and whether trying
/// again later may help.
#[derive(Debug)]
pub struct JobFailure {
    /// Stable code.
    pub code: &'static str,
    /// Explanation without patient data.
    pub detail: String,
    /// A transient failure (the store, the model) is retried with back-off; a
    /// permanent one (the document itself) fails the job at once.
    pub transient: bool,
    /// When to try again instead of the back-off (a paused plugin: after its
    /// cool-down).
    pub retry_after: Option<std::time::Duration>,
}

fn permanent(code: &'static str, detail: impl Into<String>) -> JobFailure {
    JobFailure {
        code,
        detail: detail.into(),
        transient: false,
        retry_after: None,
    }
}

fn transient(code: &'static str, detail: impl std::fmt::Display) -> JobFailure {
    JobFailure {
        code,
        detail: detail.to_string(),
        transient: true,
        retry_after: None,
    }
}

/// Attempts before a transiently failing job is given up.
pub const MAX_ATTEMPTS: i64 = 5;

/// The wait before attempt `attempts + 1`: 2, 4, 8... seconds, at most 5 minutes.
pub fn backoff(attempts: i64) -> chrono::TimeDelta {
    let seconds = 2i64.saturating_pow(attempts.clamp(1, 30) as u32).min(300);
    chrono::TimeDelta::seconds(seconds)
}

/// Settles a failed attempt: retry later or fail for good. A failed
/// document keeps no vectors. A worker that no longer holds the job's lease
/// changes nothing.
async fn settle(app: &Ingest, job: &Job, failure: JobFailure) {
    if failure.code == LEASE_LOST {
        metrics::counter!("ingest_jobs_total", "outcome" => LEASE_LOST).increment(1);
        return;
    }
    let retry = failure.transient && job.attempts < MAX_ATTEMPTS;
    let outcome = if retry { "retried" } else { failure.code };
    tracing::warn!(job = %job.id, code = failure.code, attempt = job.attempts, retry, "ingestion attempt failed");
    metrics::counter!("ingest_jobs_total", "outcome" => outcome).increment(1);
    let recorded = if retry {
        let not_before = now()
            + failure
                .retry_after
                .and_then(|d| chrono::TimeDelta::from_std(d).ok())
                .unwrap_or_else(|| backoff(job.attempts));
        app.db
            .retry_job(job, failure.code, &failure.detail, not_before)
            .await
    } else {
        let failed = app.db.fail_job(job, failure.code, &failure.detail).await;
        if let Ok(true) = failed
            && let Err(e) = app
                .vectors
                .delete_document(job.clinic_id, job.document_id)
                .await
        {
            tracing::error!(job = %job.id, error = %e, "could not remove the vectors of a failed document");
        }
        failed
    };
    match recorded {
        Ok(true) => {}
        Ok(false) => tracing::warn!(job = %job.id, "a job settled elsewhere; nothing recorded"),
        Err(e) => tracing::error!(job = %job.id, error = %e, "could not record job failure"),
    }
}

/// The stored form of a record a parser found in `document`.
fn new_record(document: &Document, record: &ClinicalRecord) -> NewRecord {
    let text = |s: &Option<String>| s.as_ref().map(|s| s.chars().take(2000).collect::<String>());
    NewRecord {
        id: new_id(),
        fields: RecordFields {
            kind: render::kind(record.kind),
            codes: record
                .codes
                .iter()
                .map(|c| Coding {
                    system: c.system.clone(),
                    code: c.code.clone(),
                    display: c.display.clone(),
                })
                .collect(),
            display: record.display.clone(),
            status: text(&record.status),
            value: record.value.as_ref().map(|v| Value {
                value: v.value.filter(|n| n.is_finite()),
                text: text(&v.text),
                unit: text(&v.unit),
            }),
            reference_range: record.reference_range.as_ref().map(|r| Range {
                low: r.low.filter(|n| n.is_finite()),
                high: r.high.filter(|n| n.is_finite()),
                text: text(&r.text),
            }),
            interpretation: text(&record.interpretation),
            effective: text(&record.effective),
            effective_end: text(&record.effective_end),
            details: record
                .details
                .iter()
                .map(|(name, value)| Detail {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        },
        provenance: Provenance {
            document_id: Some(document.id),
            source_id: record.source_id.clone(),
            span_start: record.source.map(|s| i64::from(s.start)),
            span_end: record.source.map(|s| i64::from(s.end)),
            page: record.source.and_then(|s| s.page).map(i64::from),
        },
    }
}

/// Runs one claimed job: parse, store records, chunk, embed, index, commit.
pub async fn run_job(app: &Ingest, job: &Job) -> Result<(), JobFailure> {
    let document = app
        .db
        .document_in_clinic(job.clinic_id, job.document_id)
        .await
        .map_err(|e| transient("database_unavailable", e))?
        .ok_or_else(|| permanent("document_missing", "the document was deleted"))?;
    let bytes = app
        .blobs
        .get(job.clinic_id, document.patient_id, &document.sha256)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                permanent("blob_missing", "the document's bytes are missing")
            }
            _ => transient("blob_store_failed", e),
        })?;
    let (parser, ctx) = app
        .plugins
        .parser_for(job.clinic_id, &document.media_type)
        .await
        .map_err(|e| transient("database_unavailable", e))?
        .ok_or_else(|| {
            permanent(
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
            // Paused for this clinic: try again once the breaker lets a call through.
            CallError::Plugin(f @ PluginFailure::CircuitOpen) => JobFailure {
                retry_after: Some(app.plugins.cool_down()),
                ..transient(f.code(), f.to_string())
            },
            CallError::Plugin(f) => permanent(f.code(), f.to_string()),
            CallError::Audit(m) => transient("audit_failed", m),
        })?;
    tracing::debug!(job = %job.id, fuel = outcome.fuel_used, elapsed_ms = outcome.elapsed.as_millis() as u64, "parsed");
    let _ = app.db.set_job_progress(job, 0.3).await;

    let records: Vec<NewRecord> = parsed
        .records
        .iter()
        .map(|r| new_record(&document, r))
        .collect();
    let origin = Origin {
        clinic: job.clinic_id,
        patient: document.patient_id,
        document: Some((document.id, document.created_at)),
    };
    let prepared = app
        .indexer
        .prepare(&origin, &records, parsed.sections)
        .await
        .map_err(pipeline_failure)?;
    tracing::debug!(job = %job.id, chunks = prepared.chunks.len(), reused = prepared.reused, "embedded");
    let _ = app.db.set_job_progress(job, 0.8).await;

    let db = &app.db;
    let committed = app
        .indexer
        .commit(&origin, &prepared, async |chunks| {
            db.complete_job(job, document.patient_id, &records, chunks)
                .await
        })
        .await
        .map_err(pipeline_failure)?;
    if committed == Committed::Gone {
        // Either the document went away (withdraw what is left of it) or the
        // job is no longer this worker's (leave everything to its new owner).
        let exists = app
            .db
            .document_in_clinic(job.clinic_id, document.id)
            .await
            .map_err(|e| transient("database_unavailable", e))?
            .is_some();
        if exists {
            return Err(permanent(LEASE_LOST, "the worker lost its lease"));
        }
        app.forget
            .withdraw_document(job.clinic_id, document.patient_id, document.id)
            .await;
        return Err(permanent("document_missing", "the document was deleted"));
    }
    if !records.is_empty() {
        app.announce(super::Arrival {
            clinic: job.clinic_id,
            patient: document.patient_id,
            records: records.iter().map(|r| r.id).collect(),
        });
    }
    Ok(())
}

/// Every pipeline failure is transient: the store or the model may recover.
fn pipeline_failure(e: PipelineError) -> JobFailure {
    match e {
        PipelineError::ModelUnavailable => {
            transient("model_unavailable", "the embedding model is not loaded")
        }
        PipelineError::Embed(super::indexing::IndexError::Db(e)) | PipelineError::Commit(e) => {
            transient("database_unavailable", e)
        }
        PipelineError::Embed(super::indexing::IndexError::Model(m)) => transient("model_failed", m),
        PipelineError::Vectors(m) => transient("vector_store_failed", m),
        PipelineError::Internal(m) => transient("internal", m),
    }
}
