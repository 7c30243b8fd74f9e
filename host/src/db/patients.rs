//! Patients: every one belongs to exactly one clinic, and every query here is
//! scoped by that clinic.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::audit::AuditEvent;
use super::{Db, WritePool, escape_like, new_id, now};
use crate::{append_audit, on_pool};

/// The audit entry of an erasure step: the patient's id, what was removed.
fn erasure_event(erasure: &Erasure, actor: &str, outcome: &str) -> AuditEvent {
    let mut event = AuditEvent::now(actor, "patient", "erase", outcome);
    event.clinic_id = Some(erasure.clinic_id);
    event.patient_id = Some(erasure.patient_id);
    event.detail = Some(
        serde_json::json!({
            "erasure": erasure.id,
            "documents": erasure.documents,
            "records": erasure.records,
        })
        .to_string(),
    );
    event
}

/// A patient as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Patient {
    /// The patient's id.
    pub id: Uuid,
    /// The clinic the patient belongs to.
    pub clinic_id: Uuid,
    /// Given (first) name.
    pub given_name: String,
    /// Family (last) name.
    pub family_name: String,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Administrative sex: female, male, other or unknown.
    pub sex: String,
    /// The clinic's medical record number, unique within the clinic.
    pub mrn: Option<String>,
    /// When the patient was created.
    pub created_at: DateTime<Utc>,
    /// When the patient was last changed.
    pub updated_at: DateTime<Utc>,
}

/// A validated patient to create or the full new state of one to update.
#[derive(Debug, Clone)]
pub struct PatientFields {
    /// Given name, trimmed, non-empty.
    pub given_name: String,
    /// Family name, trimmed, non-empty.
    pub family_name: String,
    /// Date of birth, not in the future.
    pub birth_date: NaiveDate,
    /// One of female, male, other, unknown.
    pub sex: String,
    /// Medical record number, if any.
    pub mrn: Option<String>,
}

const COLUMNS: &str =
    "id, clinic_id, given_name, family_name, birth_date, sex, mrn, created_at, updated_at";

/// Filters for listing patients.
#[derive(Debug, Default, Clone)]
pub struct PatientFilter {
    /// Prefix of the family name, given name or MRN (case-insensitive).
    pub q: Option<String>,
    /// Exact date of birth.
    pub birth_date: Option<NaiveDate>,
}

impl Db {
    /// Creates a patient in `clinic`.
    pub async fn create_patient(
        &self,
        clinic: Uuid,
        fields: &PatientFields,
    ) -> sqlx::Result<Patient> {
        let at = now();
        let patient = Patient {
            id: new_id(),
            clinic_id: clinic,
            given_name: fields.given_name.clone(),
            family_name: fields.family_name.clone(),
            birth_date: fields.birth_date,
            sex: fields.sex.clone(),
            mrn: fields.mrn.clone(),
            created_at: at,
            updated_at: at,
        };
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO patients
                 (id, clinic_id, given_name, family_name, birth_date, sex, mrn, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(patient.id)
            .bind(patient.clinic_id)
            .bind(&patient.given_name)
            .bind(&patient.family_name)
            .bind(patient.birth_date)
            .bind(&patient.sex)
            .bind(&patient.mrn)
            .bind(patient.created_at)
            .bind(patient.updated_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(patient)
    }

    /// One patient of `clinic`, unless soft-deleted.
    pub async fn patient(&self, clinic: Uuid, id: Uuid) -> sqlx::Result<Option<Patient>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM patients WHERE clinic_id = $1 AND id = $2 AND deleted_at IS NULL"
        );
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(clinic).bind(id).fetch_optional(pool).await
        })
    }

    /// The live patient of `clinic` with this MRN.
    pub async fn patient_by_mrn(&self, clinic: Uuid, mrn: &str) -> sqlx::Result<Option<Patient>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM patients WHERE clinic_id = $1 AND mrn = $2 AND deleted_at IS NULL"
        );
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(clinic).bind(mrn).fetch_optional(pool).await
        })
    }

    /// Patients of `clinic` in id order after the cursor.
    pub async fn patients(
        &self,
        clinic: Uuid,
        filter: &PatientFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> sqlx::Result<Vec<Patient>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM patients
             WHERE clinic_id = $1 AND deleted_at IS NULL
               AND ($2 IS NULL OR LOWER(family_name) LIKE $2 ESCAPE '\\' OR LOWER(given_name) LIKE $2 ESCAPE '\\'
                    OR LOWER(mrn) LIKE $2 ESCAPE '\\')
               AND ($3 IS NULL OR birth_date = $3)
               AND ($4 IS NULL OR id > $4)
             ORDER BY id LIMIT $5"
        );
        let prefix = filter
            .q
            .as_ref()
            .map(|q| format!("{}%", escape_like(&q.to_lowercase())));
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(prefix)
                .bind(filter.birth_date)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
    }

    /// Replaces a patient's fields; `None` if there is no such live patient.
    pub async fn update_patient(
        &self,
        clinic: Uuid,
        id: Uuid,
        fields: &PatientFields,
    ) -> sqlx::Result<Option<Patient>> {
        let updated = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE patients SET given_name = $1, family_name = $2, birth_date = $3, sex = $4,
                 mrn = $5, updated_at = $6
                 WHERE clinic_id = $7 AND id = $8 AND deleted_at IS NULL",
            )
            .bind(&fields.given_name)
            .bind(&fields.family_name)
            .bind(fields.birth_date)
            .bind(&fields.sex)
            .bind(&fields.mrn)
            .bind(now())
            .bind(clinic)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            done.rows_affected()
        });
        if updated == 0 {
            return Ok(None);
        }
        self.patient(clinic, id).await
    }

    /// Soft-deletes a patient; returns whether a live patient was deleted.
    pub async fn soft_delete_patient(&self, clinic: Uuid, id: Uuid) -> sqlx::Result<bool> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE patients SET deleted_at = $1 WHERE clinic_id = $2 AND id = $3 AND deleted_at IS NULL",
            )
            .bind(now())
            .bind(clinic)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
    }
}

