//! The plugin host: runs untrusted WebAssembly components under a strict sandbox.
//!
//! One [`wasmtime::Engine`] is shared by every plugin. Each call gets a fresh
//! store and instance (no state survives between calls or patients), a fuel
//! budget (deterministic), an epoch deadline (wall-clock backstop) and a memory
//! cap; the limits are the host's settings, lowered per clinic if it chooses.
//! The WASI context is empty: no preopened directories, no network, no
//! environment, no arguments. A trap or an exhausted limit fails that call only;
//! a plugin that keeps failing is paused by its circuit breaker.
//!
//! Engine choice: `concurrency_support(false)`. Measured on this machine kind,
//! it makes synchronous component calls 3-5x cheaper, and no plugin world uses
//! component-model async yet: the retriever's host `search` blocks its own
//! worker thread instead.
//!
//! Owns: the engine, the component cache, installed plugins and each clinic's
//! choices of them (persisted through `db`), audited calls. Uses: `config`
//! (the host's limits) and `db` (plugin rows, clinic choices, call audit);
//! nothing above it.
//!
//! - [`contract`]: which world and contract version a component implements;
//!   `legacy`: the host side of contract 0.1, which still runs.
//! - [`registry`]: vetting, compiling and describing components;
//!   [`cache`]: their compiled code on disk.
//! - [`engine`]: the shared engine and the calls of each kind, run in the
//!   per-call [`sandbox`] under [`limits`], with the host [`imports`], output
//!   checks ([`output`]) and [`failure`] codes.
//! - [`breaker`]: the circuit breaker.
//! - [`catalog`]: persistence, clinic choices and audited calls.

mod bindings;
pub mod breaker;
pub mod cache;
pub mod catalog;
pub mod contract;
pub mod engine;
pub mod failure;
pub mod fixture;
pub mod imports;
mod legacy;
pub mod limits;
pub mod output;
pub mod registry;
pub mod sandbox;

pub use bindings::{clinical_rules, document_parser, evidence_retriever, records, search, types};
pub use breaker::BreakerPolicy;
pub use cache::CacheStats;
pub use catalog::{CallError, CallFor, ClinicPluginView, PluginView, Plugins};
pub use contract::Kind;
pub use engine::{PluginHost, Pre};
pub use failure::{CallOutcome, PluginFailure};
pub use fixture::FixtureMemory;
pub use limits::{LimitOverrides, Limits};
pub use registry::{InstallError, InstalledPlugin, PluginInfo, Registry, ServiceInfo};
pub use sandbox::{CallContext, PatientMemory};

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.2.0";

/// Every contract version this host runs, newest first: plugins built against
/// a semver-compatible version of any of them install.
pub const WIT_VERSIONS: [&str; 2] = [WIT_VERSION, "0.1.0"];
