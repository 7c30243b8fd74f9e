//! Chunks: the searchable pieces of a patient's memory. Their text lives here,
//! in SQL; the vector index only holds copies keyed by chunk id and can be
//! rebuilt from this table.

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::Db;
use crate::on_pool;

/// A chunk of a document's text or of a record's rendering.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Chunk {
    /// The chunk's id (also its id in the vector index).
    pub id: Uuid,
    /// The clinic.
    pub clinic_id: Uuid,
    /// The patient.
    pub patient_id: Uuid,
    /// The document it came from, if any.
    pub document_id: Option<Uuid>,
    /// The record it states, if any.
    pub record_id: Option<Uuid>,
    /// Its position in the document (or 0 for a posted record).
    pub ordinal: i64,
    /// The section heading it sits under, if any.
    pub section: Option<String>,
    /// The record kind it states, or `note` for document text.
    pub kind: String,
    /// When what it states happened, if known.
    pub effective_at: Option<DateTime<Utc>>,
    /// The text.
    pub text: String,
    /// First byte of the source span.
    pub span_start: i64,
    /// End byte of the source span (exclusive).
    pub span_end: i64,
    /// The 1-based page of the source, for paged formats.
    pub page: Option<i64>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The columns of [`Chunk`], in order.
pub const CHUNK_COLUMNS: &str = "id, clinic_id, patient_id, document_id, record_id, ordinal, \
    section, kind, effective_at, text, span_start, span_end, page, created_at";

/// Inserts chunks inside an open transaction `$tx` of either backend.
#[macro_export]
macro_rules! insert_chunks {
    ($tx:expr, $chunks:expr) => {
        for chunk in $chunks {
            sqlx::query(
                "INSERT INTO chunks (id, clinic_id, patient_id, document_id, record_id, ordinal,
                 section, kind, effective_at, text, span_start, span_end, page, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(chunk.id)
            .bind(chunk.clinic_id)
            .bind(chunk.patient_id)
            .bind(chunk.document_id)
            .bind(chunk.record_id)
            .bind(chunk.ordinal)
            .bind(&chunk.section)
            .bind(&chunk.kind)
            .bind(chunk.effective_at)
            .bind(&chunk.text)
            .bind(chunk.span_start)
            .bind(chunk.span_end)
            .bind(chunk.page)
            .bind(chunk.created_at)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

impl Db {
    /// The chunks with these ids that belong to this clinic and patient; any id
    /// of another clinic or patient is silently left out.
    pub async fn patient_chunks(
        &self,
        clinic: Uuid,
        patient: Uuid,
        ids: &[Uuid],
    ) -> sqlx::Result<Vec<Chunk>> {
        self.patient_chunks_where(clinic, patient, "id", ids).await
    }

    /// The chunks stating these records of this clinic and patient; records
    /// of another clinic or patient are silently left out.
    pub async fn record_chunks(
        &self,
        clinic: Uuid,
        patient: Uuid,
        records: &[Uuid],
    ) -> sqlx::Result<Vec<Chunk>> {
        self.patient_chunks_where(clinic, patient, "record_id", records)
            .await
    }

    async fn patient_chunks_where(
        &self,
        clinic: Uuid,
        patient: Uuid,
        column: &'static str,
        ids: &[Uuid],
    ) -> sqlx::Result<Vec<Chunk>> {
        let mut found = Vec::with_capacity(ids.len());
        // Small batches keep the statement portable (no array binds in SQLite).
        for batch in ids.chunks(64) {
            let marks: Vec<String> = (0..batch.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT {CHUNK_COLUMNS} FROM chunks
                 WHERE clinic_id = $1 AND patient_id = $2 AND {column} IN ({})",
                marks.join(", ")
            );
            let rows: Vec<Chunk> = on_pool!(self, pool => {
                let mut query = sqlx::query_as(AssertSqlSafe(sql)).bind(clinic).bind(patient);
                for id in batch {
                    query = query.bind(*id);
                }
                query.fetch_all(pool).await?
            });
            found.extend(rows);
        }
        Ok(found)
    }

    /// A page of a clinic's chunks in id order (for reindexing and
    /// reconciliation), optionally of one patient.
    pub async fn clinic_chunks(
        &self,
        clinic: Uuid,
        patient: Option<Uuid>,
        after: Option<Uuid>,
        limit: i64,
    ) -> sqlx::Result<Vec<Chunk>> {
        let sql = format!(
            "SELECT {CHUNK_COLUMNS} FROM chunks
             WHERE clinic_id = $1 AND ($2 IS NULL OR patient_id = $2) AND ($3 IS NULL OR id > $3)
             ORDER BY id LIMIT $4"
        );
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(patient)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
    }

    /// The ids of every committed chunk of a clinic.
    pub async fn clinic_chunk_ids(&self, clinic: Uuid) -> sqlx::Result<Vec<Uuid>> {
        on_pool!(self, pool => {
            sqlx::query_scalar("SELECT id FROM chunks WHERE clinic_id = $1 ORDER BY id")
                .bind(clinic)
                .fetch_all(pool)
                .await
        })
    }
}
