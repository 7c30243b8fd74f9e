//! Role-based access control data: which role may do what (`role_permissions`,
//! casbin `p` lines) and who holds which role in which clinic
//! (`role_assignments`, casbin `g` lines). The casbin adapter in `authz` reads
//! and writes these tables.

use uuid::Uuid;

use super::subject::Subject;
use super::{Db, WritePool, WriteTx, now};
use crate::on_pool;

/// The casbin domain of platform-wide role assignments.
pub const PLATFORM_DOMAIN: &str = "platform";

/// Whether a stored subject names a service token.
fn is_token(subject: &str) -> bool {
    subject.parse::<Subject>().is_ok_and(Subject::is_token)
}

/// One permission of a role: casbin `p, role, resource, action`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RolePermission {
    /// The role.
    pub role: String,
    /// The resource type, e.g. `patient`.
    pub resource: String,
    /// The action, e.g. `read`.
    pub action: String,
}

/// One role assignment: casbin `g, subject, role, domain`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Assignment {
    /// Who: `token:<id>` or `user:<id>`.
    pub subject: String,
    /// The role.
    pub role: String,
    /// A clinic id, or `platform`.
    pub domain: String,
}

impl Assignment {
    /// The clinic this assignment is in, if it is not platform-wide.
    pub fn clinic(&self) -> Option<Uuid> {
        self.domain.parse().ok()
    }
}

impl Db {
    /// Every role permission.
    pub async fn permissions(&self) -> sqlx::Result<Vec<RolePermission>> {
        on_pool!(self, pool => {
            sqlx::query_as("SELECT role, resource, action FROM role_permissions ORDER BY role, resource, action")
                .fetch_all(pool)
                .await
        })
    }

    /// Every role assignment.
    pub async fn assignments(&self) -> sqlx::Result<Vec<Assignment>> {
        on_pool!(self, pool => {
            sqlx::query_as("SELECT subject, role, domain FROM role_assignments ORDER BY subject, domain, role")
                .fetch_all(pool)
                .await
        })
    }

    /// The role assignments of one subject.
    pub async fn assignments_of(&self, subject: &str) -> sqlx::Result<Vec<Assignment>> {
        on_pool!(self, pool => {
            sqlx::query_as("SELECT subject, role, domain FROM role_assignments WHERE subject = $1 ORDER BY domain, role")
                .bind(subject)
                .fetch_all(pool)
                .await
        })
    }

    /// Adds permissions that are missing; returns how many were added.
    pub async fn add_permissions(&self, permissions: &[RolePermission]) -> sqlx::Result<u64> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut added = 0;
            for p in permissions {
                added += sqlx::query(
                    "INSERT INTO role_permissions (role, resource, action) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(&p.role)
                .bind(&p.resource)
                .bind(&p.action)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(added)
        })
    }

    /// Removes permissions; returns how many existed.
    pub async fn remove_permissions(&self, permissions: &[RolePermission]) -> sqlx::Result<u64> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut removed = 0;
            for p in permissions {
                removed += sqlx::query(
                    "DELETE FROM role_permissions WHERE role = $1 AND resource = $2 AND action = $3",
                )
                .bind(&p.role)
                .bind(&p.resource)
                .bind(&p.action)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(removed)
        })
    }

    /// Adds role assignments that are missing; returns how many were added.
    pub async fn add_assignments(&self, assignments: &[Assignment]) -> sqlx::Result<u64> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut added = 0;
            for a in assignments {
                added += sqlx::query(
                    "INSERT INTO role_assignments (subject, role, domain, clinic_id, created_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(&a.subject)
                .bind(&a.role)
                .bind(&a.domain)
                .bind(a.clinic())
                .bind(now())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(added)
        })
    }

    /// Removes role assignments; returns how many existed.
    pub async fn remove_assignments(&self, assignments: &[Assignment]) -> sqlx::Result<u64> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut removed = 0;
            for a in assignments {
                removed += sqlx::query(
                    "DELETE FROM role_assignments WHERE subject = $1 AND role = $2 AND domain = $3",
                )
                .bind(&a.subject)
                .bind(&a.role)
                .bind(&a.domain)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(removed)
        })
    }
}

