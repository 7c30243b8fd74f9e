//! The one search entry point: a patient's evidence for a question, best
//! first, with citations. `/search` calls it today; `/ask` and the retriever
//! plugins' host `search` import call the same function.
//!
//! `hybrid` (the default) runs a vector search (the query embedded with the
//! same model as the chunks) and a BM25 full-text search, both prefiltered to
//! this patient and the requested kinds and dates, and fuses them by
//! reciprocal rank; `vector` and `keyword` run one of them. The index returns
//! chunk ids only; text and citations are read back from SQL (the source of
//! truth), scoped again by clinic and patient, so a vector without a committed
//! chunk is never evidence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Scope, VectorStore, fusion};
use crate::db::Db;
use crate::db::embeddings::text_key;
use crate::ml::{MODEL_ID, Models};

/// How to search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Vector and full-text search fused by reciprocal rank.
    #[default]
    Hybrid,
    /// Semantic similarity of embeddings only.
    Vector,
    /// Full-text (BM25) only.
    Keyword,
}

/// A validated search: the text, how, how many and within what.
#[derive(Debug, Clone)]
pub struct Query {
    /// The question or phrase (non-empty).
    pub text: String,
    /// Search mode.
    pub mode: Mode,
    /// How many hits at most.
    pub limit: usize,
    /// Kinds and dates the hits must fall in.
    pub scope: Scope,
}

/// One piece of evidence with its citation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Evidence {
    /// The chunk's id.
    pub chunk_id: Uuid,
    /// The chunk's text.
    pub text: String,
    /// Relevance, higher is better: cosine similarity (vector), BM25
    /// (keyword) or the fused reciprocal-rank score (hybrid).
    pub score: f32,
    /// The document it came from (null for a record posted directly).
    pub document_id: Option<Uuid>,
    /// The record it states, if any.
    pub record_id: Option<Uuid>,
    /// The record kind it states, or `note` for document text.
    pub kind: String,
    /// The section heading, if any.
    pub section: Option<String>,
    /// The 1-based page of the source, for paged formats.
    pub page: Option<i64>,
    /// When what it states happened, if known.
    pub effective_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Cosine similarity of the chunk to the query (comparable across
    /// queries), when a vector search saw it.
    pub similarity: Option<f32>,
    /// First byte of the source span in the document.
    pub span_start: i64,
    /// End of the source span (exclusive).
    pub span_end: i64,
    /// Why the clinic's retriever plugin ranked it here, for the clinician;
    /// null for the built-in search.
    pub explanation: Option<String>,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A vector search needs the embedding model, which is not loaded yet.
    #[error("the embedding model is not loaded yet")]
    ModelUnavailable,
    /// A store or the model failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Query embeddings kept, across clinics (each clinic's are its own).
const QUERY_CACHE: usize = 2048;

/// A cached query: its clinic and the SHA-256 of its text.
type QueryKey = (Uuid, [u8; 32]);

/// Recently embedded queries: the same text in the same clinic is embedded
/// once. Keyed by clinic and a digest of the text (the text itself is not
/// kept), so one clinic cannot learn from timing what another asked.
#[derive(Default)]
struct QueryCache {
    /// (clinic, text digest) -> (vector, last use).
    entries: HashMap<QueryKey, (Arc<Vec<f32>>, u64)>,
    clock: u64,
}

impl QueryCache {
    fn get(&mut self, key: &(Uuid, [u8; 32])) -> Option<Arc<Vec<f32>>> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|(vector, used)| {
            *used = clock;
            vector.clone()
        })
    }

    fn put(&mut self, key: (Uuid, [u8; 32]), vector: Arc<Vec<f32>>) {
        if self.entries.len() >= QUERY_CACHE
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
        {
            self.entries.remove(&oldest);
        }
        self.clock += 1;
        self.entries.insert(key, (vector, self.clock));
    }
}

/// The patient-memory service: search over the vector index, resolved
/// through SQL.
pub struct Memory {
    db: Db,
    vectors: Arc<VectorStore>,
    models: Models,
    queries: Mutex<QueryCache>,
}

impl Memory {
    /// The service over these stores and models.
    pub fn new(db: Db, vectors: Arc<VectorStore>, models: Models) -> Memory {
        Memory {
            db,
            vectors,
            models,
            queries: Mutex::new(QueryCache::default()),
        }
    }

    /// The vector index.
    pub fn vectors(&self) -> &Arc<VectorStore> {
        &self.vectors
    }

