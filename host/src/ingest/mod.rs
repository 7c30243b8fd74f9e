//! The ingestion pipeline: upload -> sniff -> parse (plugin) -> chunk -> embed
//! -> index, run as durable jobs.
//!
//! The upload handler stores the bytes and queues a job in one transaction; a
//! worker claims jobs from the database, so a restart resumes where it left off.
//! A job's chunks become visible in the same transaction that marks it
//! succeeded; vectors are written first and are invisible until then, because
//! search resolves hits through SQL.

pub mod blobs;
pub mod chunking;
pub mod indexing;
pub mod maintenance;
pub mod render;
pub mod sniff;
mod worker;

pub use worker::{MAX_ATTEMPTS, Worker, backoff, run_job};

/// Starts of a job cut short by the process stopping before the job is failed
/// as `interrupted` rather than tried again.
pub const MAX_INTERRUPTIONS: i64 = 10;
