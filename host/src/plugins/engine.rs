//! The sandbox: engine configuration, per-call stores, limits and failure
//! classification.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{ParserPlugin, config, log, parser, types};
use super::registry::InstalledPlugin;

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Log messages kept per call; more are counted but dropped.
const MAX_LOG_MESSAGES: usize = 64;
/// Bytes of log text kept per call.
const MAX_LOG_BYTES: usize = 16 * 1024;

/// The limits of one plugin call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Fuel units (roughly wasm instructions).
    pub fuel: u64,
    /// Linear memory cap in bytes.
    pub memory_bytes: usize,
    /// Wall-clock deadline.
    pub deadline: Duration,
    /// Largest input handed to a plugin, in bytes.
    pub max_input_bytes: usize,
    /// Largest output accepted from a plugin, in bytes of text.
    pub max_output_bytes: usize,
}

/// Why a plugin call failed. Each has a stable code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginFailure {
    /// The fuel budget ran out.
    #[error("the plugin ran out of fuel")]
    FuelExhausted,
    /// The wall-clock deadline passed.
    #[error("the plugin exceeded its deadline")]
    DeadlineExceeded,
    /// The plugin tried to grow memory past its cap.
    #[error("the plugin exceeded its memory limit")]
    MemoryExceeded,
    /// The plugin trapped (panic, unreachable, stack overflow, ...).
    #[error("the plugin trapped: {0}")]
    Trapped(String),
    /// The input is larger than plugins may receive.
    #[error("the input is larger than the plugin input limit")]
    InputTooLarge,
    /// The plugin returned more than the output limit.
    #[error("the plugin output exceeded the limit")]
    OutputTooLarge,
    /// The plugin returned output that breaks the contract.
    #[error("the plugin returned invalid output: {0}")]
    InvalidOutput(String),
    /// The plugin rejected the input as malformed.
    #[error("the plugin rejected the input: {0}")]
    InvalidInput(String),
    /// The plugin does not support this input.
    #[error("the plugin does not support this input: {0}")]
    Unsupported(String),
    /// The plugin reported an internal error or exhausted its own resources.
    #[error("the plugin failed: {0}")]
    Internal(String),
}

impl PluginFailure {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            PluginFailure::FuelExhausted => "plugin_fuel_exhausted",
            PluginFailure::DeadlineExceeded => "plugin_deadline_exceeded",
            PluginFailure::MemoryExceeded => "plugin_memory_exceeded",
            PluginFailure::Trapped(_) => "plugin_trapped",
            PluginFailure::InputTooLarge => "plugin_input_too_large",
            PluginFailure::OutputTooLarge => "plugin_output_too_large",
            PluginFailure::InvalidOutput(_) => "plugin_invalid_output",
            PluginFailure::InvalidInput(_) => "plugin_invalid_input",
            PluginFailure::Unsupported(_) => "plugin_unsupported",
            PluginFailure::Internal(_) => "plugin_internal",
        }
    }
}

impl From<types::PluginError> for PluginFailure {
    fn from(e: types::PluginError) -> Self {
        match e {
            types::PluginError::InvalidInput(m) => PluginFailure::InvalidInput(m),
            types::PluginError::Unsupported(m) => PluginFailure::Unsupported(m),
            types::PluginError::ResourceExhausted(m) | types::PluginError::Internal(m) => {
                PluginFailure::Internal(m)
            }
        }
    }
}

/// What a call cost, for metrics, audit and the plugin author.
#[derive(Debug, Clone, Default)]
pub struct CallOutcome {
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Wall time of instantiate + call.
    pub elapsed: Duration,
    /// Peak linear memory in bytes.
    pub peak_memory_bytes: usize,
    /// Log messages the plugin wrote (kept for the author, never logged by the host).
    pub logs: Vec<(String, String)>,
    /// Log messages dropped past the cap.
    pub logs_dropped: usize,
}

/// Per-call store state: the empty WASI context, limits and host-import state.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    config: HashMap<String, String>,
    logs: Vec<(String, String)>,
    log_bytes: usize,
    logs_dropped: usize,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for CallState {}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) {
        let fits =
            self.logs.len() < MAX_LOG_MESSAGES && self.log_bytes + message.len() <= MAX_LOG_BYTES;
        metrics::counter!("plugin_log_messages_total").increment(1);
        if !fits {
            self.logs_dropped += 1;
            return;
        }
        self.log_bytes += message.len();
        self.logs
            .push((format!("{level:?}").to_lowercase(), message));
    }
}

impl config::Host for CallState {
    fn get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }
}

