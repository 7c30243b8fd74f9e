//! CDS Hooks data: the EHR clients a clinic trusts (an issuer and its keys,
//! with a casbin subject `cds-client:<id>` whose roles are granted in the
//! same transaction), the JWT ids they have used (a second use is a replay,
//! on any instance), the cards the service handed out and the feedback given
//! on them. Cards and feedback are erased with the patient (cascade).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::audit::AuditEvent;
use super::subject::Subject;
use super::{Db, WritePool, new_id, now};
use crate::{append_audit, on_pool};

/// A registered CDS client.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CdsClient {
    pub id: Uuid,
    pub clinic_id: Uuid,
    /// For admins, e.g. `Epic production`.
    pub name: String,
    /// The `iss` its JWTs carry.
    pub issuer: String,
    /// Its JWK Set, when given out of band (public keys only).
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// The allow-listed URL of its JWK Set, otherwise.
    pub jku: Option<String>,
    /// Its casbin subject, `cds-client:<id>`.
    pub subject: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: Uuid,
    clinic_id: Uuid,
    name: String,
    issuer: String,
    jwks: Option<String>,
    jku: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
}

impl From<ClientRow> for CdsClient {
    fn from(r: ClientRow) -> CdsClient {
        CdsClient {
            subject: Subject::CdsClient(r.id).to_string(),
            id: r.id,
            clinic_id: r.clinic_id,
            name: r.name,
            issuer: r.issuer,
            // Validated before it was stored.
            jwks: r.jwks.and_then(|j| serde_json::from_str(&j).ok()),
            jku: r.jku,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

const CLIENT_COLUMNS: &str = "id, clinic_id, name, issuer, jwks, jku, created_by, created_at";

/// A client to register.
#[derive(Debug, Clone)]
pub struct NewCdsClient {
    pub name: String,
    pub issuer: String,
    pub jwks: Option<serde_json::Value>,
    pub jku: Option<String>,
    /// Roles its subject gets in the clinic.
    pub roles: Vec<String>,
}

/// A card as a CDS service call handed it out.
#[derive(Debug, Clone)]
pub struct IssuedCard {
    pub id: Uuid,
    pub service_id: String,
    pub rule: String,
    pub hook_instance: String,
    /// The alert fingerprint of the card (rule, service, evidence).
    pub fingerprint: String,
    pub indicator: String,
    pub summary: String,
    /// The uuids of its suggestions.
    pub suggestions: Vec<String>,
}

/// Feedback on one card, as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Feedback {
    pub id: Uuid,
    /// The card's uuid.
    pub card: Uuid,
    pub service_id: String,
    /// `accepted` or `overridden`.
    pub outcome: String,
    /// The uuids of the suggestions taken.
    pub accepted_suggestions: Vec<String>,
    /// The override reason's code (`system|code`), if one was given.
    pub override_reason: Option<String>,
    pub user_comment: Option<String>,
    pub outcome_at: DateTime<Utc>,
    /// Who sent it (the client's subject).
    pub given_by: String,
}

#[derive(sqlx::FromRow)]
struct FeedbackRow {
    id: Uuid,
    card_id: Uuid,
    service_id: String,
    outcome: String,
    accepted_suggestions: String,
    override_reason: Option<String>,
    user_comment: Option<String>,
    outcome_at: DateTime<Utc>,
    given_by: String,
}

impl From<FeedbackRow> for Feedback {
    fn from(r: FeedbackRow) -> Feedback {
        Feedback {
            id: r.id,
            card: r.card_id,
            service_id: r.service_id,
            outcome: r.outcome,
            accepted_suggestions: serde_json::from_str(&r.accepted_suggestions).unwrap_or_default(),
            override_reason: r.override_reason,
            user_comment: r.user_comment,
            outcome_at: r.outcome_at,
            given_by: r.given_by,
        }
    }
}

/// Feedback to store.
#[derive(Debug, Clone)]
pub struct NewFeedback {
    pub card: Uuid,
    pub outcome: String,
    pub accepted_suggestions: Vec<String>,
    pub override_reason: Option<String>,
    pub user_comment: Option<String>,
    pub outcome_at: DateTime<Utc>,
}

/// A card that feedback may name: who it was issued for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CardOwner {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub service_id: String,
    pub suggestions: String,
}

impl Db {
    /// Registers a client, grants its subject `roles` in the clinic, and
    /// audits it, in one transaction.
    pub async fn create_cds_client(
        &self,
        clinic: Uuid,
        client: &NewCdsClient,
        audit: &AuditEvent,
    ) -> sqlx::Result<CdsClient> {
        let created = CdsClient {
            id: new_id(),
            clinic_id: clinic,
            name: client.name.clone(),
            issuer: client.issuer.clone(),
            jwks: client.jwks.clone(),
            jku: client.jku.clone(),
            subject: String::new(),
            created_by: audit.actor.clone(),
            created_at: now(),
        };
        let subject = Subject::CdsClient(created.id).to_string();
        let jwks = created.jwks.as_ref().map(|j| j.to_string());
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO cds_clients (id, clinic_id, name, issuer, jwks, jku, created_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(created.id)
            .bind(clinic)
            .bind(&created.name)
            .bind(&created.issuer)
            .bind(&jwks)
            .bind(&created.jku)
            .bind(&created.created_by)
            .bind(created.created_at)
            .execute(&mut *tx)
            .await?;
            for role in &client.roles {
                sqlx::query(
                    "INSERT INTO role_assignments (subject, role, domain, clinic_id, created_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(&subject)
                .bind(role)
                .bind(clinic.to_string())
                .bind(clinic)
                .bind(created.created_at)
                .execute(&mut *tx)
                .await?;
            }
            let mut event = audit.clone();
            event.detail = Some(
                serde_json::json!({"cds_client": created.id, "issuer": created.issuer, "roles": client.roles})
                    .to_string(),
            );
            append_audit!(tx, &event);
            tx.commit().await?;
        });
        Ok(CdsClient { subject, ..created })
    }

