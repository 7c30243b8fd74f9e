//! The audit trail: who did what to which clinic's or patient's data, when,
//! with what outcome. Append-only (triggers refuse updates and deletes) and
//! hash-chained: each entry's hash covers its fields and the previous entry's
//! hash, so [`Db::verify_audit`] names the first entry that was edited,
//! inserted or removed behind our back.
//!
//! Appends are serialised (SQLite's write lock; a transaction-scoped advisory
//! lock on PostgreSQL) so the chain never forks. Callers that change data
//! append in the same transaction as the change ([`append_audit!`]); a
//! failure to audit fails the whole request.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{Db, WritePool};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Something to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// The entry's id.
    pub id: Uuid,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The casbin subject of the caller, or `system`.
    pub actor: String,
    /// The clinic concerned.
    pub clinic_id: Option<Uuid>,
    /// The patient concerned.
    pub patient_id: Option<Uuid>,
    /// The resource, from the fixed vocabulary (`patient`, `record`...).
    pub resource: String,
    /// The action (`read`, `create`, `erase`...).
    pub action: String,
    /// `allowed`, `denied`, `succeeded`, `failed`.
    pub outcome: String,
    /// The request id, when a request caused it.
    pub request_id: Option<String>,
    /// PHI-free details (ids, counts), as JSON text.
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event happening now.
    pub fn now(actor: &str, resource: &str, action: &str, outcome: &str) -> AuditEvent {
        AuditEvent {
            id: super::new_id(),
            at: super::now(),
            actor: actor.to_owned(),
            clinic_id: None,
            patient_id: None,
            resource: resource.to_owned(),
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            request_id: None,
            detail: None,
        }
    }

    /// The hash of this event chained after `prev`.
    pub fn hash(&self, prev: &str) -> String {
        let opt = |v: &Option<Uuid>| v.map(|u| u.to_string()).unwrap_or_default();
        let fields = [
            prev.to_owned(),
            self.id.to_string(),
            self.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            self.actor.clone(),
            opt(&self.clinic_id),
            opt(&self.patient_id),
            self.resource.clone(),
            self.action.clone(),
            self.outcome.clone(),
            self.request_id.clone().unwrap_or_default(),
            self.detail.clone().unwrap_or_default(),
        ];
        let mut hasher = Sha256::new();
        for field in fields {
            // Length-prefixed, so no two field lists hash alike.
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field.as_bytes());
        }
        hex::encode(hasher.finalize())
    }
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// The entry's id.
    pub id: Uuid,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who: a casbin subject (`token:<id>`, `user:<id>`) or `system`.
    pub actor: String,
    /// The clinic concerned.
    pub clinic_id: Option<Uuid>,
    /// The patient concerned.
    pub patient_id: Option<Uuid>,
    /// The resource.
    pub resource: String,
    /// The action.
    pub action: String,
    /// The outcome.
    pub outcome: String,
    /// The request id.
    pub request_id: Option<String>,
    /// PHI-free details as JSON text.
    pub detail: Option<String>,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

