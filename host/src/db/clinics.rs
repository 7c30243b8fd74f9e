//! Clinics: the tenants. Each is a casbin domain and owns its patients.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Db, WritePool, new_id, now};
use crate::on_pool;

/// A clinic.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Clinic {
    /// The clinic's id.
    pub id: Uuid,
    /// Its display name, unique across the platform.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The retriever plugin (by name) its `/ask` and `/search` use by
    /// default; null means the first-party `hybrid`.
    pub retriever: Option<String>,
}

impl Db {
    /// Creates a clinic; fails with a unique violation if the name is taken.
    pub async fn create_clinic(&self, name: &str) -> sqlx::Result<Clinic> {
        let clinic = Clinic {
            id: new_id(),
            name: name.to_owned(),
            created_at: now(),
            retriever: None,
        };
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO clinics (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(clinic.id)
                .bind(&clinic.name)
                .bind(clinic.created_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(clinic)
    }

    /// One clinic by id.
    pub async fn clinic(&self, id: Uuid) -> sqlx::Result<Option<Clinic>> {
        on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name, created_at, retriever FROM clinics WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
    }

    /// Clinics in id order, after the cursor `after`.
    pub async fn clinics(&self, after: Option<Uuid>, limit: i64) -> sqlx::Result<Vec<Clinic>> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, name, created_at, retriever FROM clinics
                 WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
        })
    }

    /// Sets (or, with `None`, clears) a clinic's default retriever.
    pub async fn set_clinic_retriever(
        &self,
        clinic: Uuid,
        retriever: Option<&str>,
    ) -> sqlx::Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE clinics SET retriever = $1 WHERE id = $2")
                .bind(retriever)
                .bind(clinic)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
