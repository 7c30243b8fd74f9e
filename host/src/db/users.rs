//! People who sign in through an OIDC provider, one row per `(issuer, subject)`.
//! A user starts with no role; admins grant roles to `user:<id>`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::audit::AuditEvent;
use super::{Db, WritePool, new_id, now};
use crate::{append_audit, on_pool};

/// How stale `last_seen_at` may get before a request refreshes it, so a busy
/// user does not cost a write per request.
const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// A user known to MedMemory.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    /// MedMemory's id for the user.
    pub id: Uuid,
    /// The OIDC issuer.
    pub issuer: String,
    /// The provider's subject id.
    pub subject: String,
    /// When the user was first seen.
    pub created_at: DateTime<Utc>,
    /// When the user was last seen (to the minute).
    pub last_seen_at: DateTime<Utc>,
}

impl User {
    /// The casbin subject of this user.
    pub fn subject_name(&self) -> String {
        super::subject::Subject::User(self.id).to_string()
    }
}

const SELECT_BY_IDENTITY: &str = "SELECT id, issuer, subject, created_at, last_seen_at FROM users
     WHERE issuer = $1 AND subject = $2";

impl Db {
    /// The user for `(issuer, subject)`, created on first sight together with
    /// its audit entry (one transaction, so no user exists unaudited); the
    /// flag says whether it was created now.
    pub async fn user_for(&self, issuer: &str, subject: &str) -> sqlx::Result<(User, bool)> {
        let at = now();
        on_pool!(self, pool => {
            let found: Option<User> = sqlx::query_as(SELECT_BY_IDENTITY)
                .bind(issuer)
                .bind(subject)
                .fetch_optional(pool)
                .await?;
            if let Some(user) = found {
                if at - user.last_seen_at > TOUCH_EVERY {
                    sqlx::query("UPDATE users SET last_seen_at = $1 WHERE id = $2")
                        .bind(at)
                        .bind(user.id)
                        .execute(pool)
                        .await?;
                }
                return Ok((user, false));
            }
            let mut tx = pool.begin_write().await?;
            let id = new_id();
            let inserted = sqlx::query(
                "INSERT INTO users (id, issuer, subject, created_at, last_seen_at)
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT (issuer, subject) DO NOTHING",
            )
            .bind(id)
            .bind(issuer)
            .bind(subject)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if inserted {
                let actor = super::subject::Subject::User(id).to_string();
                let mut event = AuditEvent::now(&actor, "user", "create", "succeeded");
                event.detail = Some(format!("{{\"user\":\"{id}\"}}"));
                append_audit!(tx, &event);
            }
            let user: User = sqlx::query_as(SELECT_BY_IDENTITY)
                .bind(issuer)
                .bind(subject)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok((user, inserted))
        })
    }

    /// One user by id.
    pub async fn user(&self, id: Uuid) -> sqlx::Result<Option<User>> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, issuer, subject, created_at, last_seen_at FROM users WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })
    }
}
