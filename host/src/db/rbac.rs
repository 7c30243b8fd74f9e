//! Role-based access control data: which role may do what (`role_permissions`,
//! casbin `p` lines) and who holds which role in which clinic
//! (`role_assignments`, casbin `g` lines). The casbin adapter in `authz` reads
//! and writes these tables.

use uuid::Uuid;

use super::{Db, WritePool, now};
use crate::on_pool;

/// The casbin domain of platform-wide role assignments.
pub const PLATFORM_DOMAIN: &str = "platform";

/// One permission of a role: casbin `p, role, resource, action`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Permission {
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
    pub async fn permissions(&self) -> sqlx::Result<Vec<Permission>> {
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

    /// Adds permissions that are missing; returns how many were added.
    pub async fn add_permissions(&self, permissions: &[Permission]) -> sqlx::Result<u64> {
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
    pub async fn remove_permissions(&self, permissions: &[Permission]) -> sqlx::Result<u64> {
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
    /// every instance can notice edits made elsewhere and reload.
    pub async fn policy_fingerprint(&self) -> sqlx::Result<(i64, i64, String)> {
        on_pool!(self, pool => {
            let permissions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM role_permissions")
                .fetch_one(pool)
                .await?;
            let (assignments, latest): (i64, Option<String>) = sqlx::query_as(
                "SELECT COUNT(*), CAST(MAX(created_at) AS TEXT) FROM role_assignments",
            )
            .fetch_one(pool)
            .await?;
            Ok((permissions, assignments, latest.unwrap_or_default()))
        })
    }
}
