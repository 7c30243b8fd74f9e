//! The per-call sandbox: the store state of one call, its empty and
//! deterministic WASI context, and the memory cap.

use std::collections::BTreeMap;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{
    Deterministic, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView,
};

use super::bindings::{records, search};
use super::limits::Limits;

/// The host side of a retriever's `search` and `records` imports, already
/// scoped to one clinic and patient by whoever builds it. Called on the
/// plugin's worker thread, never on the async runtime.
pub trait PatientMemory: Send {
    /// One search, at most `request.limit` hits (already capped).
    fn search(&mut self, request: &search::SearchRequest) -> Vec<search::Hit>;
    /// Records, newest first, at most `request.limit` (already capped).
    fn records(&mut self, request: &records::RecordsRequest) -> Vec<records::StoredRecord>;
}

/// What a call runs with besides its input.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The limits in force.
    pub limits: Limits,
    /// The clinic's settings for this plugin (the `config` import).
    pub config: BTreeMap<String, String>,
}

/// Per-call store state: the empty WASI context, limits and host-import state.
pub struct CallState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: MemoryCap,
    pub(super) config: BTreeMap<String, String>,
    pub(super) logs: Vec<(String, String)>,
    pub(super) log_bytes: usize,
    pub(super) logs_dropped: usize,
    pub(super) memory: Option<Box<dyn PatientMemory>>,
    /// Host searches and record reads made in this call.
    pub(super) lookups: u32,
    /// Chunk ids handed to the plugin in this call.
    pub(super) chunks_handed_out: Vec<String>,
    /// Record ids handed to the plugin in this call.
    pub(super) records_handed_out: Vec<String>,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Clocks stopped at the Unix epoch: plugins get time only as `now` in a
/// request, so the same input always gives the same output.
struct Frozen;

impl HostWallClock for Frozen {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for Frozen {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The WASI context of every call: no arguments, environment, files or
/// sockets, stdin closed, stdout and stderr discarded, frozen clocks and fixed
/// "random" bytes (std's hash maps only need a seed, not secrecy).
pub(super) fn deterministic_wasi() -> WasiCtx {
    WasiCtx::builder()
        .wall_clock(Frozen)
        .monotonic_clock(Frozen)
        .secure_random(Deterministic::new(b"medmemory-plugin".to_vec()))
        .insecure_random(Deterministic::new(b"medmemory-plugin".to_vec()))
        .insecure_random_seed(0x6d65_646d_656d_6f72_7970_6c75_6769_6e00)
        .build()
}

/// A memory limiter that remembers that it said no, so the failure is reported
/// as `plugin_memory_exceeded` rather than as a generic trap. Refusing a grow
/// returns an error, which traps at once (the `trap_on_grow_failure`
/// behaviour): the guest never sees `memory.grow = -1` and limps on.
pub(super) struct MemoryCap {
    pub(super) max: usize,
    pub(super) peak: usize,
    pub(super) denied: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.denied = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded",
                self.max
            ));
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
