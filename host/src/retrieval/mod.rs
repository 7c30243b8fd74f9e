//! Retrieval: the evidence for a question about one patient, chosen by a
//! retriever plugin.
//!
//! Owns: choosing the retriever (the request's, else the clinic's default,
//! else the first-party `hybrid`), the call (through the plugin catalog:
//! breaker, sandbox, audit) with `search` and `records` scoped to the
//! patient ([`access`]), and resolving what it returns: chunk and record ids
//! it was handed are read back from SQL, scoped again by clinic and patient;
//! anything else is ignored. Uses: `memory` (search, similarity), `plugins`,
//! `db`, `ingest` (how chunks are embedded and records rendered). `/search` and `/ask` (through `rag`) call it.

mod access;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use uuid::Uuid;

use crate::db::Db;
use crate::db::records::Record;
use crate::ingest::indexing::embed_text;
use crate::memory::{Evidence, Memory, Mode, Query, Scope, SearchError};
use crate::plugins::{
    CallContext, CallError, CallFor, InstalledPlugin, Kind, Plugins, evidence_retriever,
};

pub use access::wit_record;

/// The retriever a clinic uses when it has chosen none.
pub const DEFAULT_RETRIEVER: &str = "hybrid";

/// Retrieval over the patient memory and the installed retrievers.
pub struct Retrieval {
    db: Db,
    memory: Arc<Memory>,
    plugins: Arc<Plugins>,
}

/// One question to find evidence for.
#[derive(Debug, Clone)]
pub struct Request {
    pub clinic: Uuid,
    pub patient: Uuid,
    /// The question.
    pub text: String,
    /// Earlier questions of the conversation, oldest first.
    pub history: Vec<String>,
    /// At most this many results.
    pub limit: usize,
    /// A retriever by name (or plugin id); the clinic's default when `None`.
    pub retriever: Option<String>,
    pub request_id: Option<String>,
}

impl Request {
    /// The text to search and to score relevance against: a follow-up
    /// carries the question before it, so "and before that?" still finds
    /// what the conversation is about.
    pub fn search_text(&self) -> String {
        match self.history.last() {
            Some(previous) => format!("{previous} {}", self.text),
            None => self.text.clone(),
        }
    }
}

/// One resolved result.
#[derive(Debug, Clone)]
pub struct Found {
    /// The chunk cited (for a record: the chunk that states it).
    pub evidence: Evidence,
    /// The record, when the retriever ranked a record.
    pub record: Option<Record>,
}

/// What a retriever found, best first.
#[derive(Debug, Clone)]
pub struct Retrieved {
    /// The retriever's name.
    pub retriever: String,
    pub found: Vec<Found>,
}

impl Retrieved {
    /// Whether every result is a record the retriever chose from the
    /// structured record (and there is at least one).
    pub fn all_records(&self) -> bool {
        !self.found.is_empty() && self.found.iter().all(|f| f.record.is_some())
    }
}

/// Why retrieval failed.
#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    /// The request named a retriever this clinic does not have enabled.
    #[error("no enabled retriever of that name in this clinic")]
    UnknownRetriever,
    /// The embedding model is not loaded yet.
    #[error("the embedding model is not loaded yet")]
    ModelUnavailable,
    /// The retriever failed; the code says how.
    #[error("the retriever failed: {0}")]
    Plugin(String, &'static str),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<SearchError> for RetrieveError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::ModelUnavailable => RetrieveError::ModelUnavailable,
            SearchError::Internal(e) => RetrieveError::Internal(e),
        }
    }
}

impl From<sqlx::Error> for RetrieveError {
    fn from(e: sqlx::Error) -> Self {
        RetrieveError::Internal(e.into())
    }
}

impl Retrieval {
    pub fn new(db: Db, memory: Arc<Memory>, plugins: Arc<Plugins>) -> Retrieval {
        Retrieval {
            db,
            memory,
            plugins,
        }
    }

    /// The memory service retrieval searches.
    pub fn memory(&self) -> &Arc<Memory> {
        &self.memory
    }

    /// Whether `name` is a retriever `clinic` may use: an enabled retriever
    /// plugin with that name or id (or `hybrid`, always).
    pub async fn is_available(&self, clinic: Uuid, name: &str) -> anyhow::Result<bool> {
        Ok(name == DEFAULT_RETRIEVER || self.find(clinic, name).await?.is_some())
    }

    /// The enabled retriever of this name (or plugin id) in `clinic`.
    async fn find(
        &self,
        clinic: Uuid,
        name: &str,
    ) -> anyhow::Result<Option<(Arc<InstalledPlugin>, CallContext)>> {
        self.plugins
            .pick(clinic, Kind::Retriever, |p| p.name == name || p.id == name)
            .await
    }

