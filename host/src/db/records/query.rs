//! Reading records the way a retriever asks: by kind, code and display
//! words, active only, newest per code. The kinds and the date filter run in
//! SQL; codes, words, activity and "newest per code" are read from the
//! patient's (bounded) matching rows here, where the codes are typed.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{COLUMNS, Record, RecordKind, RecordRow};
use crate::db::Db;
use crate::on_pool;

/// Rows of one patient a query looks at, newest first.
const SCAN_LIMIT: i64 = 5000;

/// Statuses that mean a record no longer holds.
const INACTIVE: [&str; 9] = [
    "resolved",
    "inactive",
    "stopped",
    "completed",
    "entered-in-error",
    "refuted",
    "cancelled",
    "remission",
    "discontinued",
];

/// Which records to read (see the `records` import of the plugin contract).
#[derive(Debug, Clone, Default)]
pub struct RecordQuery {
    /// Only these kinds; all when empty.
    pub kinds: Vec<RecordKind>,
    /// Only records with one of these codes; all when empty.
    pub codes: Vec<String>,
    /// Only records whose display or code displays contain one of these,
    /// case-insensitive; all when empty.
    pub terms: Vec<String>,
    /// Only records that still hold.
    pub active_only: bool,
    /// Only the newest record per code (or per display, without codes).
    pub latest_per_code: bool,
    /// Only records effective at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: usize,
}

impl RecordQuery {
    fn matches(&self, record: &Record, now: DateTime<Utc>) -> bool {
        let f = &record.fields;
        let code_ok = self.codes.is_empty()
            || f.codes
                .iter()
                .any(|c| self.codes.iter().any(|wanted| wanted == &c.code));
        let term_ok = self.terms.is_empty() || {
            let mut text = f.display.to_lowercase();
            for c in &f.codes {
                if let Some(d) = &c.display {
                    text.push(' ');
                    text.push_str(&d.to_lowercase());
                }
            }
            self.terms
                .iter()
                .any(|t| !t.trim().is_empty() && text.contains(&t.trim().to_lowercase()))
        };
        code_ok && term_ok && (!self.active_only || is_active(record, now))
    }
}

/// Whether a record still holds: no inactive status, no end in the past.
pub fn is_active(record: &Record, now: DateTime<Utc>) -> bool {
    let f = &record.fields;
    let status_ok = f
        .status
        .as_deref()
        .is_none_or(|s| !INACTIVE.contains(&s.trim().to_lowercase().as_str()));
    let ended = f
        .effective_end
        .as_deref()
        .and_then(super::effective_instant)
        .is_some_and(|end| end < now);
    status_ok && !ended
}

/// What "the same result" means for newest-per-code.
fn code_key(record: &Record) -> String {
    match record.fields.codes.first() {
        Some(c) => format!("{}|{}", c.system, c.code),
        None => record.fields.display.trim().to_lowercase(),
    }
}

impl Db {
    /// A patient's records matching `query`, newest effective first (undated
    /// last).
    pub async fn query_records(
        &self,
        clinic: Uuid,
        patient: Uuid,
        query: &RecordQuery,
    ) -> sqlx::Result<Vec<Record>> {
        let kinds: Vec<&str> = query.kinds.iter().map(|k| k.as_str()).collect();
        let marks: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 4)).collect();
        let kind_filter = if kinds.is_empty() {
            String::new()
        } else {
            format!("AND kind IN ({})", marks.join(", "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM records
             WHERE clinic_id = $1 AND patient_id = $2 AND ($3 IS NULL OR effective_at >= $3)
             {kind_filter}
             ORDER BY effective_at DESC NULLS LAST, created_at DESC, id
             LIMIT {SCAN_LIMIT}"
        );
        let rows: Vec<RecordRow> = on_pool!(self, pool => {
            let mut q = sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(patient)
                .bind(query.since);
            for kind in &kinds {
                q = q.bind(*kind);
            }
            q.fetch_all(pool).await?
        });
        let now = crate::db::now();
        let mut seen = HashSet::new();
        Ok(rows
            .into_iter()
            .map(Record::from)
            .filter(|r| query.matches(r, now))
            .filter(|r| !query.latest_per_code || seen.insert(code_key(r)))
            .take(query.limit)
            .collect())
    }
}
