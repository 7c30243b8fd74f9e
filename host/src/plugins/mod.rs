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
//! - [`contract`]: which world and contract version a component implements.
//! - [`registry`]: vetting, compiling (with a cache) and describing components.
//! - [`engine`]: the sandbox and the calls of each kind.
//! - [`breaker`]: the circuit breaker.
//! - [`manager`]: persistence, clinic choices and audited calls.

mod bindings;
pub mod breaker;
pub mod contract;
pub mod engine;
pub mod manager;
pub mod registry;
pub mod run;

pub use bindings::{clinical_rules, document_parser, evidence_retriever, search, types};
pub use breaker::BreakerPolicy;
pub use contract::Kind;
pub use engine::{
    CallContext, CallOutcome, LimitOverrides, Limits, PluginFailure, PluginHost, SearchFn,
};
pub use manager::{CallError, CallFor, ClinicPluginView, PluginView, Plugins};
pub use registry::{InstallError, InstalledPlugin, PluginInfo, Registry, ServiceInfo};

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.0";