    /// The evidence for `request`, best first.
    pub async fn retrieve(&self, request: &Request) -> Result<Retrieved, RetrieveError> {
        let (name, explicit) = match &request.retriever {
            Some(name) => (name.clone(), true),
            None => {
                let chosen = self
                    .db
                    .clinic(request.clinic)
                    .await?
                    .and_then(|c| c.retriever);
                (
                    chosen.unwrap_or_else(|| DEFAULT_RETRIEVER.to_owned()),
                    false,
                )
            }
        };
        let plugin = match self.find(request.clinic, &name).await? {
            Some(plugin) => Some(plugin),
            None if name == DEFAULT_RETRIEVER => None,
            None if explicit => return Err(RetrieveError::UnknownRetriever),
            // The clinic's choice was disabled or removed since: the default.
            None => {
                tracing::warn!(clinic = %request.clinic, "the clinic's retriever is not available; using hybrid");
                self.find(request.clinic, DEFAULT_RETRIEVER).await?
            }
        };
        let Some((plugin, ctx)) = plugin else {
            // No hybrid plugin installed (a server without its plugins
            // folder): the host's own hybrid search, which it wraps.
            return self.built_in(request).await;
        };
        let query = evidence_retriever::Query {
            text: request.text.clone(),
            history: request.history.clone(),
            limit: request.limit as u32,
            now: crate::db::now().to_rfc3339(),
        };
        let memory = access::ScopedMemory {
            db: self.db.clone(),
            memory: self.memory.clone(),
            clinic: request.clinic,
            patient: request.patient,
            runtime: tokio::runtime::Handle::current(),
        };
        let who = CallFor {
            clinic: Some(request.clinic),
            patient: Some(request.patient),
            request_id: request.request_id.clone(),
        };
        let (ranked, _) = self
            .plugins
            .retrieve(&plugin, ctx, &who, query, Box::new(memory))
            .await
            .map_err(|e| match e {
                CallError::Plugin(f) => RetrieveError::Plugin(f.to_string(), f.code()),
                CallError::Audit(m) => RetrieveError::Internal(anyhow::anyhow!(m)),
            })?;
        let mut retrieved = self.resolve(request, ranked).await?;
        retrieved.retriever = plugin.info.name.clone();
        Ok(retrieved)
    }

    async fn built_in(&self, request: &Request) -> Result<Retrieved, RetrieveError> {
        let query = Query {
            text: request.search_text(),
            mode: Mode::Hybrid,
            limit: request.limit,
            scope: Scope::default(),
        };
        let found = self
            .memory
            .search(request.clinic, request.patient, &query)
            .await?;
        Ok(Retrieved {
            retriever: DEFAULT_RETRIEVER.to_owned(),
            found: found
                .into_iter()
                .map(|evidence| Found {
                    evidence,
                    record: None,
                })
                .collect(),
        })
    }

    /// Reads what a retriever ranked back from SQL, scoped to the patient,
    /// in its order; a record is cited by the chunk that states it.
    async fn resolve(
        &self,
        request: &Request,
        ranked: Vec<evidence_retriever::Ranked>,
    ) -> Result<Retrieved, RetrieveError> {
        use evidence_retriever::Evidence as Ref;
        let (clinic, patient) = (request.clinic, request.patient);
        let ids = |want_record: bool| -> Vec<Uuid> {
            ranked
                .iter()
                .filter_map(|r| match &r.evidence {
                    Ref::Chunk(id) if !want_record => id.parse().ok(),
                    Ref::Record(id) if want_record => id.parse().ok(),
                    _ => None,
                })
                .collect()
        };
        let (chunk_ids, record_ids) = (ids(false), ids(true));
        let chunks: HashMap<Uuid, _> = self
            .db
            .patient_chunks(clinic, patient, &chunk_ids)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        let mut record_chunks = HashMap::new();
        for chunk in self.db.record_chunks(clinic, patient, &record_ids).await? {
            if let Some(record) = chunk.record_id {
                record_chunks.entry(record).or_insert(chunk);
            }
        }
        let mut found = Vec::new();
        let mut cited = HashSet::new();
        for r in &ranked {
            let (chunk, record) = match &r.evidence {
                Ref::Chunk(id) => (id.parse().ok().and_then(|id: Uuid| chunks.get(&id)), None),
                Ref::Record(id) => {
                    let id: Option<Uuid> = id.parse().ok();
                    let record = match id {
                        Some(id) => self.db.record(clinic, patient, id).await?,
                        None => None,
                    };
                    (id.and_then(|id| record_chunks.get(&id)), record)
                }
            };
            let Some(chunk) = chunk else {
                // Handed out, but not (or no longer) this patient's in SQL.
                metrics::counter!("retriever_results_unresolved_total").increment(1);
                continue;
            };
            if !cited.insert(chunk.id) {
                continue;
            }
            found.push(Found {
                evidence: Evidence {
                    chunk_id: chunk.id,
                    text: chunk.text.clone(),
                    score: r.score,
                    document_id: chunk.document_id,
                    record_id: chunk.record_id,
                    kind: chunk.kind.clone(),
                    section: chunk.section.clone(),
                    page: chunk.page,
                    effective_at: chunk.effective_at,
                    similarity: None,
                    span_start: chunk.span_start,
                    span_end: chunk.span_end,
                    explanation: r
                        .explanation
                        .as_deref()
                        .map(str::trim)
                        .filter(|e| !e.is_empty())
                        .map(|e| e.chars().take(500).collect()),
                },
                record,
            });
        }
        found.truncate(request.limit);
        Ok(Retrieved {
            retriever: String::new(),
            found,
        })
    }

    /// Fills in each result's cosine similarity to the request's search text.
    pub async fn score(
        &self,
        request: &Request,
        retrieved: &mut Retrieved,
    ) -> Result<(), RetrieveError> {
        // The text each chunk was embedded as, so the vectors come from the
        // embedding cache.
        let embedded: Vec<String> = retrieved
            .found
            .iter()
            .map(|f| embed_text(f.evidence.section.as_deref(), &f.evidence.text))
            .collect();
        let texts: Vec<&str> = embedded.iter().map(String::as_str).collect();
        let scores = self
            .memory
            .similarities(
                request.clinic,
                request.patient,
                &request.search_text(),
                &texts,
            )
            .await?;
        for (f, s) in retrieved.found.iter_mut().zip(scores) {
            f.evidence.similarity = Some(s);
        }
        Ok(())
    }
}