/// A memory limiter that remembers that it said no, so the failure is reported
/// as `plugin_memory_exceeded` rather than as a generic trap.
struct MemoryCap {
    max: usize,
    peak: usize,
    denied: bool,
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

/// The shared engine, linker and epoch ticker.
pub struct PluginHost {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<CallState>,
    limits: Limits,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl PluginHost {
    /// Builds the engine and linker and starts the epoch ticker.
    pub fn new(limits: Limits) -> wasmtime::Result<PluginHost> {
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .concurrency_support(false)
            .max_wasm_stack(1024 * 1024);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_memories(256)
            .total_tables(256)
            .max_memory_size(limits.memory_bytes);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        // Rust's std links a handful of WASI interfaces; the context behind them
        // is empty. Components that import filesystem or sockets are refused at
        // install, so those links are never reachable.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        ParserPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let stop = ticker_stop.clone();
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        Ok(PluginHost {
            engine,
            linker,
            limits,
            ticker_stop,
        })
    }

    /// The default limits of a call.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn store(&self, limits: &Limits) -> Store<CallState> {
        let state = CallState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: MemoryCap {
                max: limits.memory_bytes,
                peak: 0,
                denied: false,
            },
            config: HashMap::new(),
            logs: Vec::new(),
            log_bytes: 0,
            logs_dropped: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        let ticks = (limits.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        // Fuel is set by the caller right before the call it budgets.
        let _ = store.set_fuel(limits.fuel);
        store
    }

    /// Calls `describe()` on a freshly instantiated plugin.
    pub(crate) fn describe(
        &self,
        pre: &super::bindings::ParserPluginPre<CallState>,
    ) -> Result<types::PluginInfo, PluginFailure> {
        let limits = self.limits;
        let mut store = self.store(&limits);
        let result = pre
            .instantiate(&mut store)
            .and_then(|plugin| plugin.medmemory_plugin_parser().call_describe(&mut store));
        result.map_err(|e| classify(e, &store))
    }

    /// Parses one document with `plugin`. Blocking: run it off the async runtime.
    pub fn parse(
        &self,
        plugin: &InstalledPlugin,
        media_type: &str,
        content: &[u8],
    ) -> (Result<parser::Parsed, PluginFailure>, CallOutcome) {
        let limits = self.limits;
        let started = Instant::now();
        if content.len() > limits.max_input_bytes {
            return (Err(PluginFailure::InputTooLarge), CallOutcome::default());
        }
        let mut store = self.store(&limits);
        let doc = parser::Document {
            media_type: media_type.to_owned(),
            content: content.to_vec(),
        };
        let result = plugin.pre.instantiate(&mut store).and_then(|instance| {
            instance
                .medmemory_plugin_parser()
                .call_parse(&mut store, &doc)
        });
        let result = match result {
            Ok(Ok(parsed)) => check_output(parsed, &limits, content.len()),
            Ok(Err(plugin_error)) => Err(plugin_error.into()),
            Err(trap) => Err(classify(trap, &store)),
        };
        let outcome = outcome(&mut store, &limits, started);
        let status = match &result {
            Ok(_) => "ok",
            Err(f) => f.code(),
        };
        metrics::counter!("plugin_calls_total", "plugin" => plugin.info.name.clone(), "outcome" => status)
            .increment(1);
        metrics::histogram!("plugin_call_duration_seconds", "plugin" => plugin.info.name.clone())
            .record(outcome.elapsed.as_secs_f64());
        (result, outcome)
    }
}

fn outcome(store: &mut Store<CallState>, limits: &Limits, started: Instant) -> CallOutcome {
    let remaining = store.get_fuel().unwrap_or(0);
    let state = store.data_mut();
    CallOutcome {
        fuel_used: limits.fuel.saturating_sub(remaining),
        elapsed: started.elapsed(),
        peak_memory_bytes: state.limiter.peak,
        logs: std::mem::take(&mut state.logs),
        logs_dropped: state.logs_dropped,
    }
}

/// Maps a wasmtime error to the failure a caller sees.
fn classify(error: wasmtime::Error, store: &Store<CallState>) -> PluginFailure {
    if store.data().limiter.denied {
        return PluginFailure::MemoryExceeded;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PluginFailure::FuelExhausted,
        Some(Trap::Interrupt) => PluginFailure::DeadlineExceeded,
        Some(trap) => PluginFailure::Trapped(trap.to_string()),
        None => PluginFailure::Trapped(format!("{error}")),
    }
}

/// Enforces the output contract: size, and spans inside the document.
fn check_output(
    parsed: parser::Parsed,
    limits: &Limits,
    input_len: usize,
) -> Result<parser::Parsed, PluginFailure> {
    let text_bytes: usize = parsed
        .sections
        .iter()
        .map(|s| s.text.len() + s.title.as_ref().map_or(0, String::len))
        .sum::<usize>()
        + parsed
            .records
            .iter()
            .map(|r| r.display.len())
            .sum::<usize>();
    if text_bytes > limits.max_output_bytes {
        return Err(PluginFailure::OutputTooLarge);
    }
    for section in &parsed.sections {
        let span = &section.source;
        if span.start > span.end || span.end as usize > input_len {
            return Err(PluginFailure::InvalidOutput(
                "a section span lies outside the document".into(),
            ));
        }
    }
    Ok(parsed)
}
