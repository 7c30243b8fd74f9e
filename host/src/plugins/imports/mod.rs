//! The host imports every plugin world links, one file each: `log` (kept for
//! the author, never written to the server log), `config` (the clinic's
//! settings for the plugin) and `search` (a retriever's patient-scoped search).
//! The shared `types` interface has no functions. `clocks` replaces WASI's
//! monotonic clock with one that never sleeps.

pub mod clocks;
pub mod config;
pub mod log;
pub mod search;

use super::bindings::types;
use super::sandbox::CallState;

impl types::Host for CallState {}
