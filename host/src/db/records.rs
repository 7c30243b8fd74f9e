//! Records: a patient's structured clinical facts (observations, medications,
//! conditions, allergies, encounters, notes), each with its provenance.
//!
//! A record comes from a parsed document (its `document_id` and source span
//! say where) or is posted directly by a client. Codes, details and values are
//! stored column by column where search and filters need them, and as JSON
//! where they are only read back.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::chunks::Chunk;
use super::{Db, WritePool, escape_like, now};
use crate::{insert_chunks, on_pool};

/// The record kinds, as stored and as accepted by the API.
pub const KINDS: [&str; 6] = [
    "observation",
    "medication",
    "condition",
    "allergy",
    "encounter",
    "note",
];

/// A code from a terminology (FHIR `Coding`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Coding {
    /// The code system URI, e.g. `http://loinc.org`.
    pub system: String,
    /// The code, e.g. `4548-4`.
    pub code: String,
    /// Human-readable text for the code.
    #[serde(default)]
    pub display: Option<String>,
}

/// A value: a number with its unit, or text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Value {
    /// The number, when the value is numeric.
    #[serde(default)]
    pub value: Option<f64>,
    /// The value as written, e.g. `7.2` or `positive`.
    #[serde(default)]
    pub text: Option<String>,
    /// The unit, e.g. `%` or `mg/dL`.
    #[serde(default)]
    pub unit: Option<String>,
}

/// A reference range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// Lower bound, inclusive.
    #[serde(default)]
    pub low: Option<f64>,
    /// Upper bound, inclusive.
    #[serde(default)]
    pub high: Option<f64>,
    /// The range as written, e.g. `4.0-5.6`.
    #[serde(default)]
    pub text: Option<String>,
}

/// A named detail, e.g. `dose` = `500 mg`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Detail {
    /// The detail's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// What a record says, as a parser or a client states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordFields {
    /// observation, medication, condition, allergy, encounter or note.
    pub kind: String,
    /// Codes, most specific first.
    #[serde(default)]
    pub codes: Vec<Coding>,
    /// What a clinician would read, e.g. `Hemoglobin A1c`.
    pub display: String,
    /// Status as given, e.g. `final` or `active`.
    #[serde(default)]
    pub status: Option<String>,
    /// The value, for observations.
    #[serde(default)]
    pub value: Option<Value>,
    /// The reference range, for observations.
    #[serde(default)]
    pub reference_range: Option<Range>,
    /// An interpretation flag, e.g. `H`.
    #[serde(default)]
    pub interpretation: Option<String>,
    /// When it happened or started: a date or an RFC 3339 date-time.
    #[serde(default)]
    pub effective: Option<String>,
    /// When it ended, for periods.
    #[serde(default)]
    pub effective_end: Option<String>,
    /// Further named details (dose, route, reaction, note text...).
    #[serde(default)]
    pub details: Vec<Detail>,
}

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, utoipa::ToSchema)]
pub struct Provenance {
    /// The document it was parsed from; null when posted directly.
    pub document_id: Option<Uuid>,
    /// The source's own id for it (a FHIR resource id, an HL7 set id).
    pub source_id: Option<String>,
    /// First byte of the span in the document it came from.
    pub span_start: Option<i64>,
    /// End of that span (exclusive).
    pub span_end: Option<i64>,
    /// The 1-based page, for paged formats.
    pub page: Option<i64>,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Record {
    /// The record's id.
    pub id: Uuid,
    /// The patient.
    pub patient_id: Uuid,
    /// What it says.
    #[serde(flatten)]
    pub fields: RecordFields,
    /// `effective` as an instant (start of the day for dates), when it parses.
    pub effective_at: Option<DateTime<Utc>>,
    /// Where it came from.
    pub provenance: Provenance,
    /// When MedMemory stored it.
    pub created_at: DateTime<Utc>,
}

/// A record to store: its content and provenance; ids are chosen by the caller
/// so that chunks can point at it in the same transaction.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// The id to store it under.
    pub id: Uuid,
    /// What it says.
    pub fields: RecordFields,
    /// Where it came from.
    pub provenance: Provenance,
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only records with this code in any of their codings.
    pub code: Option<String>,
    /// Only records effective at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only records effective before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// Reads a clinical time as an instant: RFC 3339, a local date-time (taken as
/// UTC), a date, a month or a year (their first instant), or the compact HL7
/// forms `YYYYMMDD[HHMM[SS]]`.
pub fn effective_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y%m%d%H%M%S",
        "%Y%m%d%H%M",
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Some(at.and_utc());
        }
    }
    let date = match text.len() {
        10 => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok(),
        8 => NaiveDate::parse_from_str(text, "%Y%m%d").ok(),
        7 => NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok(),
        4 => NaiveDate::parse_from_str(&format!("{text}-01-01"), "%Y-%m-%d").ok(),
        _ => None,
    }?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

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
                kind: row.kind,
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
            .bind(&f.kind)
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
                .bind(&filter.kind)
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
