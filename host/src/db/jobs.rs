//! Ingestion jobs: a durable state machine per document,
//! `queued -> running -> succeeded | failed`.
//!
//! A job's chunks are written in the same transaction that marks it
//! `succeeded`, so a document is either fully searchable or not at all.
//!
//! A claimed job is leased: it belongs to one worker until `lease_expires_at`,
//! and the worker renews the lease while it runs. A job whose lease expired
//! (its instance crashed or lost the database) goes back to the queue at the
//! next claim, on any instance; every finishing statement checks the lease, so
//! a worker that lost its job changes nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::chunks::Chunk;
use super::records::NewRecord;
use super::{Db, WritePool, WriteTx, new_id, now};
use crate::{insert_chunks, insert_records, on_pool};

/// An ingestion job.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Job {
    /// The job's id.
    pub id: Uuid,
    /// The clinic it runs for.
    pub clinic_id: Uuid,
    /// The document it ingests.
    pub document_id: Uuid,
    /// queued, running, succeeded or failed.
    pub status: String,
    /// How many times a worker has started it.
    pub attempts: i64,
    /// Progress from 0 to 1.
    pub progress: f64,
    /// A stable error code when failed, e.g. `plugin_fuel_exhausted`.
    pub error_code: Option<String>,
    /// A PHI-free explanation when failed (or of the last transient failure
    /// while a retry is pending).
    pub error_detail: Option<String>,
    /// A retry after a transient failure starts no earlier than this.
    pub not_before: Option<DateTime<Utc>>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The worker holding a running job.
    #[serde(skip)]
    pub lease_owner: Option<String>,
    /// When that worker's hold ends unless renewed.
    #[serde(skip)]
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// How a worker claims jobs.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The worker's identity (instance and slot); finishers check it.
    pub owner: String,
    /// How long a job stays the worker's without a renewal.
    pub lease: chrono::TimeDelta,
    /// Jobs of one clinic that may run at once, across every instance, so one
    /// clinic's uploads or a stuck plugin never hold every worker.
    pub per_clinic: i64,
    /// Starts after which a job whose lease keeps expiring (a document that
    /// brings its process down, say) fails as `interrupted`.
    pub max_starts: i64,
}

impl Job {
    /// A new queued job for `document`.
    pub fn queued(clinic: Uuid, document: Uuid, at: DateTime<Utc>) -> Job {
        Job {
            id: new_id(),
            clinic_id: clinic,
            document_id: document,
            status: "queued".into(),
            attempts: 0,
            progress: 0.0,
            error_code: None,
            error_detail: None,
            not_before: None,
            created_at: at,
            updated_at: at,
            lease_owner: None,
            lease_expires_at: None,
        }
    }
}

const COLUMNS: &str = "id, clinic_id, document_id, status, attempts, progress, error_code, \
    error_detail, not_before, created_at, updated_at, lease_owner, lease_expires_at";

/// Running jobs whose lease ran out.
const EXPIRED: &str = "status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < $1)";

