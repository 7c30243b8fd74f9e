//! Chunks: the searchable pieces of a document. Their text lives here, in SQL;
//! the vector index only points back at them by id.

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::Db;
use crate::on_pool;

/// A chunk of a document's text.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Chunk {
    /// The chunk's id (also its id in the vector index).
    pub id: Uuid,
    /// The clinic.
    pub clinic_id: Uuid,
    /// The patient.
    pub patient_id: Uuid,
    /// The document it came from.
    pub document_id: Uuid,
    /// Its position in the document, from 0.
    pub ordinal: i64,
    /// The section heading it sits under, if any.
    pub section: Option<String>,
    /// The text.
    pub text: String,
    /// First byte of the source span.
    pub span_start: i64,
    /// End byte of the source span (exclusive).
    pub span_end: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
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
        let mut found = Vec::with_capacity(ids.len());
        // Small batches keep the statement portable (no array binds in SQLite).
        for batch in ids.chunks(64) {
            let marks: Vec<String> = (0..batch.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT id, clinic_id, patient_id, document_id, ordinal, section, text, span_start, span_end, created_at
                 FROM chunks WHERE clinic_id = $1 AND patient_id = $2 AND id IN ({})",
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
}