impl AuditEntry {
    fn event(&self) -> AuditEvent {
        AuditEvent {
            id: self.id,
            at: self.at,
            actor: self.actor.clone(),
            clinic_id: self.clinic_id,
            patient_id: self.patient_id,
            resource: self.resource.clone(),
            action: self.action.clone(),
            outcome: self.outcome.clone(),
            request_id: self.request_id.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// What verifying the chain found.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Verification {
    /// Whether every entry checked out.
    pub ok: bool,
    /// Entries checked.
    pub checked: i64,
    /// The first entry that does not fit the chain.
    pub first_broken: Option<Broken>,
}

/// An entry that breaks the chain.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Broken {
    /// Its position.
    pub seq: i64,
    /// Its id.
    pub id: Uuid,
    /// `altered` (its hash does not match its fields) or `unlinked` (it does
    /// not point at the entry before it: one was removed or inserted).
    pub reason: String,
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this patient.
    pub patient: Option<Uuid>,
    /// Only this action.
    pub action: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "seq, id, at, actor, clinic_id, patient_id, resource, action, outcome, \
    request_id, detail, prev_hash, hash";

/// Appends an event inside an open write transaction `$tx`, serialised with
/// every other append ([`WriteTx::serialize_audit`](crate::db::WriteTx)).
#[macro_export]
macro_rules! append_audit {
    ($tx:expr, $event:expr) => {{
        let event: &$crate::db::audit::AuditEvent = $event;
        $crate::db::WriteTx::serialize_audit(&mut $tx).await?;
        let prev: Option<String> =
            sqlx::query_scalar("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *$tx)
                .await?;
        let prev = prev.unwrap_or_else(|| $crate::db::audit::GENESIS.to_owned());
        let hash = event.hash(&prev);
        sqlx::query(
            "INSERT INTO audit_events (id, at, actor, clinic_id, patient_id, resource, action,
             outcome, request_id, detail, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(event.id)
        .bind(event.at)
        .bind(&event.actor)
        .bind(event.clinic_id)
        .bind(event.patient_id)
        .bind(&event.resource)
        .bind(&event.action)
        .bind(&event.outcome)
        .bind(&event.request_id)
        .bind(&event.detail)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *$tx)
        .await?;
    }};
}

impl Db {
    /// Appends one event in its own transaction.
    pub async fn append_audit(&self, event: &AuditEvent) -> sqlx::Result<()> {
        crate::on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            append_audit!(tx, event);
            tx.commit().await
        })
    }

    /// A page of a clinic's trail, oldest first, after `after_seq`.
    pub async fn audit_entries(
        &self,
        clinic: Uuid,
        filter: &AuditFilter,
        after_seq: Option<i64>,
        limit: i64,
    ) -> sqlx::Result<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events
             WHERE clinic_id = $1
               AND ($2 IS NULL OR actor = $2)
               AND ($3 IS NULL OR patient_id = $3)
               AND ($4 IS NULL OR action = $4)
               AND ($5 IS NULL OR at >= $5)
               AND ($6 IS NULL OR at < $6)
               AND ($7 IS NULL OR seq > $7)
             ORDER BY seq LIMIT $8"
        );
        crate::on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(&filter.actor)
                .bind(filter.patient)
                .bind(&filter.action)
                .bind(filter.since)
                .bind(filter.until)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
    }

    /// Walks the whole chain in order and names the first entry that does
    /// not fit.
    pub async fn verify_audit(&self) -> sqlx::Result<Verification> {
        let mut prev = GENESIS.to_owned();
        let mut checked = 0;
        let mut after = 0i64;
        loop {
            let sql = format!(
                "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 1000"
            );
            let page: Vec<AuditEntry> = crate::on_pool!(self, pool => {
                sqlx::query_as(AssertSqlSafe(sql)).bind(after).fetch_all(pool).await?
            });
            let Some(last) = page.last() else {
                return Ok(Verification {
                    ok: true,
                    checked,
                    first_broken: None,
                });
            };
            after = last.seq;
            for entry in &page {
                checked += 1;
                let reason = if entry.prev_hash != prev {
                    Some("unlinked")
                } else if entry.event().hash(&prev) != entry.hash {
                    Some("altered")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Ok(Verification {
                        ok: false,
                        checked,
                        first_broken: Some(Broken {
                            seq: entry.seq,
                            id: entry.id,
                            reason: reason.to_owned(),
                        }),
                    });
                }
                prev = entry.hash.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_in_the_hash() {
        let event = AuditEvent::now("token:1", "patient", "read", "allowed");
        let base = event.hash(GENESIS);
        assert_eq!(base.len(), 64);
        assert_ne!(event.hash("1"), base, "the previous hash");
        let mut changed = event.clone();
        changed.outcome = "denied".into();
        assert_ne!(changed.hash(GENESIS), base);
        let mut moved = event.clone();
        moved.patient_id = Some(Uuid::nil());
        assert_ne!(moved.hash(GENESIS), base);
        let mut shifted = event.clone();
        shifted.actor = "token:1p".into();
        shifted.resource = "atient".into();
        assert_ne!(shifted.hash(GENESIS), base, "field boundaries count");
    }
}
