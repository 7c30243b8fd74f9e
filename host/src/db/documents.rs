//! Documents a clinic uploaded for a patient. The bytes live in the blob store,
//! addressed by their SHA-256; this table holds what we know about them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::jobs::Job;
use super::{Db, WritePool, new_id, now};
use crate::on_pool;

/// A document as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Document {
    /// The document's id.
    pub id: Uuid,
    /// The clinic it belongs to.
    pub clinic_id: Uuid,
    /// The patient it is about.
    pub patient_id: Uuid,
    /// The media type sniffed from the bytes.
    pub media_type: String,
    /// The media type the client declared, kept for diagnosis only.
    pub declared_media_type: Option<String>,
    /// Size in bytes.
    pub size_bytes: i64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
}

/// What an upload tells us about a new document.
#[derive(Debug, Clone)]
pub struct NewDocument {
    /// Sniffed media type.
    pub media_type: String,
    /// Declared media type.
    pub declared_media_type: Option<String>,
    /// Size in bytes.
    pub size_bytes: i64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// The outcome of an upload: the document and its job.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The document.
    pub document: Document,
    /// Its (latest) ingestion job.
    pub job: Job,
    /// Whether the patient already had these bytes.
    pub duplicate: bool,
}

const COLUMNS: &str =
    "id, clinic_id, patient_id, media_type, declared_media_type, size_bytes, sha256, created_at";

impl Db {
    /// Records a document and queues its ingestion job, in one transaction; or,
    /// if this patient already has a document with the same bytes, returns that
    /// one and its latest job (`duplicate` set). De-duplication never looks
    /// beyond the patient.
    pub async fn create_document(
        &self,
        clinic: Uuid,
        patient: Uuid,
        new: &NewDocument,
    ) -> sqlx::Result<Created> {
        for _ in 0..2 {
            if let Some(found) = self.same_document(clinic, patient, &new.sha256).await? {
                return Ok(found);
            }
            match self.insert_document(clinic, patient, new).await {
                Ok(created) => return Ok(created),
                // A concurrent upload of the same bytes won: return its document.
                Err(e) if super::unique_violation(&e) == Some(super::Unique::DocumentHash) => {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(sqlx::Error::RowNotFound)
    }

    async fn same_document(
        &self,
        clinic: Uuid,
        patient: Uuid,
        sha256: &str,
    ) -> sqlx::Result<Option<Created>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM documents WHERE clinic_id = $1 AND patient_id = $2 AND sha256 = $3"
        );
        let document: Option<Document> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(patient)
                .bind(sha256)
                .fetch_optional(pool)
                .await?
        });
        let Some(document) = document else {
            return Ok(None);
        };
        let Some(mut job) = self.latest_job(clinic, document.id).await? else {
            return Ok(None);
        };
        // Sending the same bytes again after a failure asks for another try
        // (the parser, the limits or the plugin may have changed since).
        if job.status == "failed" {
            job = Job::queued(clinic, document.id, now());
            on_pool!(self, pool => {
                sqlx::query(
                    "INSERT INTO jobs (id, clinic_id, document_id, status, attempts, progress, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, 0, 0, $5, $5)",
                )
                .bind(job.id)
                .bind(job.clinic_id)
                .bind(job.document_id)
                .bind(&job.status)
                .bind(job.created_at)
                .execute(pool)
                .await?;
            });
        }
        Ok(Some(Created {
            document,
            job,
            duplicate: true,
        }))
    }

    async fn insert_document(
        &self,
        clinic: Uuid,
        patient: Uuid,
        new: &NewDocument,
    ) -> sqlx::Result<Created> {
        let at = now();
        let document = Document {
            id: new_id(),
            clinic_id: clinic,
            patient_id: patient,
            media_type: new.media_type.clone(),
            declared_media_type: new.declared_media_type.clone(),
            size_bytes: new.size_bytes,
            sha256: new.sha256.clone(),
            created_at: at,
        };
        let job = Job::queued(clinic, document.id, at);
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO documents
                 (id, clinic_id, patient_id, media_type, declared_media_type, size_bytes, sha256, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(document.id)
            .bind(document.clinic_id)
            .bind(document.patient_id)
            .bind(&document.media_type)
            .bind(&document.declared_media_type)
            .bind(document.size_bytes)
            .bind(&document.sha256)
            .bind(document.created_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO jobs (id, clinic_id, document_id, status, attempts, progress, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, 0, 0, $5, $5)",
            )
            .bind(job.id)
            .bind(job.clinic_id)
            .bind(job.document_id)
            .bind(&job.status)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(Created {
            document,
            job,
            duplicate: false,
        })
    }

    /// Deletes a document with its records, chunks and jobs; returns it, or
    /// `None` if the patient has no such document. Vectors and bytes are the
    /// caller's to remove afterwards (SQL first: it is the source of truth).
    pub async fn delete_document(
        &self,
        clinic: Uuid,
        patient: Uuid,
        id: Uuid,
    ) -> sqlx::Result<Option<Document>> {
        let sql = format!(
            "DELETE FROM documents WHERE clinic_id = $1 AND patient_id = $2 AND id = $3 RETURNING {COLUMNS}"
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let gone: Option<Document> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(patient)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(gone)
        })
    }

    /// The SHA-256 of every document of a patient (for blob reconciliation).
    pub async fn patient_document_hashes(
        &self,
        clinic: Uuid,
        patient: Uuid,
    ) -> sqlx::Result<Vec<String>> {
        on_pool!(self, pool => {
            sqlx::query_scalar("SELECT sha256 FROM documents WHERE clinic_id = $1 AND patient_id = $2")
                .bind(clinic)
                .bind(patient)
                .fetch_all(pool)
                .await
        })
    }

    /// The clinic and patient of every document with these bytes (for the
    /// start-up move of blobs out of the shared legacy layout).
    pub async fn document_owners(&self, sha256: &str) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT DISTINCT clinic_id, patient_id FROM documents WHERE sha256 = $1",
            )
            .bind(sha256)
            .fetch_all(pool)
            .await
        })
    }

    /// One document of a patient.
    pub async fn document(
        &self,
        clinic: Uuid,
        patient: Uuid,
        id: Uuid,
    ) -> sqlx::Result<Option<Document>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM documents WHERE clinic_id = $1 AND patient_id = $2 AND id = $3"
        );
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(clinic).bind(patient).bind(id).fetch_optional(pool).await
        })
    }

    /// A document by id within a clinic, for the ingestion worker.
    pub async fn document_in_clinic(
        &self,
        clinic: Uuid,
        id: Uuid,
    ) -> sqlx::Result<Option<Document>> {
        let sql = format!("SELECT {COLUMNS} FROM documents WHERE clinic_id = $1 AND id = $2");
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(clinic).bind(id).fetch_optional(pool).await
        })
    }

    /// A patient's documents, newest id last, after the cursor.
    pub async fn documents(
        &self,
        clinic: Uuid,
        patient: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> sqlx::Result<Vec<Document>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM documents
             WHERE clinic_id = $1 AND patient_id = $2 AND ($3 IS NULL OR id > $3)
             ORDER BY id LIMIT $4"
        );
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(patient)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
    }
}