/// A patient erasure: what it removed, and whether the vectors and blobs are
/// gone too (`completed_at`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Erasure {
    /// The erasure's id.
    pub id: Uuid,
    /// The clinic.
    pub clinic_id: Uuid,
    /// The erased patient's former id.
    pub patient_id: Uuid,
    /// Documents removed.
    pub documents: i64,
    /// Records removed.
    pub records: i64,
    /// When it was asked for (and the SQL part done).
    pub requested_at: DateTime<Utc>,
    /// When vectors and blobs were gone too.
    pub completed_at: Option<DateTime<Utc>>,
}

const ERASURE_COLUMNS: &str =
    "id, clinic_id, patient_id, documents, records, requested_at, completed_at";

impl Db {
    /// Whether the clinic has this patient, live or soft-deleted.
    pub async fn patient_exists(&self, clinic: Uuid, id: Uuid) -> sqlx::Result<bool> {
        on_pool!(self, pool => {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(1 AS BIGINT) FROM patients WHERE clinic_id = $1 AND id = $2",
            )
            .bind(clinic)
            .bind(id)
            .fetch_optional(pool)
            .await?;
            Ok(found.is_some())
        })
    }

    /// Erases a patient (live or soft-deleted) from SQL: the patient row and,
    /// by cascade, documents, jobs, records, chunks and cached embeddings; and
    /// records a pending erasure in the same transaction. `None` if there is
    /// no such patient. The caller then removes vectors and blobs and calls
    /// [`Db::complete_erasure`]. The request is audited in the same
    /// transaction (`patient` `erase` `requested`, with the patient's id), so
    /// the hash-chained trail holds every erasure.
    pub async fn erase_patient(
        &self,
        clinic: Uuid,
        id: Uuid,
        actor: &str,
        request_id: Option<&str>,
    ) -> sqlx::Result<Option<Erasure>> {
        let at = now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(1 AS BIGINT) FROM patients WHERE clinic_id = $1 AND id = $2",
            )
            .bind(clinic)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if found.is_none() {
                return Ok(None);
            }
            let documents: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM documents WHERE clinic_id = $1 AND patient_id = $2",
            )
            .bind(clinic)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let records: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM records WHERE clinic_id = $1 AND patient_id = $2",
            )
            .bind(clinic)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let erasure = Erasure {
                id: new_id(),
                clinic_id: clinic,
                patient_id: id,
                documents,
                records,
                requested_at: at,
                completed_at: None,
            };
            sqlx::query(
                "INSERT INTO erasures (id, clinic_id, patient_id, actor, documents, records, requested_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(erasure.id)
            .bind(clinic)
            .bind(id)
            .bind(actor)
            .bind(documents)
            .bind(records)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM patients WHERE clinic_id = $1 AND id = $2")
                .bind(clinic)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let mut event = erasure_event(&erasure, actor, "requested");
            event.request_id = request_id.map(str::to_owned);
            append_audit!(tx, &event);
            tx.commit().await?;
            Ok(Some(erasure))
        })
    }

    /// Erasures whose vectors and blobs may still exist.
    pub async fn pending_erasures(&self) -> sqlx::Result<Vec<Erasure>> {
        let sql = format!(
            "SELECT {ERASURE_COLUMNS} FROM erasures WHERE completed_at IS NULL ORDER BY requested_at"
        );
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).fetch_all(pool).await
        })
    }

    /// Marks an erasure complete and audits it (`completed`, by `system`);
    /// returns it.
    pub async fn complete_erasure(&self, id: Uuid) -> sqlx::Result<Option<Erasure>> {
        let sql = format!(
            "UPDATE erasures SET completed_at = $1 WHERE id = $2 AND completed_at IS NULL
             RETURNING {ERASURE_COLUMNS}"
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done: Option<Erasure> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(now())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(erasure) = &done {
                append_audit!(tx, &erasure_event(erasure, "system", "completed"));
            }
            tx.commit().await?;
            Ok(done)
        })
    }
}
