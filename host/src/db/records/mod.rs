//! Records: a patient's structured clinical facts (observations, medications,
//! conditions, allergies, encounters, notes), each with its provenance.
//!
//! A record comes from a parsed document (its `document_id` and source span
//! say where) or is posted directly by a client. Codes, details and values are
//! stored column by column where search and filters need them, and as JSON
//! where they are only read back.

mod fields;
mod query;

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

pub use fields::{
    Coding, Detail, NewRecord, Provenance, Range, Record, RecordFields, RecordFilter, RecordKind,
    Value, effective_instant,
};
pub use query::{RecordQuery, is_active};

use crate::db::chunks::Chunk;
use crate::db::{Db, WritePool, escape_like, now};
use crate::{insert_chunks, on_pool};

#[derive(sqlx::FromRow)]
struct RecordRow {
    id: Uuid,
    patient_id: Uuid,
    document_id: Option<Uuid>,
    kind: String,
    display: String,
    codes: String,
    status: Option<String>,
    value_num: Option<f64>,
    value_text: Option<String>,
    unit: Option<String>,
    range_low: Option<f64>,
    range_high: Option<f64>,
    range_text: Option<String>,
    interpretation: Option<String>,
    effective: Option<String>,
    effective_end: Option<String>,
    effective_at: Option<DateTime<Utc>>,
    details: String,
    source_id: Option<String>,
    span_start: Option<i64>,
    span_end: Option<i64>,
    page: Option<i64>,
    created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, patient_id, document_id, kind, display, codes, status, value_num, \
    value_text, unit, range_low, range_high, range_text, interpretation, effective, effective_end, \
    effective_at, details, source_id, span_start, span_end, page, created_at";

impl From<RecordRow> for Record {
    fn from(row: RecordRow) -> Record {
        let value = (row.value_num.is_some() || row.value_text.is_some() || row.unit.is_some())
            .then_some(Value {
                value: row.value_num,
                text: row.value_text,
                unit: row.unit,
            });
        let reference_range =
            (row.range_low.is_some() || row.range_high.is_some() || row.range_text.is_some())
                .then_some(Range {
                    low: row.range_low,
                    high: row.range_high,
                    text: row.range_text,
                });
        Record {
            id: row.id,
            patient_id: row.patient_id,
            fields: RecordFields {
                // Written by us from a `RecordKind`; a row edited by hand to
                // something else reads as a note rather than failing the list.
                kind: RecordKind::parse(&row.kind).unwrap_or(RecordKind::Note),
                // Written by us from typed values: unreadable JSON cannot happen
                // short of manual edits, and then shows as no codes.
                codes: serde_json::from_str(&row.codes).unwrap_or_default(),
                display: row.display,
                status: row.status,
                value,
                reference_range,
                interpretation: row.interpretation,
                effective: row.effective,
                effective_end: row.effective_end,
                details: serde_json::from_str(&row.details).unwrap_or_default(),
            },
            effective_at: row.effective_at,
            provenance: Provenance {
                document_id: row.document_id,
                source_id: row.source_id,
                span_start: row.span_start,
                span_end: row.span_end,
                page: row.page,
            },
            created_at: row.created_at,
        }
    }
}

/// Inserts records inside an open transaction `$tx` of either backend.
#[macro_export]
macro_rules! insert_records {
    ($tx:expr, $clinic:expr, $patient:expr, $records:expr, $at:expr) => {
        for record in $records {
            let f = &record.fields;
            let first = f.codes.first();
            sqlx::query(
                "INSERT INTO records (id, clinic_id, patient_id, document_id, kind, code_system, code,
                 display, codes, status, value_num, value_text, unit, range_low, range_high, range_text,
                 interpretation, effective, effective_end, effective_at, details, source_id,
                 span_start, span_end, page, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                         $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)",
            )
            .bind(record.id)
            .bind($clinic)
            .bind($patient)
            .bind(record.provenance.document_id)
            .bind(f.kind.as_str())
            .bind(first.map(|c| c.system.as_str()))
            .bind(first.map(|c| c.code.as_str()))
            .bind(&f.display)
            .bind(serde_json::to_string(&f.codes).unwrap_or_else(|_| "[]".into()))
            .bind(&f.status)
            .bind(f.value.as_ref().and_then(|v| v.value))
            .bind(f.value.as_ref().and_then(|v| v.text.as_deref()))
            .bind(f.value.as_ref().and_then(|v| v.unit.as_deref()))
            .bind(f.reference_range.as_ref().and_then(|r| r.low))
            .bind(f.reference_range.as_ref().and_then(|r| r.high))
            .bind(f.reference_range.as_ref().and_then(|r| r.text.as_deref()))
            .bind(&f.interpretation)
            .bind(&f.effective)
            .bind(&f.effective_end)
            .bind(f.effective.as_deref().and_then($crate::db::records::effective_instant))
            .bind(serde_json::to_string(&f.details).unwrap_or_else(|_| "[]".into()))
            .bind(&record.provenance.source_id)
            .bind(record.provenance.span_start)
            .bind(record.provenance.span_end)
            .bind(record.provenance.page)
            .bind($at)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

impl Db {
    /// A page of a patient's records, oldest stored first.
    pub async fn records(
        &self,
        clinic: Uuid,
        patient: Uuid,
        filter: &RecordFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> sqlx::Result<Vec<Record>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM records
             WHERE clinic_id = $1 AND patient_id = $2
               AND ($3 IS NULL OR kind = $3)
               AND ($4 IS NULL OR code = $4 OR codes LIKE $5 ESCAPE '\\')
               AND ($6 IS NULL OR effective_at >= $6)
               AND ($7 IS NULL OR effective_at < $7)
               AND ($8 IS NULL OR id > $8)
             ORDER BY id LIMIT $9"
        );
        // Codes are stored as serde JSON of `Coding`, so `"code":"<code>"` is the
        // exact text of a coding with that code.
        let code_pattern = filter.code.as_ref().map(|code| {
            let json = serde_json::to_string(code).unwrap_or_default();
            format!("%\"code\":{}%", escape_like(&json))
        });
        let rows: Vec<RecordRow> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(patient)
                .bind(filter.kind.map(RecordKind::as_str))
                .bind(&filter.code)
                .bind(code_pattern)
                .bind(filter.since)
                .bind(filter.until)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(Record::from).collect())
    }

    /// One record of a patient.
    pub async fn record(
        &self,
        clinic: Uuid,
        patient: Uuid,
        id: Uuid,
    ) -> sqlx::Result<Option<Record>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM records WHERE clinic_id = $1 AND patient_id = $2 AND id = $3"
        );
        let row: Option<RecordRow> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(patient)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(Record::from))
    }

    /// Stores records posted directly, with their chunks, in one transaction.
    pub async fn add_records(
        &self,
        clinic: Uuid,
        patient: Uuid,
        records: &[NewRecord],
        chunks: &[Chunk],
    ) -> sqlx::Result<()> {
        let at = now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            insert_records!(tx, clinic, patient, records, at);
            insert_chunks!(tx, chunks);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every record of a patient (for the FHIR export), oldest stored first.
    pub async fn all_records(&self, clinic: Uuid, patient: Uuid) -> sqlx::Result<Vec<Record>> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .records(clinic, patient, &RecordFilter::default(), after, 1000)
                .await?;
            let done = page.len() < 1000;
            after = page.last().map(|r| r.id);
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clinical_times_read_as_instants() {
        let at = |s: &str| effective_instant(s).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2024-03-05").as_deref(),
            Some("2024-03-05T00:00:00+00:00")
        );
        assert_eq!(
            at("2024-03-05T10:30:00+02:00").as_deref(),
            Some("2024-03-05T08:30:00+00:00")
        );
        assert_eq!(
            at("202403051030").as_deref(),
            Some("2024-03-05T10:30:00+00:00")
        );
        assert_eq!(
            at("2024-03-05T08:30:00").as_deref(),
            Some("2024-03-05T08:30:00+00:00")
        );
        assert_eq!(at("2024-03").as_deref(), Some("2024-03-01T00:00:00+00:00"));
        assert_eq!(at("2024").as_deref(), Some("2024-01-01T00:00:00+00:00"));
        assert_eq!(at("last tuesday"), None);
        assert_eq!(at("2024-13-01"), None);
    }
}
