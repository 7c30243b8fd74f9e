//! The sandbox: engine configuration, per-call stores, limits, host imports,
//! output checks and failure classification.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::{
    Deterministic, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView,
};

use super::bindings::{
    clinical_rules, config, document_parser, evidence_retriever, log, parser, retriever, rule,
    search, types,
};
use super::registry::InstalledPlugin;

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Log messages kept per call; more are counted but dropped.
const MAX_LOG_MESSAGES: usize = 64;
/// Bytes of log text kept per call.
const MAX_LOG_BYTES: usize = 16 * 1024;
/// Host searches one retriever call may make.
const MAX_SEARCHES_PER_CALL: u32 = 16;
/// Hits one host search returns at most.
const MAX_HITS_PER_SEARCH: u32 = 50;
/// Longest card summary (CDS Hooks).
const MAX_SUMMARY_CHARS: usize = 140;

/// The limits of one plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limits {
    /// Fuel units (roughly wasm instructions): the deterministic budget.
    pub fuel: u64,
    /// Linear memory cap in bytes; growing past it traps.
    pub memory_bytes: usize,
    /// Wall-clock deadline in milliseconds: the backstop.
    pub deadline_ms: u64,
    /// Largest input handed to a plugin, in bytes; larger inputs are refused
    /// before the call.
    pub max_input_bytes: usize,
    /// Largest output accepted from a plugin, in bytes of text.
    pub max_output_bytes: usize,
}

/// A clinic's overrides of the limits; each must stay within the host's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// Fuel per call.
    pub fuel: Option<u64>,
    /// Memory cap in bytes.
    pub memory_bytes: Option<usize>,
    /// Deadline in milliseconds.
    pub deadline_ms: Option<u64>,
    /// Input cap in bytes.
    pub max_input_bytes: Option<usize>,
    /// Output cap in bytes.
    pub max_output_bytes: Option<usize>,
}

