//! Service API tokens. Only a SHA-256 of the secret is stored; the secret is
//! shown once, at creation. Each token is a casbin subject `token:<id>` with one
//! role assignment, written in the same transaction as the token.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::audit::AuditEvent;
use super::rbac::PLATFORM_DOMAIN;
use super::{Db, WritePool, new_id, now};
use crate::{append_audit, on_pool};

/// A token as stored (never with its secret).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ApiToken {
    /// The token's id.
    pub id: Uuid,
    /// A label chosen by whoever created it.
    pub name: String,
    /// The clinic it is bound to; `None` for platform-wide tokens.
    pub clinic_id: Option<Uuid>,
    /// The role it holds there.
    pub role: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked token is refused at once.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    /// The casbin subject of this token.
    pub fn subject(&self) -> String {
        subject_of(self.id)
    }
}

/// The casbin subject of the token with this id.
pub fn subject_of(id: Uuid) -> String {
    super::subject::Subject::Token(id).to_string()
}

const COLUMNS: &str = "id, name, clinic_id, role, created_at, expires_at, last_used_at, revoked_at";

impl Db {
    /// Stores a token with the hash of its secret and grants its role.
    pub async fn create_token(
        &self,
        name: &str,
        clinic: Option<Uuid>,
        role: &str,
        secret_hash: &str,
        expires_at: Option<DateTime<Utc>>,
        audit: Option<&AuditEvent>,
    ) -> sqlx::Result<ApiToken> {
        let token = ApiToken {
            id: new_id(),
            name: name.to_owned(),
            clinic_id: clinic,
            role: role.to_owned(),
            created_at: now(),
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        let domain = clinic.map_or_else(|| PLATFORM_DOMAIN.to_owned(), |c| c.to_string());
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO api_tokens (id, name, secret_hash, clinic_id, role, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(token.id)
            .bind(&token.name)
            .bind(secret_hash)
            .bind(token.clinic_id)
            .bind(&token.role)
            .bind(token.created_at)
            .bind(token.expires_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO role_assignments (subject, role, domain, clinic_id, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token.subject())
            .bind(&token.role)
            .bind(&domain)
            .bind(token.clinic_id)
            .bind(token.created_at)
            .execute(&mut *tx)
            .await?;
            if let Some(event) = audit {
                let mut event = event.clone();
                event.detail = Some(format!("{{\"token\":\"{}\",\"role\":\"{}\"}}", token.id, token.role));
                append_audit!(tx, &event);
            }
            tx.commit().await?;
        });
        Ok(token)
    }

    /// One token by id (revoked or not).
    pub async fn token(&self, id: Uuid) -> sqlx::Result<Option<ApiToken>> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1");
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await
        })
    }

    /// A page of tokens: of one clinic, or platform-wide ones (`clinic`
    /// `None`), or all (`all`).
    pub async fn tokens(
        &self,
        clinic: Option<Uuid>,
        all: bool,
        after: Option<Uuid>,
        limit: i64,
    ) -> sqlx::Result<Vec<ApiToken>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_tokens
             WHERE ($1 OR clinic_id = $2 OR ($2 IS NULL AND clinic_id IS NULL))
               AND ($3 IS NULL OR id > $3)
             ORDER BY id LIMIT $4"
        );
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(all)
                .bind(clinic)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
    }

    /// Revokes a token with immediate effect and removes its role grant, in
    /// one transaction with its audit entry; returns it, or `None` if there
    /// is no such live token.
    pub async fn revoke_token(
        &self,
        id: Uuid,
        audit: &AuditEvent,
    ) -> sqlx::Result<Option<ApiToken>> {
        let at = now();
        let sql = format!(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING {COLUMNS}"
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let token: Option<ApiToken> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(at)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(token) = token else {
                return Ok(None);
            };
            sqlx::query("DELETE FROM role_assignments WHERE subject = $1")
                .bind(token.subject())
                .execute(&mut *tx)
                .await?;
            let mut event = audit.clone();
            event.detail = Some(format!("{{\"token\":\"{}\"}}", token.id));
            append_audit!(tx, &event);
            tx.commit().await?;
            Ok(Some(token))
        })
    }

    /// The live token whose secret hashes to `secret_hash`: not revoked, not
    /// expired. The lookup is by an index on the hash, so timing reveals nothing
    /// about the secret.
    pub async fn token_by_hash(&self, secret_hash: &str) -> sqlx::Result<Option<ApiToken>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_tokens
             WHERE secret_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)"
        );
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(secret_hash).bind(now()).fetch_optional(pool).await
        })
    }

    /// Records that a token was used (best effort, at most once a minute).
    pub async fn touch_token(&self, id: Uuid) -> sqlx::Result<()> {
        let at = now();
        let stale = at - chrono::TimeDelta::minutes(1);
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $1
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(at)
            .bind(id)
            .bind(stale)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Whether no credential exists yet: the first start of a fresh database.
    pub async fn has_no_credentials(&self) -> sqlx::Result<bool> {
        on_pool!(self, pool => {
            let tokens: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens").fetch_one(pool).await?;
            let grants: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM role_assignments").fetch_one(pool).await?;
            Ok(tokens == 0 && grants == 0)
        })
    }
}
