//! The plugin host: runs untrusted WebAssembly components under a strict sandbox.
//!
//! One [`wasmtime::Engine`] is shared by every plugin. Each call gets a fresh
//! store and instance (no state survives between calls or patients), a fuel
//! budget (deterministic), an epoch deadline (wall-clock backstop) and a memory
//! cap. The WASI context is empty: no preopened directories, no network, no
//! environment, no arguments. A trap or an exhausted limit fails that call only.
//!
//! Engine choice: `concurrency_support(false)`. Measured on this machine kind,
//! it makes synchronous component calls 3-5x cheaper, and no plugin world uses
//! component-model async yet.

mod bindings;
mod engine;
pub mod registry;

pub use engine::{CallOutcome, Limits, PluginFailure, PluginHost};
pub use registry::{InstallError, InstalledPlugin, PluginInfo, Registry};

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.0";
