//! Patient memory: chunks as vectors and full text, searched for one patient.
//!
//! Owns: the LanceDB tables (one per clinic, derived from the chunks in SQL,
//! rebuilt by `medmemory reindex`), the one search entry point every caller
//! uses ([`Memory::search`]: `/search` today, `/ask` and the retriever host
//! import tomorrow), and the operations that forget: document delete and
//! patient erasure, which coordinate SQL, vectors and blobs in one place.
//! Uses: `db` (chunks, records, erasures), `blobs`, `ml` (the query
//! embedding). Nothing above it.
//!
//! Every read goes through [`VectorStore::vector_search`] or
//! [`VectorStore::keyword_search`], which take typed ids and prefilter by
//! patient inside the clinic's table, so no caller ever builds a filter string
//! and no hit can come from elsewhere. For one patient the search is exact
//! over the prefiltered rows; no ANN index is built (it would only pay off for
//! clinic-wide search on large tables).
//!
//! - [`schema`]: the table layout; [`store`]: tables, writes and deletes;
//!   `search_store`/`erasure_store`/`backup_store`: the LanceDB side of
//!   search, erasure and backups.
//! - [`search`]: the search service; [`fusion`]: reciprocal rank fusion.
//! - [`forget`]: document delete and patient erasure.

mod backup_store;
mod erasure_store;
pub mod forget;
pub mod fusion;
pub mod schema;
pub mod search;
mod search_store;
pub mod store;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::records::RecordKind;
use crate::ml::DIM;

pub use backup_store::{BACKUP_TAG, TableCopy};
pub use forget::{Erased, Forget};
pub use schema::{SCHEMA_VERSION, VectorRow, table_name};
pub use search::{Evidence, Memory, Mode, Query, SearchError};
pub use store::VectorStore;

/// Errors of the vector store.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// LanceDB failed.
    #[error(transparent)]
    Lance(#[from] lancedb::Error),
    /// Arrow failed building a batch.
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A vector has the wrong dimension.
    #[error("expected vectors of dimension {DIM}, got {0}")]
    Dimension(usize),
}

/// Which of a patient's chunks a search may return.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only these record kinds (all when empty).
    pub kinds: Vec<RecordKind>,
    /// Only chunks effective at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only chunks effective before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// A ranked chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// The chunk's id.
    pub chunk_id: Uuid,
    /// Cosine similarity (vector search) or BM25 score (keyword search);
    /// higher is better.
    pub score: f32,
}
