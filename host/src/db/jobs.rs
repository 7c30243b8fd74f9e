//! Ingestion jobs: a durable state machine per document,
//! `queued -> running -> succeeded | failed`.
//!
//! A job's chunks are written in the same transaction that marks it
//! `succeeded`, so a document is either fully searchable or not at all. Jobs
//! left `running` by a crash are put back in the queue at start.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::chunks::Chunk;
use super::records::NewRecord;
use super::{Db, WritePool, new_id, now};
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
        }
    }
}

const COLUMNS: &str = "id, clinic_id, document_id, status, attempts, progress, error_code, \
    error_detail, not_before, created_at, updated_at";

impl Db {
    /// One job of a clinic.
    pub async fn job(&self, clinic: Uuid, id: Uuid) -> sqlx::Result<Option<Job>> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE clinic_id = $1 AND id = $2");
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(clinic).bind(id).fetch_optional(pool).await
        })
    }

    /// Takes the oldest queued job and marks it running, or `None` if the queue
    /// is empty. Safe with several workers and several hosts.
    pub async fn claim_job(&self) -> sqlx::Result<Option<Job>> {
        let at = now();
        let claimed = on_pool!(self, pool => pool.claim_job(at).await)?;
        let Some(id) = claimed else { return Ok(None) };
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await
        })
    }

    /// Records progress of a running job.
    pub async fn set_job_progress(&self, id: Uuid, progress: f64) -> sqlx::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE jobs SET progress = $1, updated_at = $2 WHERE id = $3 AND status = 'running'")
                .bind(progress)
                .bind(now())
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Stores a job's records and chunks and marks it succeeded, atomically:
    /// a document is searchable completely or not at all. Records and chunks
    /// of an earlier attempt of the same document are replaced, so running a
    /// job twice gives the same state as running it once. Returns false (and
    /// changes nothing) if the job is no longer running, e.g. because its
    /// document was deleted meanwhile.
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
                 error_detail = NULL, not_before = NULL, updated_at = $1
                 WHERE id = $2 AND status = 'running'",
            )
            .bind(at)
            .bind(job.id)
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
    /// earlier than `not_before`.
    pub async fn retry_job(
        &self,
        id: Uuid,
        code: &str,
        detail: &str,
        not_before: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE jobs SET status = 'queued', error_code = $1, error_detail = $2,
                 not_before = $3, updated_at = $4 WHERE id = $5 AND status = 'running'",
            )
            .bind(code)
            .bind(detail)
            .bind(not_before)
            .bind(now())
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
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

    /// Marks a job failed with a stable code and a PHI-free detail.
    pub async fn fail_job(&self, id: Uuid, code: &str, detail: &str) -> sqlx::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE jobs SET status = 'failed', error_code = $1, error_detail = $2, not_before = NULL,
                 updated_at = $3 WHERE id = $4 AND status IN ('queued', 'running')",
            )
            .bind(code)
            .bind(detail)
            .bind(now())
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Puts jobs a crashed process left `running` back in the queue; a job
    /// interrupted `max_attempts` times (a document that brings the process
    /// down, say) fails with `interrupted` instead. Returns how many were
    /// requeued.
    pub async fn requeue_running_jobs(&self, max_attempts: i64) -> sqlx::Result<u64> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE jobs SET status = 'failed', error_code = 'interrupted',
                 error_detail = 'the process stopped during every attempt', updated_at = $1
                 WHERE status = 'running' AND attempts >= $2",
            )
            .bind(now())
            .bind(max_attempts)
            .execute(&mut *tx)
            .await?;
            let done = sqlx::query("UPDATE jobs SET status = 'queued', updated_at = $1 WHERE status = 'running'")
                .bind(now())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        })
    }
}