    /// A clinic's clients, oldest first.
    pub async fn cds_clients(&self, clinic: Uuid) -> sqlx::Result<Vec<CdsClient>> {
        let sql =
            format!("SELECT {CLIENT_COLUMNS} FROM cds_clients WHERE clinic_id = $1 ORDER BY id");
        let rows: Vec<ClientRow> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(clinic).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(CdsClient::from).collect())
    }

    /// The clinic's client with this issuer.
    pub async fn cds_client_by_issuer(
        &self,
        clinic: Uuid,
        issuer: &str,
    ) -> sqlx::Result<Option<CdsClient>> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM cds_clients WHERE clinic_id = $1 AND issuer = $2"
        );
        let row: Option<ClientRow> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(clinic).bind(issuer).fetch_optional(pool).await?
        });
        Ok(row.map(CdsClient::from))
    }

    /// Removes a client and every role its subject holds, audited; false if
    /// the clinic has no such client.
    pub async fn delete_cds_client(
        &self,
        clinic: Uuid,
        id: Uuid,
        audit: &AuditEvent,
    ) -> sqlx::Result<bool> {
        let subject = Subject::CdsClient(id).to_string();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let gone = sqlx::query("DELETE FROM cds_clients WHERE clinic_id = $1 AND id = $2")
                .bind(clinic)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if gone == 0 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM role_assignments WHERE subject = $1")
                .bind(&subject)
                .execute(&mut *tx)
                .await?;
            let mut event = audit.clone();
            event.detail = Some(serde_json::json!({"cds_client": id, "removed": true}).to_string());
            append_audit!(tx, &event);
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Records that `client` used `jti` in a token valid until `expires_at`;
    /// false if it had used it before (a replay). Forgets ids whose tokens
    /// have expired.
    pub async fn use_jti(
        &self,
        client: Uuid,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> sqlx::Result<bool> {
        let at = now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM cds_jtis WHERE expires_at < $1")
                .bind(at)
                .execute(&mut *tx)
                .await?;
            let fresh = sqlx::query(
                "INSERT INTO cds_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(client)
            .bind(jti)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            tx.commit().await?;
            Ok(fresh)
        })
    }

    /// Stores the cards one service call handed out for a patient.
    pub async fn store_cds_cards(
        &self,
        clinic: Uuid,
        patient: Uuid,
        issued_to: &str,
        cards: &[IssuedCard],
    ) -> sqlx::Result<()> {
        if cards.is_empty() {
            return Ok(());
        }
        let at = now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for c in cards {
                sqlx::query(
                    "INSERT INTO cds_cards (id, clinic_id, patient_id, service_id, rule, hook_instance,
                     fingerprint, indicator, summary, suggestions, issued_to, issued_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(c.id)
                .bind(clinic)
                .bind(patient)
                .bind(&c.service_id)
                .bind(&c.rule)
                .bind(&c.hook_instance)
                .bind(&c.fingerprint)
                .bind(&c.indicator)
                .bind(&c.summary)
                .bind(serde_json::to_string(&c.suggestions).unwrap_or_else(|_| "[]".into()))
                .bind(issued_to)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The clinic's cards with these ids, as feedback may name them.
    pub async fn cds_cards(&self, clinic: Uuid, ids: &[Uuid]) -> sqlx::Result<Vec<CardOwner>> {
        let mut found = Vec::with_capacity(ids.len());
        // Small batches keep the statement portable (no array binds in SQLite).
        for batch in ids.chunks(64) {
            let marks: Vec<String> = (0..batch.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT id, patient_id, service_id, suggestions FROM cds_cards
                 WHERE clinic_id = $1 AND id IN ({})",
                marks.join(", ")
            );
            let rows: Vec<CardOwner> = on_pool!(self, pool => {
                let mut query = sqlx::query_as(AssertSqlSafe(sql)).bind(clinic);
                for id in batch {
                    query = query.bind(*id);
                }
                query.fetch_all(pool).await?
            });
            found.extend(rows);
        }
        Ok(found)
    }

    /// Stores feedback on cards of the clinic, audited, in one transaction.
    pub async fn add_cds_feedback(
        &self,
        given_by: &str,
        items: &[NewFeedback],
        audit: &AuditEvent,
    ) -> sqlx::Result<()> {
        let at = now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for f in items {
                sqlx::query(
                    "INSERT INTO cds_feedback (id, card_id, outcome, accepted_suggestions,
                     override_reason, user_comment, outcome_at, given_by, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(new_id())
                .bind(f.card)
                .bind(&f.outcome)
                .bind(serde_json::to_string(&f.accepted_suggestions).unwrap_or_else(|_| "[]".into()))
                .bind(&f.override_reason)
                .bind(&f.user_comment)
                .bind(f.outcome_at)
                .bind(given_by)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            append_audit!(tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The feedback on a patient's cards, oldest first, each with its
    /// card's alert fingerprint.
    pub async fn cds_feedback(
        &self,
        clinic: Uuid,
        patient: Uuid,
    ) -> sqlx::Result<Vec<(String, Feedback)>> {
        let rows: Vec<(String, FeedbackRow)> = on_pool!(self, pool => {
            sqlx::query_as::<_, FingerprintedRow>(
                "SELECT c.fingerprint, f.id, f.card_id, c.service_id, f.outcome, f.accepted_suggestions,
                        f.override_reason, f.user_comment, f.outcome_at, f.given_by
                 FROM cds_feedback f JOIN cds_cards c ON c.id = f.card_id
                 WHERE c.clinic_id = $1 AND c.patient_id = $2
                 ORDER BY f.created_at, f.id",
            )
            .bind(clinic)
            .bind(patient)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| (r.fingerprint, r.row))
            .collect()
        });
        Ok(rows
            .into_iter()
            .map(|(fingerprint, row)| (fingerprint, Feedback::from(row)))
            .collect())
    }
}

#[derive(sqlx::FromRow)]
struct FingerprintedRow {
    fingerprint: String,
    #[sqlx(flatten)]
    row: FeedbackRow,
}