impl Db {
    /// One job of a clinic.
    pub async fn job(&self, clinic: Uuid, id: Uuid) -> sqlx::Result<Option<Job>> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE clinic_id = $1 AND id = $2");
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(clinic).bind(id).fetch_optional(pool).await
        })
    }

    /// Puts jobs whose lease ran out back in the queue (or fails them as
    /// `interrupted` after `claim.max_starts`), then takes the oldest due job
    /// of a clinic with fewer than `claim.per_clinic` jobs running and leases
    /// it to `claim.owner`; `None` if there is none. Claims are serialised
    /// ([`WriteTx::serialize_claims`](super::WriteTx::serialize_claims)), so
    /// no two workers on any host take the same job or overshoot the bound.
    pub async fn claim_job(&self, claim: &Claim) -> sqlx::Result<Option<Job>> {
        let at = now();
        let claimed: Option<Uuid> = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            tx.serialize_claims().await?;
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE jobs SET status = 'failed', error_code = 'interrupted',
                 error_detail = 'the worker stopped during every attempt', lease_owner = NULL,
                 lease_expires_at = NULL, updated_at = $1 WHERE {EXPIRED} AND attempts >= $2"
            )))
            .bind(at)
            .bind(claim.max_starts)
            .execute(&mut *tx)
            .await?;
            let expired = sqlx::query(AssertSqlSafe(format!(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL,
                 updated_at = $1 WHERE {EXPIRED}"
            )))
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if expired > 0 {
                tracing::warn!(jobs = expired, "requeued jobs whose worker stopped renewing its lease");
            }
            let id: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM jobs AS j WHERE status = 'queued'
                   AND (not_before IS NULL OR not_before <= $1)
                   AND (SELECT COUNT(*) FROM jobs AS r
                        WHERE r.clinic_id = j.clinic_id AND r.status = 'running') < $2
                 ORDER BY created_at, id LIMIT 1",
            )
            .bind(at)
            .bind(claim.per_clinic)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = id {
                sqlx::query(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $1,
                     lease_expires_at = $2, claimed_at = $3, updated_at = $3 WHERE id = $4",
                )
                .bind(&claim.owner)
                .bind(at + claim.lease)
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            id
        });
        let Some(id) = claimed else { return Ok(None) };
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await
        })
    }

    /// When the oldest job still running under a live lease was claimed:
    /// whatever a live job writes is younger than this.
    pub async fn oldest_live_claim(&self) -> sqlx::Result<Option<DateTime<Utc>>> {
        on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT MIN(claimed_at) FROM jobs WHERE status = 'running' AND lease_expires_at >= $1",
            )
            .bind(now())
            .fetch_one(pool)
            .await
        })
    }

    /// Extends the lease of a running job held by its worker; false if the
    /// worker no longer holds it (it expired and another worker took it, or
    /// the job was settled or deleted).
    pub async fn renew_lease(&self, job: &Job, until: DateTime<Utc>) -> sqlx::Result<bool> {
        let done = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE jobs SET lease_expires_at = $1 WHERE id = $2 AND status = 'running'
                 AND lease_owner = $3",
            )
            .bind(until)
            .bind(job.id)
            .bind(&job.lease_owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Records progress of a running job held by its worker.
    pub async fn set_job_progress(&self, job: &Job, progress: f64) -> sqlx::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE jobs SET progress = $1, updated_at = $2 WHERE id = $3 AND status = 'running'
                 AND lease_owner = $4",
            )
            .bind(progress)
            .bind(now())
            .bind(job.id)
            .bind(&job.lease_owner)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Stores a job's records and chunks and marks it succeeded, atomically:
    /// a document is searchable completely or not at all. Records and chunks
    /// of an earlier attempt of the same document are replaced, so running a
    /// job twice gives the same state as running it once. Returns false (and
    /// changes nothing) if the job is no longer running under this worker's
    /// lease, e.g. because its document was deleted meanwhile or its lease
    /// expired and another worker took it.
    pub async fn complete_job(
        &self,
        job: &Job,
        patient: Uuid,
        records: &[NewRecord],
        chunks: &[Chunk],
    ) -> sqlx::Result<bool> {
        let at = now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE jobs SET status = 'succeeded', progress = 1, error_code = NULL,
                 error_detail = NULL, not_before = NULL, lease_owner = NULL,
                 lease_expires_at = NULL, updated_at = $1
                 WHERE id = $2 AND status = 'running' AND lease_owner = $3",
            )
            .bind(at)
            .bind(job.id)
            .bind(&job.lease_owner)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM chunks WHERE clinic_id = $1 AND document_id = $2")
                .bind(job.clinic_id)
                .bind(job.document_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM records WHERE clinic_id = $1 AND document_id = $2")
                .bind(job.clinic_id)
                .bind(job.document_id)
                .execute(&mut *tx)
                .await?;
            insert_records!(tx, job.clinic_id, patient, records, at);
            insert_chunks!(tx, chunks);
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Puts a job that failed transiently back in the queue, to be claimed no
    /// earlier than `not_before`; false if the worker no longer holds it.
    pub async fn retry_job(
        &self,
        job: &Job,
        code: &str,
        detail: &str,
        not_before: DateTime<Utc>,
    ) -> sqlx::Result<bool> {
        let done = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE jobs SET status = 'queued', error_code = $1, error_detail = $2,
                 not_before = $3, lease_owner = NULL, lease_expires_at = NULL, updated_at = $4
                 WHERE id = $5 AND status = 'running' AND lease_owner = $6",
            )
            .bind(code)
            .bind(detail)
            .bind(not_before)
            .bind(now())
            .bind(job.id)
            .bind(&job.lease_owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// The most recent job of a document.
    pub async fn latest_job(&self, clinic: Uuid, document: Uuid) -> sqlx::Result<Option<Job>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE clinic_id = $1 AND document_id = $2
             ORDER BY created_at DESC, id DESC LIMIT 1"
        );
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(clinic).bind(document).fetch_optional(pool).await
        })
    }

    /// Every job of a clinic, oldest first (for operations and the crash
    /// tests).
    pub async fn clinic_jobs(&self, clinic: Uuid) -> sqlx::Result<Vec<Job>> {
        let sql =
            format!("SELECT {COLUMNS} FROM jobs WHERE clinic_id = $1 ORDER BY created_at, id");
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(clinic).fetch_all(pool).await
        })
    }

    /// Counts all jobs by status (for operations and the crash tests).
    pub async fn job_counts(&self) -> sqlx::Result<Vec<(String, i64)>> {
        on_pool!(self, pool => {
            sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status")
                .fetch_all(pool)
                .await
        })
    }

    /// Marks a running job failed with a stable code and a PHI-free detail;
    /// false if the worker no longer holds it.
    pub async fn fail_job(&self, job: &Job, code: &str, detail: &str) -> sqlx::Result<bool> {
        let done = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE jobs SET status = 'failed', error_code = $1, error_detail = $2, not_before = NULL,
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $3
                 WHERE id = $4 AND status = 'running' AND lease_owner = $5",
            )
            .bind(code)
            .bind(detail)
            .bind(now())
            .bind(job.id)
            .bind(&job.lease_owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }
}