    /// Embeds one query of `clinic` off the async runtime, or takes it from
    /// the cache.
    async fn embed(&self, clinic: Uuid, text: &str) -> Result<Arc<Vec<f32>>, SearchError> {
        let embedder = self
            .models
            .embedder()
            .ok_or(SearchError::ModelUnavailable)?;
        let key = (clinic, <[u8; 32]>::from(Sha256::digest(text.as_bytes())));
        let cached = self
            .queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key);
        if let Some(vector) = cached {
            return Ok(vector);
        }
        let text = text.to_owned();
        let vector = tokio::task::spawn_blocking(move || embedder.embed(&[text.as_str()]))
            .await
            .map_err(anyhow::Error::from)?
            .map_err(anyhow::Error::from)?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the model returned no vector"))?;
        let vector = Arc::new(vector);
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(key, vector.clone());
        Ok(vector)
    }

    /// The patient's best evidence for `query`, best first, at most
    /// `query.limit` items.
    pub async fn search(
        &self,
        clinic: Uuid,
        patient: Uuid,
        query: &Query,
    ) -> Result<Vec<Evidence>, SearchError> {
        let limit = query.limit;
        // Each side fetches more than asked, so fusion has candidates to agree on.
        let depth = if query.mode == Mode::Hybrid {
            (limit * 3).max(20)
        } else {
            limit
        };
        let vector_hits = if query.mode == Mode::Keyword {
            Vec::new()
        } else {
            let vector = self.embed(clinic, &query.text).await?;
            self.vectors
                .vector_search(clinic, patient, &query.scope, &vector, depth)
                .await
                .map_err(anyhow::Error::from)?
        };
        let keyword_hits = if query.mode == Mode::Vector {
            Vec::new()
        } else {
            self.vectors
                .keyword_search(clinic, patient, &query.scope, &query.text, depth)
                .await
                .map_err(anyhow::Error::from)?
        };
        let cosine: HashMap<Uuid, f32> =
            vector_hits.iter().map(|h| (h.chunk_id, h.score)).collect();
        let hits = match query.mode {
            Mode::Vector => vector_hits,
            Mode::Keyword => keyword_hits,
            Mode::Hybrid => fusion::reciprocal_rank(&[&vector_hits, &keyword_hits], limit),
        };
        let ids: Vec<Uuid> = hits.iter().map(|h| h.chunk_id).collect();
        let mut chunks: HashMap<Uuid, _> = self
            .db
            .patient_chunks(clinic, patient, &ids)
            .await
            .map_err(anyhow::Error::from)?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        // Vectors without a committed chunk (an interrupted job) are not evidence.
        Ok(hits
            .into_iter()
            .filter_map(|hit| {
                let chunk = chunks.remove(&hit.chunk_id)?;
                Some(Evidence {
                    chunk_id: chunk.id,
                    text: chunk.text,
                    score: hit.score,
                    document_id: chunk.document_id,
                    record_id: chunk.record_id,
                    kind: chunk.kind,
                    section: chunk.section,
                    page: chunk.page,
                    effective_at: chunk.effective_at,
                    similarity: cosine.get(&chunk.id).copied(),
                    span_start: chunk.span_start,
                    span_end: chunk.span_end,
                    explanation: None,
                })
            })
            .collect())
    }

    /// Cosine similarity of `query` to each of `texts` (chunks of this
    /// patient): their vectors come from the embedding cache in SQL, and
    /// the few that are not there are embedded now.
    pub async fn similarities(
        &self,
        clinic: Uuid,
        patient: Uuid,
        query: &str,
        texts: &[&str],
    ) -> Result<Vec<f32>, SearchError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let question = self.embed(clinic, query).await?;
        let keys: Vec<String> = texts.iter().map(|t| text_key(t)).collect();
        let cached = self
            .db
            .cached_embeddings(clinic, patient, MODEL_ID, &keys)
            .await
            .map_err(anyhow::Error::from)?;
        let (missing_keys, missing): (Vec<String>, Vec<String>) = texts
            .iter()
            .zip(&keys)
            .filter(|(_, k)| !cached.contains_key(*k))
            .map(|(t, k)| (k.clone(), (*t).to_owned()))
            .unzip();
        let mut fresh = HashMap::new();
        if !missing.is_empty() {
            let embedder = self
                .models
                .embedder()
                .ok_or(SearchError::ModelUnavailable)?;
            let vectors = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = missing.iter().map(String::as_str).collect();
                embedder.embed(&refs)
            })
            .await
            .map_err(anyhow::Error::from)?
            .map_err(anyhow::Error::from)?;
            fresh.extend(missing_keys.into_iter().zip(vectors));
        }
        Ok(keys
            .iter()
            .map(|k| {
                cached.get(k).or_else(|| fresh.get(k)).map_or(0.0, |v| {
                    v.iter().zip(question.iter()).map(|(a, b)| a * b).sum()
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_cache_keeps_the_most_recently_used() {
        let mut cache = QueryCache::default();
        let clinic = Uuid::nil();
        let key = |i: u32| (clinic, <[u8; 32]>::from(Sha256::digest(i.to_le_bytes())));
        for i in 0..QUERY_CACHE as u32 {
            cache.put(key(i), Arc::new(vec![i as f32]));
        }
        // Touch the first, then overflow: the second (least recent) goes.
        assert!(cache.get(&key(0)).is_some());
        cache.put(key(u32::MAX), Arc::new(vec![0.0]));
        assert_eq!(cache.entries.len(), QUERY_CACHE);
        assert!(cache.get(&key(0)).is_some());
        assert!(cache.get(&key(1)).is_none());
        // Another clinic's identical text is another entry.
        let other = (Uuid::max(), key(0).1);
        assert!(cache.get(&other).is_none());
    }
}
