//! The indexing pipeline, the one way text enters patient memory: records are
//! rendered as sentences beside the document's own sections, split into
//! chunks, embedded (reusing cached vectors) and written to the vector index,
//! and only then committed to SQL with the records, in one transaction. The
//! ingestion worker runs it for parsed documents and `POST .../records` for
//! records posted directly.
//!
//! Vectors go first: until the SQL commit they resolve to no chunk and search
//! ignores them. If the commit fails they are taken back; a crash in between
//! leaves orphans that resolve to nothing until the start-up sweep removes
//! them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::indexing::{self, IndexError};
use super::{chunking, render};
use crate::db::chunks::Chunk;
use crate::db::records::{NewRecord, RecordKind, effective_instant};
use crate::db::{Db, new_id, now};
use crate::memory::{VectorRow, VectorStore};
use crate::ml::Models;
use crate::plugins::document_parser::TextSection;

/// Whose text is being indexed, and from which document.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The clinic.
    pub clinic: Uuid,
    /// The patient.
    pub patient: Uuid,
    /// The document and when it was uploaded (its text is dated by that);
    /// `None` for records posted directly.
    pub document: Option<(Uuid, DateTime<Utc>)>,
}

/// Chunks ready to commit, with their vectors.
pub struct Prepared {
    /// The chunks, in document order.
    pub chunks: Vec<Chunk>,
    /// Their vector rows, in the same order.
    pub rows: Vec<VectorRow>,
    /// How many vectors came from the cache.
    pub reused: usize,
}

/// How the commit went.
#[derive(Debug, PartialEq, Eq)]
pub enum Committed {
    /// Records and chunks are visible.
    Yes,
    /// Nothing was committed: the document or patient went away meanwhile
    /// (the caller withdraws what is left, see `memory::Forget`), or the job
    /// is no longer this worker's. This attempt's vectors are taken back.
    Gone,
}

/// Why indexing failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The embedding model is not loaded yet.
    #[error("the embedding model is not loaded")]
    ModelUnavailable,
    /// Embedding (or reading the embedding cache) failed.
    #[error(transparent)]
    Embed(#[from] IndexError),
    /// The vector index failed.
    #[error("the vector index failed: {0}")]
    Vectors(String),
    /// The SQL commit failed.
    #[error(transparent)]
    Commit(sqlx::Error),
    /// A blocking task failed.
    #[error("internal: {0}")]
    Internal(String),
}

/// Renders, chunks, embeds and indexes text for one patient.
pub struct Indexer {
    db: Db,
    vectors: Arc<VectorStore>,
    models: Models,
}

impl Indexer {
    /// The pipeline over these stores and models.
    pub fn new(db: Db, vectors: Arc<VectorStore>, models: Models) -> Indexer {
        Indexer {
            db,
            vectors,
            models,
        }
    }

    /// Splits the document's `sections` and a rendering of each record into
    /// chunks and embeds them.
    pub async fn prepare(
        &self,
        origin: &Origin,
        records: &[NewRecord],
        sections: Vec<TextSection>,
    ) -> Result<Prepared, PipelineError> {
        let embedder = self
            .models
            .embedder()
            .ok_or(PipelineError::ModelUnavailable)?;
        // Document text is a note dated by its upload; a record's rendering
        // carries the record's kind and time, so "her last A1c" finds an HL7 result.
        let mut all: Vec<(TextSection, Option<&NewRecord>)> =
            sections.into_iter().map(|s| (s, None)).collect();
        all.extend(records.iter().map(|r| (render::record_section(r), Some(r))));
        let pieces = {
            let embedder = embedder.clone();
            let input: Vec<(Option<String>, String, usize, usize)> = all
                .iter()
                .map(|(s, _)| {
                    let (start, end) = (s.source.start as usize, s.source.end as usize);
                    (s.title.clone(), s.text.clone(), start, end)
                })
                .collect();
            tokio::task::spawn_blocking(move || {
                let count = |text: &str| embedder.count_tokens(text).unwrap_or(usize::MAX / 2);
                input
                    .iter()
                    .map(|(title, text, start, end)| {
                        chunking::split(title.as_deref(), text, *start, *end, &count)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| PipelineError::Internal(e.to_string()))?
        };
        let at = now();
        let mut chunks = Vec::new();
        for ((section, record), pieces) in all.iter().zip(pieces) {
            for p in pieces {
                chunks.push(Chunk {
                    id: new_id(),
                    clinic_id: origin.clinic,
                    patient_id: origin.patient,
                    document_id: origin.document.map(|(id, _)| id),
                    record_id: record.map(|r| r.id),
                    ordinal: chunks.len() as i64,
                    section: p.section,
                    kind: record
                        .map_or(RecordKind::Note, |r| r.fields.kind)
                        .as_str()
                        .to_owned(),
                    effective_at: match record {
                        Some(r) => r.fields.effective.as_deref().and_then(effective_instant),
                        None => origin.document.map(|(_, uploaded)| uploaded),
                    },
                    text: p.text,
                    span_start: p.start as i64,
                    span_end: p.end as i64,
                    page: section.source.page.map(i64::from),
                    created_at: at,
                });
            }
        }
        let (rows, reused) = indexing::vector_rows(&self.db, &embedder, &chunks).await?;
        Ok(Prepared {
            chunks,
            rows,
            reused,
        })
    }

    /// Writes the vectors of `prepared`, then runs `commit` (the SQL
    /// transaction that makes the chunks visible), then removes the vectors
    /// of the document's earlier attempts. Only this attempt's own chunk ids
    /// are ever written or taken back, so two workers racing on one document
    /// (one of which lost its lease) never delete each other's vectors.
    pub async fn commit(
        &self,
        origin: &Origin,
        prepared: &Prepared,
        commit: impl AsyncFnOnce(&[Chunk]) -> sqlx::Result<bool>,
    ) -> Result<Committed, PipelineError> {
        let ids: Vec<Uuid> = prepared.chunks.iter().map(|c| c.id).collect();
        self.vectors
            .append(origin.clinic, &prepared.rows)
            .await
            .map_err(|e| PipelineError::Vectors(e.to_string()))?;
        match commit(&prepared.chunks).await {
            Ok(true) => {
                if let Some((document, _)) = origin.document
                    && let Err(e) = self
                        .vectors
                        .prune_document(origin.clinic, document, &ids)
                        .await
                {
                    // Harmless meanwhile: they resolve to no chunk; the
                    // start-up sweep removes them.
                    tracing::warn!(error = %e, "could not remove the vectors of earlier attempts");
                }
                Ok(Committed::Yes)
            }
            Ok(false) => {
                let _ = self.vectors.delete_chunks(origin.clinic, &ids).await;
                Ok(Committed::Gone)
            }
            Err(e) => {
                let _ = self.vectors.delete_chunks(origin.clinic, &ids).await;
                Err(PipelineError::Commit(e))
            }
        }
    }
}
