//! The per-call sandbox: the store state of one call, its empty and
//! deterministic WASI context, and the memory cap.

use std::collections::BTreeMap;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{
    Deterministic, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView,
};

use super::bindings::search;
use super::limits::Limits;

/// The host side of a retriever's `search` import: already scoped to one
/// clinic and patient by whoever builds it.
pub type SearchFn = Box<dyn FnMut(&str, search::SearchMode, u32) -> Vec<search::Hit> + Send>;

/// What a call runs with besides its input.
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
    pub(super) search: Option<SearchFn>,
    pub(super) searches: u32,
    pub(super) handed_out: Vec<String>,
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
