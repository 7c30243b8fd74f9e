//! The whole test suite in one binary (one link on a 2-core machine).
//!
//! - `newcomer`, `tenancy`, `bad_input`, `operations`: black-box, against the
//!   real binary with real SQLite or PostgreSQL, LanceDB, model and plugins;
//! - `store`: the repositories against SQLite and PostgreSQL;
//! - `model`: the embedder against sentence-transformers' reference vectors;
//! - `plugins`: the sandbox with the compiled first-party plugins.

mod bad_input;
mod model;
mod newcomer;
mod operations;
mod parsers;
mod plugins;
mod registry;
mod store;
mod tenancy;
