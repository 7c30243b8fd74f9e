//! The whole test suite in one binary (one link on a 2-core machine).
//!
//! - `newcomer`, `tenancy`, `bad_input`, `operations`: black-box, against the
//!   real binary with real SQLite or PostgreSQL, LanceDB, model and plugins;
//! - `store`: the repositories against SQLite and PostgreSQL;
//! - `model`: the embedder against sentence-transformers' reference vectors;
//! - `llm`: the decoder against transformers' greedy tokens on the same GGUF;
//! - `alerts`: rule plugins on arriving records, the alert lifecycle;
//! - `answers`: `/ask` grounding, streaming, disconnect, quotas, conversations;
//! - `retrievers`: retriever plugins choose `/ask` and `/search` evidence,
//!   and a hostile one cannot reach another patient;
//! - `plugins`: the sandbox with the compiled first-party plugins;
//! - `memory`: records, hybrid search, FHIR export, erasure, reindex, SSE;
//! - `crash`: ingestion under SIGKILL, twenty times, on SQLite and PostgreSQL;
//! - `audit`: the hash-chained trail, its filters, and tamper detection;
//! - `auth`: OIDC against a certified provider, and forged tokens;
//! - `access`: every route's 401/403, tenant isolation, policy edits;
//! - `blobs`: document blobs in an S3-compatible bucket;
//! - `backup`: backups taken while the server runs restore what they held;
//! - `instances`: three hosts on one PostgreSQL, vector store and bucket;
//! - `isolation`: one clinic's hostile plugin stalls no other clinic;
//! - `architecture`: the host's layering, module cycles and file sizes;
//! - `schema`: the SQLite and PostgreSQL migrations give the same schema.

mod access;
mod alerts;
mod answers;
mod architecture;
mod audit;
mod auth;
mod backup;
mod bad_input;
mod blobs;
mod cds;
mod crash;
mod instances;
mod isolation;
mod llm;
mod memory;
mod model;
mod newcomer;
mod operations;
mod parsers;
mod plugins;
mod registry;
mod retrievers;
mod schema;
mod store;
mod tenancy;
