//! Forgetting, as domain operations: a document delete and a patient erasure
//! each touch SQL, the vector index and the blob store, always in the same
//! order. SQL goes first, so once it commits the data is gone for every
//! reader; the copies in the index and the blob store are removed after, and
//! whatever a crash leaves behind is finished or swept at the next start.

use std::sync::Arc;

use uuid::Uuid;

use super::VectorStore;
use crate::blobs::BlobStore;
use crate::db::Db;
use crate::db::documents::Document;
use crate::db::patients::Erasure;

/// How an erasure ended.
#[derive(Debug)]
pub enum Erased {
    /// Everything is gone.
    Complete(Erasure),
    /// SQL is done; vectors or blobs remain and are removed at the next start.
    Pending(Erasure, anyhow::Error),
}

/// Deletes and erasures over the three stores.
pub struct Forget {
    db: Db,
    vectors: Arc<VectorStore>,
    blobs: Arc<BlobStore>,
}

impl Forget {
    /// The operations over these stores.
    pub fn new(db: Db, vectors: Arc<VectorStore>, blobs: Arc<BlobStore>) -> Forget {
        Forget { db, vectors, blobs }
    }

    /// Deletes a document with its records, chunks, vectors and bytes;
    /// `None` when the patient has no such document.
    pub async fn delete_document(
        &self,
        clinic: Uuid,
        patient: Uuid,
        document: Uuid,
    ) -> anyhow::Result<Option<Document>> {
        let Some(gone) = self.db.delete_document(clinic, patient, document).await? else {
            return Ok(None);
        };
        self.vectors.delete_document(clinic, gone.id).await?;
        self.blobs.delete(clinic, patient, &gone.sha256).await?;
        Ok(Some(gone))
    }

    /// Erases a patient irreversibly (records, documents, bytes, chunks,
    /// vectors in every table version, cached embeddings); `None` when the
    /// clinic has no such patient. `actor` and `request_id` are recorded with
    /// the erasure in the audit trail; a pending erasure is finished by
    /// [`Forget::keep_finishing`].
    pub async fn erase_patient(
        &self,
        clinic: Uuid,
        patient: Uuid,
        actor: &str,
        request_id: Option<&str>,
    ) -> anyhow::Result<Option<Erased>> {
        let erased = self
            .db
            .erase_patient(clinic, patient, actor, request_id)
            .await?;
        let Some(erasure) = erased else {
            return Ok(None);
        };
        Ok(Some(match self.finish_erasure(&erasure).await {
            Ok(done) => Erased::Complete(done),
            Err(e) => Erased::Pending(erasure, e),
        }))
    }

    /// Removes an erased patient's vectors (from every table version) and
    /// blobs, then marks the erasure complete.
    pub async fn finish_erasure(&self, erasure: &Erasure) -> anyhow::Result<Erasure> {
        self.vectors
            .erase_patient(erasure.clinic_id, erasure.patient_id)
            .await?;
        self.blobs
            .erase_patient(erasure.clinic_id, erasure.patient_id)
            .await?;
        // `None`: another worker completed it meanwhile.
        Ok(self
            .db
            .complete_erasure(erasure.id)
            .await?
            .unwrap_or_else(|| erasure.clone()))
    }

    /// Tries once to finish every pending erasure; returns how many finished.
    /// A store that fails is logged and tried again later, never fatal.
    pub async fn finish_pending(&self) -> usize {
        let pending = match self.db.pending_erasures().await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::error!(error = %e, "could not list pending erasures");
                return 0;
            }
        };
        let mut finished = 0;
        for erasure in pending {
            match self.finish_erasure(&erasure).await {
                Ok(_) => finished += 1,
                Err(e) => {
                    tracing::error!(erasure = %erasure.id, error = %e, "erasure still pending; will retry")
                }
            }
        }
        finished
    }

    /// Finishes pending erasures in the background, retrying with back-off
    /// (from 5 s up to 5 minutes) while any remain. Runs forever.
    pub async fn keep_finishing(self: Arc<Self>) {
        let mut wait = std::time::Duration::from_secs(5);
        loop {
            tokio::time::sleep(wait).await;
            let remaining = match self.db.pending_erasures().await {
                Ok(p) => p.len(),
                Err(_) => 1,
            };
            if remaining == 0 {
                wait = std::time::Duration::from_secs(30);
                continue;
            }
            let finished = self.finish_pending().await;
            wait = if finished == remaining {
                std::time::Duration::from_secs(30)
            } else {
                (wait * 2).min(std::time::Duration::from_secs(300))
            };
        }
    }

    /// Takes back the vectors of a document whose commit found it gone (deleted
    /// meanwhile, or its patient erased): removes them, and prunes older table
    /// versions too if the patient no longer exists.
    pub async fn withdraw_document(&self, clinic: Uuid, patient: Uuid, document: Uuid) {
        let _ = self.vectors.delete_document(clinic, document).await;
        if let Ok(false) = self.db.patient_exists(clinic, patient).await {
            let _ = self.vectors.erase_patient(clinic, patient).await;
        }
    }
}