impl Limits {
    /// These limits with `overrides` applied, or the name of the first
    /// override outside `1..=self` (the host's limits are the ceiling).
    pub fn with(&self, overrides: &LimitOverrides) -> Result<Limits, &'static str> {
        fn pick<T: Copy + PartialOrd + From<u8>>(
            ceiling: T,
            wanted: Option<T>,
            name: &'static str,
        ) -> Result<T, &'static str> {
            match wanted {
                None => Ok(ceiling),
                Some(v) if v >= T::from(1) && v <= ceiling => Ok(v),
                Some(_) => Err(name),
            }
        }
        Ok(Limits {
            fuel: pick(self.fuel, overrides.fuel, "fuel")?,
            memory_bytes: pick(self.memory_bytes, overrides.memory_bytes, "memory_bytes")?,
            deadline_ms: pick(self.deadline_ms, overrides.deadline_ms, "deadline_ms")?,
            max_input_bytes: pick(
                self.max_input_bytes,
                overrides.max_input_bytes,
                "max_input_bytes",
            )?,
            max_output_bytes: pick(
                self.max_output_bytes,
                overrides.max_output_bytes,
                "max_output_bytes",
            )?,
        })
    }
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
    /// The plugin kept failing and its circuit breaker is open.
    #[error("the plugin failed repeatedly and is paused; it will be retried later")]
    CircuitOpen,
    /// The call does not match the plugin's kind.
    #[error("the plugin is a {0}, not the kind this call needs")]
    WrongKind(&'static str),
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
            PluginFailure::CircuitOpen => "plugin_circuit_open",
            PluginFailure::WrongKind(_) => "plugin_wrong_kind",
        }
    }

    /// Whether the plugin, not its input, is at fault (what the breaker counts).
    pub fn is_plugin_fault(&self) -> bool {
        matches!(
            self,
            PluginFailure::FuelExhausted
                | PluginFailure::DeadlineExceeded
                | PluginFailure::MemoryExceeded
                | PluginFailure::Trapped(_)
                | PluginFailure::OutputTooLarge
                | PluginFailure::InvalidOutput(_)
                | PluginFailure::Internal(_)
        )
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
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallOutcome {
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Wall time of instantiate + call.
    pub elapsed: Duration,
    /// Peak linear memory in bytes.
    pub peak_memory_bytes: usize,
    /// Log messages the plugin wrote, as (level, message): kept for the author
    /// and the CLI, never written to the host's log.
    pub logs: Vec<(String, String)>,
    /// Log messages dropped past the cap.
    pub logs_dropped: usize,
    /// Chunk ids the host's search handed to a retriever during the call.
    pub chunks_seen: Vec<String>,
}

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
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    config: BTreeMap<String, String>,
    logs: Vec<(String, String)>,
    log_bytes: usize,
    logs_dropped: usize,
    search: Option<SearchFn>,
    searches: u32,
    handed_out: Vec<String>,
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

    fn all(&mut self) -> Vec<(String, String)> {
        self.config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl search::Host for CallState {
    fn search(&mut self, query: String, mode: search::SearchMode, limit: u32) -> Vec<search::Hit> {
        self.searches += 1;
        if self.searches > MAX_SEARCHES_PER_CALL {
            return Vec::new();
        }
        let Some(search) = self.search.as_mut() else {
            return Vec::new();
        };
        let hits = search(&query, mode, limit.min(MAX_HITS_PER_SEARCH));
        self.handed_out
            .extend(hits.iter().map(|h| h.chunk_id.clone()));
        hits
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
fn deterministic_wasi() -> WasiCtx {
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

/// A compiled plugin of one of the three kinds, ready to instantiate.
#[derive(Clone)]
pub(crate) enum Pre {
    /// A parser.
    Parser(parser::ParserPre<CallState>),
    /// A clinical rule.
    Rule(rule::ClinicalRulePre<CallState>),
    /// A retriever.
    Retriever(retriever::RetrieverPre<CallState>),
}

/// What `describe()` (and, for rules, `services()`) returned.
pub(crate) struct Described {
    /// The plugin's own description.
    pub info: types::PluginInfo,
    /// The CDS services of a clinical rule; empty for other kinds.
    pub services: Vec<clinical_rules::Service>,
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
    /// Builds the engine and linker and starts the epoch ticker. `limits` are
    /// the defaults and the ceiling of every clinic's overrides.
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
        // is empty. Components that import filesystem, sockets or HTTP are
        // refused at install, so those links are never reachable.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        types::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        log::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        config::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        search::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;

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

    /// The host's limits: the defaults and the ceiling.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A context with the host's limits and no settings.
    pub fn default_context(&self) -> CallContext {
        CallContext {
            limits: self.limits,
            config: BTreeMap::new(),
        }
    }

    fn store(&self, ctx: &CallContext, search: Option<SearchFn>) -> Store<CallState> {
        let state = CallState {
            wasi: deterministic_wasi(),
            table: ResourceTable::new(),
            limiter: MemoryCap {
                max: ctx.limits.memory_bytes.min(self.limits.memory_bytes),
                peak: 0,
                denied: false,
            },
            config: ctx.config.clone(),
            logs: Vec::new(),
            log_bytes: 0,
            logs_dropped: 0,
            search,
            searches: 0,
            handed_out: Vec::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        let ticks = (ctx.limits.deadline_ms / EPOCH_TICK.as_millis() as u64).max(1);
        store.set_epoch_deadline(ticks);
        let _ = store.set_fuel(ctx.limits.fuel);
        store
    }

    /// Runs `call` in a fresh store and instance and classifies the result.
    fn run<R>(
        &self,
        ctx: &CallContext,
        search: Option<SearchFn>,
        call: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<Result<R, types::PluginError>>,
    ) -> (Result<R, PluginFailure>, CallOutcome) {
        let started = Instant::now();
        let mut store = self.store(ctx, search);
        let result = match call(&mut store) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(plugin_error)) => Err(plugin_error.into()),
            Err(trap) => Err(classify(trap, &store)),
        };
        let remaining = store.get_fuel().unwrap_or(0);
        let state = store.data_mut();
        let outcome = CallOutcome {
            fuel_used: ctx.limits.fuel.saturating_sub(remaining),
            elapsed: started.elapsed(),
            peak_memory_bytes: state.limiter.peak,
            logs: std::mem::take(&mut state.logs),
            logs_dropped: state.logs_dropped,
            chunks_seen: std::mem::take(&mut state.handed_out),
        };
        (result, outcome)
    }

    /// Calls `describe()` (and `services()` for rules) on a fresh instance.
    pub(crate) fn describe(&self, pre: &Pre) -> Result<Described, PluginFailure> {
        let ctx = self.default_context();
        let (result, _) = self.run(&ctx, None, |store| {
            Ok(Ok(match pre {
                Pre::Parser(pre) => Described {
                    info: pre
                        .instantiate(&mut *store)?
                        .medmemory_plugin_document_parser()
                        .call_describe(&mut *store)?,
                    services: Vec::new(),
                },
                Pre::Rule(pre) => {
                    let instance = pre.instantiate(&mut *store)?;
                    let rules = instance.medmemory_plugin_clinical_rules();
                    Described {
                        info: rules.call_describe(&mut *store)?,
                        services: rules.call_services(&mut *store)?,
                    }
                }
                Pre::Retriever(pre) => Described {
                    info: pre
                        .instantiate(&mut *store)?
                        .medmemory_plugin_evidence_retriever()
                        .call_describe(&mut *store)?,
                    services: Vec::new(),
                },
            }))
        });
        result
    }

    /// Parses one document. Blocking: run it off the async runtime.
    pub fn parse(
        &self,
        plugin: &InstalledPlugin,
        ctx: &CallContext,
        media_type: &str,
        content: &[u8],
    ) -> (Result<document_parser::Parsed, PluginFailure>, CallOutcome) {
        let Pre::Parser(pre) = &plugin.pre else {
            return (Err(wrong_kind(&plugin.pre)), CallOutcome::default());
        };
        if content.len() > ctx.limits.max_input_bytes {
            return (Err(PluginFailure::InputTooLarge), CallOutcome::default());
        }
        let doc = document_parser::Document {
            media_type: media_type.to_owned(),
            content: content.to_vec(),
        };
        let (result, outcome) = self.run(ctx, None, |store| {
            pre.instantiate(&mut *store)?
                .medmemory_plugin_document_parser()
                .call_parse(&mut *store, &doc)
        });
        let result = result.and_then(|parsed| check_parsed(parsed, &ctx.limits, content.len()));
        (result, outcome)
    }

    /// Evaluates one CDS service. Blocking: run it off the async runtime.
    pub fn evaluate(
        &self,
        plugin: &InstalledPlugin,
        ctx: &CallContext,
        request: &clinical_rules::HookRequest,
    ) -> (
        Result<Vec<clinical_rules::Card>, PluginFailure>,
        CallOutcome,
    ) {
        let Pre::Rule(pre) = &plugin.pre else {
            return (Err(wrong_kind(&plugin.pre)), CallOutcome::default());
        };
        let input = serde_json::to_vec(request).map_or(0, |v| v.len());
        if input > ctx.limits.max_input_bytes {
            return (Err(PluginFailure::InputTooLarge), CallOutcome::default());
        }
        let (result, outcome) = self.run(ctx, None, |store| {
            pre.instantiate(&mut *store)?
                .medmemory_plugin_clinical_rules()
                .call_evaluate(&mut *store, request)
        });
        let result = result.and_then(|cards| check_cards(cards, &ctx.limits));
        (result, outcome)
    }

    /// Answers one question with the host's patient-scoped `search`.
    /// Blocking: run it off the async runtime.
    pub fn retrieve(
        &self,
        plugin: &InstalledPlugin,
        ctx: &CallContext,
        query: &evidence_retriever::Query,
        search: SearchFn,
    ) -> (
        Result<Vec<evidence_retriever::Ranked>, PluginFailure>,
        CallOutcome,
    ) {
        let Pre::Retriever(pre) = &plugin.pre else {
            return (Err(wrong_kind(&plugin.pre)), CallOutcome::default());
        };
        if query.text.len() > ctx.limits.max_input_bytes {
            return (Err(PluginFailure::InputTooLarge), CallOutcome::default());
        }
        let (result, outcome) = self.run(ctx, Some(search), |store| {
            pre.instantiate(&mut *store)?
                .medmemory_plugin_evidence_retriever()
                .call_retrieve(&mut *store, query)
        });
        let seen: HashSet<&str> = outcome.chunks_seen.iter().map(String::as_str).collect();
        let result = result.and_then(|mut ranked| {
            if let Some(bad) = ranked.iter().find(|r| !seen.contains(r.chunk_id.as_str())) {
                return Err(PluginFailure::InvalidOutput(format!(
                    "returned chunk id {:?}, which search did not hand out in this call",
                    truncate(&bad.chunk_id, 64)
                )));
            }
            if ranked.iter().any(|r| !r.score.is_finite()) {
                return Err(PluginFailure::InvalidOutput("a score is not finite".into()));
            }
            ranked.truncate(query.limit as usize);
            Ok(ranked)
        });
        (result, outcome)
    }
}

fn wrong_kind(pre: &Pre) -> PluginFailure {
    PluginFailure::WrongKind(match pre {
        Pre::Parser(_) => "parser",
        Pre::Rule(_) => "clinical-rule",
        Pre::Retriever(_) => "retriever",
    })
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
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

fn record_bytes(r: &types::ClinicalRecord) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    r.display.len()
        + r.codes
            .iter()
            .map(|c| c.system.len() + c.code.len() + opt(&c.display))
            .sum::<usize>()
        + r.details
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
        + opt(&r.status)
        + opt(&r.interpretation)
        + opt(&r.effective)
        + opt(&r.effective_end)
        + opt(&r.source_id)
        + r.value.as_ref().map_or(0, |v| opt(&v.text) + opt(&v.unit))
        + r.reference_range.as_ref().map_or(0, |v| opt(&v.text))
}

/// Enforces the parser output contract: size, and spans inside the document.
fn check_parsed(
    parsed: document_parser::Parsed,
    limits: &Limits,
    input_len: usize,
) -> Result<document_parser::Parsed, PluginFailure> {
    let text_bytes: usize = parsed
        .sections
        .iter()
        .map(|s| s.text.len() + s.title.as_ref().map_or(0, String::len))
        .sum::<usize>()
        + parsed.records.iter().map(record_bytes).sum::<usize>()
        + parsed.warnings.iter().map(String::len).sum::<usize>();
    if text_bytes > limits.max_output_bytes {
        return Err(PluginFailure::OutputTooLarge);
    }
    let spans = parsed
        .sections
        .iter()
        .map(|s| &s.source)
        .chain(parsed.records.iter().filter_map(|r| r.source.as_ref()));
    for span in spans {
        if span.start > span.end || span.end as usize > input_len {
            return Err(PluginFailure::InvalidOutput(format!(
                "span {}..{} lies outside the {input_len}-byte document",
                span.start, span.end
            )));
        }
    }
    if let Some(r) = parsed.records.iter().find(|r| r.display.trim().is_empty()) {
        return Err(PluginFailure::InvalidOutput(format!(
            "a {:?} record has an empty display",
            r.kind
        )));
    }
    Ok(parsed)
}

/// Enforces the card contract: size, summary length, ids for feedback.
fn check_cards(
    mut cards: Vec<clinical_rules::Card>,
    limits: &Limits,
) -> Result<Vec<clinical_rules::Card>, PluginFailure> {
    let bytes = serde_json::to_vec(&cards).map_or(usize::MAX, |v| v.len());
    if bytes > limits.max_output_bytes {
        return Err(PluginFailure::OutputTooLarge);
    }
    for card in &mut cards {
        let chars = card.summary.chars().count();
        if card.summary.trim().is_empty() || chars > MAX_SUMMARY_CHARS {
            return Err(PluginFailure::InvalidOutput(format!(
                "a card summary must have 1 to {MAX_SUMMARY_CHARS} characters, not {chars}"
            )));
        }
        if card.source.label.trim().is_empty() {
            return Err(PluginFailure::InvalidOutput(
                "a card source needs a label".into(),
            ));
        }
        card.uuid
            .get_or_insert_with(|| uuid::Uuid::now_v7().to_string());
        for suggestion in &mut card.suggestions {
            suggestion
                .uuid
                .get_or_insert_with(|| uuid::Uuid::now_v7().to_string());
        }
    }
    Ok(cards)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_limits() -> Limits {
        Limits {
            fuel: 1000,
            memory_bytes: 1 << 20,
            deadline_ms: 100,
            max_input_bytes: 10,
            max_output_bytes: 10,
        }
    }

    #[test]
    fn clinic_overrides_stay_under_the_host_ceiling() {
        let host = host_limits();
        let lower = LimitOverrides {
            fuel: Some(10),
            ..Default::default()
        };
        assert_eq!(host.with(&lower).unwrap().fuel, 10);
        assert_eq!(host.with(&LimitOverrides::default()).unwrap(), host);
        let higher = LimitOverrides {
            memory_bytes: Some(2 << 20),
            ..Default::default()
        };
        assert_eq!(host.with(&higher), Err("memory_bytes"));
        let zero = LimitOverrides {
            deadline_ms: Some(0),
            ..Default::default()
        };
        assert_eq!(host.with(&zero), Err("deadline_ms"));
    }

    #[test]
    fn only_plugin_faults_trip_the_breaker() {
        assert!(PluginFailure::FuelExhausted.is_plugin_fault());
        assert!(PluginFailure::Trapped("x".into()).is_plugin_fault());
        assert!(!PluginFailure::InvalidInput("x".into()).is_plugin_fault());
        assert!(!PluginFailure::InputTooLarge.is_plugin_fault());
        assert!(!PluginFailure::CircuitOpen.is_plugin_fault());
    }
}