impl Db {
    /// A value that changes whenever permissions or assignments change, so
    /// every instance can notice edits made elsewhere and reload: the policy
    /// version (bumped by every policy edit), plus counts and the latest
    /// assignment for changes made with tokens.
    pub async fn policy_fingerprint(&self) -> sqlx::Result<(i64, i64, i64, String)> {
        on_pool!(self, pool => {
            let version: i64 = sqlx::query_scalar("SELECT version FROM policy_version WHERE id = 1")
                .fetch_one(pool)
                .await?;
            let permissions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM role_permissions")
                .fetch_one(pool)
                .await?;
            let (assignments, latest): (i64, Option<String>) = sqlx::query_as(
                "SELECT COUNT(*), CAST(MAX(created_at) AS TEXT) FROM role_assignments",
            )
            .fetch_one(pool)
            .await?;
            Ok((version, permissions, assignments, latest.unwrap_or_default()))
        })
    }
}

/// A clinic's editable policy: its custom roles and who holds which role
/// there. Shipped role templates are not part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClinicPolicy {
    /// Custom role permissions: `(role, resource, action)`.
    pub permissions: Vec<RolePermission>,
    /// Role assignments in the clinic: `(subject, role)`.
    pub assignments: Vec<(String, String)>,
}

/// Why a policy change was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyChangeError {
    /// The change would leave the clinic without a clinic admin.
    #[error("the change would leave the clinic without a clinic admin")]
    LastAdmin,
    /// Only platform admins may make someone a clinic admin.
    #[error("only platform admins can grant clinic-admin")]
    Escalation,
    /// A subject is neither a user nor a live token of this clinic.
    #[error("unknown subject {0}")]
    UnknownSubject(String),
    /// Tokens keep the role they were issued with.
    #[error("token roles are fixed at issue; revoke and issue a new token instead")]
    TokenRole,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Which part of a clinic's policy a change replaces.
#[derive(Debug, Clone)]
pub enum PolicyScope {
    /// Custom roles and every user assignment of the clinic.
    Whole,
    /// The roles of one subject.
    Subject(String),
}

impl Db {
    /// The clinic's custom roles and assignments, and the policy version.
    pub async fn clinic_policy(&self, clinic: Uuid) -> sqlx::Result<(ClinicPolicy, i64)> {
        on_pool!(self, pool => {
            let permissions: Vec<RolePermission> = sqlx::query_as(
                "SELECT role, resource, action FROM clinic_role_permissions WHERE clinic_id = $1
                 ORDER BY role, resource, action",
            )
            .bind(clinic)
            .fetch_all(pool)
            .await?;
            let assignments: Vec<(String, String)> = sqlx::query_as(
                "SELECT subject, role FROM role_assignments WHERE clinic_id = $1 ORDER BY subject, role",
            )
            .bind(clinic)
            .fetch_all(pool)
            .await?;
            let version: i64 = sqlx::query_scalar("SELECT version FROM policy_version WHERE id = 1")
                .fetch_one(pool)
                .await?;
            Ok((ClinicPolicy { permissions, assignments }, version))
        })
    }

