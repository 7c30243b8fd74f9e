//! The ingestion pipeline: upload -> sniff -> parse (plugin) -> chunk -> embed
//! -> index, run as durable jobs, and the upkeep that keeps SQL, blobs and the
//! vector index in agreement.
//!
//! Owns: the job worker ([`Ingest::run`]), the indexing pipeline
//! ([`pipeline::Indexer`], also used by `POST .../records`), the type sniffer,
//! chunking, the rendering of records as sentences, and the start-up sweep and
//! reindex ([`maintenance`]). Uses: `db`, `blobs`, `plugins` (parsers), `ml`
//! (the embedder) and `memory` (the vector index, forgetting). Nothing above it.
//!
//! The upload handler stores the bytes and queues a job in one transaction;
//! workers claim jobs from the database under leases, so a restart (or another
//! instance) resumes where a stopped worker left off, and a bounded number of
//! jobs per clinic run at once.
//! A job's chunks become visible in the same transaction that marks it
//! succeeded; vectors are written first and are invisible until then, because
//! search resolves hits through SQL.

pub mod chunking;
pub mod indexing;
pub mod maintenance;
pub mod pipeline;
pub mod render;
pub mod sniff;
mod worker;

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

pub use worker::{JobFailure, MAX_ATTEMPTS, WorkerPolicy, backoff, run_job};

use crate::blobs::BlobStore;
use crate::db::Db;
use crate::memory::{Forget, VectorStore};
use crate::ml::Models;
use crate::plugins::Plugins;
use pipeline::Indexer;

/// Starts of a job cut short by its worker stopping (its lease expired)
/// before the job is failed as `interrupted` rather than tried again.
pub const MAX_INTERRUPTIONS: i64 = 10;

/// The ingestion service: what the worker, the pipeline and the upkeep use.
pub struct Ingest {
    db: Db,
    blobs: Arc<BlobStore>,
    plugins: Arc<Plugins>,
    vectors: Arc<VectorStore>,
    models: Models,
    forget: Arc<Forget>,
    indexer: Indexer,
    policy: WorkerPolicy,
    wake: Notify,
    index_problems: Mutex<Vec<String>>,
    arrivals: tokio::sync::broadcast::Sender<Arrival>,
}

/// Records that just became part of a patient's memory (a document's job
/// succeeded, or records were posted): what clinical rules react to.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub clinic: uuid::Uuid,
    pub patient: uuid::Uuid,
    /// The new records' ids.
    pub records: Vec<uuid::Uuid>,
}

impl Ingest {
    /// The service over these stores and engines.
    pub fn new(
        db: Db,
        blobs: Arc<BlobStore>,
        plugins: Arc<Plugins>,
        vectors: Arc<VectorStore>,
        models: Models,
        forget: Arc<Forget>,
        policy: WorkerPolicy,
    ) -> Ingest {
        Ingest {
            indexer: Indexer::new(db.clone(), vectors.clone(), models.clone()),
            db,
            blobs,
            plugins,
            vectors,
            models,
            forget,
            policy,
            wake: Notify::new(),
            index_problems: Mutex::new(Vec::new()),
            arrivals: tokio::sync::broadcast::channel(1024).0,
        }
    }

    /// Tells subscribers that records arrived (no one listening is fine).
    pub fn announce(&self, arrival: Arrival) {
        let _ = self.arrivals.send(arrival);
    }

    /// Arrivals from now on. A subscriber that falls more than 1024 behind
    /// misses the oldest (and hears how many it missed).
    pub fn arrivals(&self) -> tokio::sync::broadcast::Receiver<Arrival> {
        self.arrivals.subscribe()
    }

    /// The indexing pipeline.
    pub fn indexer(&self) -> &Indexer {
        &self.indexer
    }

    /// Tells the worker there is work.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Why the vector index cannot be used as it is, if it cannot (as of the
    /// last [`Ingest::check_index`]).
    pub fn index_problems(&self) -> Vec<String> {
        self.index_problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