    /// Every clinic's custom role permissions, as `(clinic, permission)`.
    pub async fn clinic_permissions(&self) -> sqlx::Result<Vec<(Uuid, RolePermission)>> {
        on_pool!(self, pool => {
            let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(
                "SELECT clinic_id, role, resource, action FROM clinic_role_permissions",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(c, role, resource, action)| (c, RolePermission { role, resource, action }))
                .collect())
        })
    }

    /// The policy version every instance polls.
    pub async fn policy_version(&self) -> sqlx::Result<i64> {
        on_pool!(self, pool => {
            sqlx::query_scalar("SELECT version FROM policy_version WHERE id = 1")
                .fetch_one(pool)
                .await
        })
    }

    /// Replaces part of a clinic's policy in one transaction: serialised per
    /// database (SQLite `BEGIN IMMEDIATE`; on PostgreSQL the clinic row is
    /// locked), so two concurrent demotions cannot both remove "the other"
    /// last admin. Checks subjects, escalation and the last admin inside the
    /// transaction, bumps the policy version and appends `audit`. Returns the
    /// new version.
    pub async fn change_clinic_policy(
        &self,
        clinic: Uuid,
        scope: &PolicyScope,
        change: &ClinicPolicy,
        may_grant_admin: bool,
        audit: &super::audit::AuditEvent,
    ) -> Result<i64, PolicyChangeError> {
        // A token keeps the role it was issued with: no change may touch it,
        // removal included (only revoking the token ends its role).
        if let PolicyScope::Subject(subject) = scope
            && is_token(subject)
        {
            return Err(PolicyChangeError::TokenRole);
        }
        let at = now();
        let domain = clinic.to_string();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            WriteTx::lock_clinic(&mut tx, clinic).await?;
            let before: Vec<(String, String)> = sqlx::query_as(
                "SELECT subject, role FROM role_assignments WHERE clinic_id = $1",
            )
            .bind(clinic)
            .fetch_all(&mut *tx)
            .await?;
            let admins_before: std::collections::BTreeSet<&str> = before
                .iter()
                .filter(|(_, r)| r == "clinic-admin")
                .map(|(s, _)| s.as_str())
                .collect();
            for (subject, _) in &change.assignments {
                let parsed: Subject = subject
                    .parse()
                    .map_err(|_| PolicyChangeError::UnknownSubject(subject.clone()))?;
                if let Some(id) = parsed.user() {
                    let exists: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if exists.is_none() {
                        return Err(PolicyChangeError::UnknownSubject(subject.clone()));
                    }
                } else {
                    return Err(PolicyChangeError::TokenRole);
                }
            }
            // What stays: tokens always; under a subject scope, everyone else.
            let kept: Vec<(String, String)> = before
                .iter()
                .filter(|(s, _)| match scope {
                    PolicyScope::Whole => is_token(s),
                    PolicyScope::Subject(subject) => s != subject,
                })
                .cloned()
                .collect();
            let mut after: Vec<(String, String)> = kept;
            after.extend(change.assignments.iter().cloned());
            for (subject, role) in &change.assignments {
                if role == "clinic-admin" && !admins_before.contains(subject.as_str()) && !may_grant_admin {
                    return Err(PolicyChangeError::Escalation);
                }
            }
            // A clinic admin whose token is revoked or expired no longer counts.
            let live_tokens: std::collections::HashSet<String> = sqlx::query_scalar::<_, Uuid>(
                "SELECT id FROM api_tokens WHERE clinic_id = $1 AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(clinic)
            .bind(at)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|id| Subject::Token(id).to_string())
            .collect();
            let admins = after
                .iter()
                .filter(|(subject, role)| {
                    role == "clinic-admin"
                        && (!is_token(subject) || live_tokens.contains(subject))
                })
                .count();
            let had_admin = !admins_before.is_empty();
            if had_admin && admins == 0 {
                return Err(PolicyChangeError::LastAdmin);
            }
            match scope {
                PolicyScope::Whole => {
                    sqlx::query("DELETE FROM clinic_role_permissions WHERE clinic_id = $1")
                        .bind(clinic)
                        .execute(&mut *tx)
                        .await?;
                    for p in &change.permissions {
                        sqlx::query(
                            "INSERT INTO clinic_role_permissions (clinic_id, role, resource, action)
                             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        )
                        .bind(clinic)
                        .bind(&p.role)
                        .bind(&p.resource)
                        .bind(&p.action)
                        .execute(&mut *tx)
                        .await?;
                    }
                    sqlx::query("DELETE FROM role_assignments WHERE clinic_id = $1 AND subject LIKE 'user:%'")
                        .bind(clinic)
                        .execute(&mut *tx)
                        .await?;
                }
                PolicyScope::Subject(subject) => {
                    sqlx::query("DELETE FROM role_assignments WHERE clinic_id = $1 AND subject = $2")
                        .bind(clinic)
                        .bind(subject)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for (subject, role) in &change.assignments {
                sqlx::query(
                    "INSERT INTO role_assignments (subject, role, domain, clinic_id, created_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(subject)
                .bind(role)
                .bind(&domain)
                .bind(clinic)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            let version: i64 = sqlx::query_scalar(
                "UPDATE policy_version SET version = version + 1 WHERE id = 1 RETURNING version",
            )
            .fetch_one(&mut *tx)
            .await?;
            let mut event = audit.clone();
            event.detail = Some(format!(
                "{{\"version\":{version},\"roles\":{},\"assignments\":{}}}",
                change.permissions.len(),
                change.assignments.len()
            ));
            crate::append_audit!(tx, &event);
            tx.commit().await?;
            Ok(version)
        })
    }
}
