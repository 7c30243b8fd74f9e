//! The engine: one wasmtime engine and linker for every plugin, the epoch
//! ticker, and the calls of each kind (a fresh store and instance per call,
//! classified into a [`PluginFailure`] or a result checked by [`super::output`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use super::bindings::{
    clinical_rules, config, document_parser, evidence_retriever, log, parser, records, retriever,
    rule, search, types, v0_1,
};
use super::failure::{CallOutcome, PluginFailure};
use super::legacy;
use super::limits::Limits;
use super::output::{check_evaluation, check_parsed};
use super::sandbox::{CallContext, CallState, MemoryCap, PatientMemory, deterministic_wasi};

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A compiled plugin of one of the three kinds, ready to instantiate: built
/// against the current contract, or against 0.1.
#[derive(Clone)]
pub enum Pre {
    /// A parser.
    Parser(parser::ParserPre<CallState>),
    /// A clinical rule.
    Rule(rule::ClinicalRulePre<CallState>),
    /// A retriever.
    Retriever(retriever::RetrieverPre<CallState>),
    /// A parser built against 0.1.
    ParserV0_1(v0_1::parser::ParserPre<CallState>),
    /// A clinical rule built against 0.1.
    RuleV0_1(v0_1::rule::ClinicalRulePre<CallState>),
    /// A retriever built against 0.1.
    RetrieverV0_1(v0_1::retriever::RetrieverPre<CallState>),
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
        super::imports::clocks::shadow_monotonic_clock(&mut linker)?;
        types::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        log::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        config::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        search::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        records::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        v0_1::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        v0_1::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        v0_1::config::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        v0_1::search::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;

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

    fn store(&self, ctx: &CallContext, memory: Option<Box<dyn PatientMemory>>) -> Store<CallState> {
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
            memory,
            lookups: 0,
            chunks_handed_out: Vec::new(),
            records_handed_out: Vec::new(),
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
        memory: Option<Box<dyn PatientMemory>>,
        call: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<Result<R, types::PluginError>>,
    ) -> (Result<R, PluginFailure>, CallOutcome) {
        let started = Instant::now();
        let mut store = self.store(ctx, memory);
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
            chunks_seen: std::mem::take(&mut state.chunks_handed_out),
            records_seen: std::mem::take(&mut state.records_handed_out),
            ignored: 0,
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
                Pre::ParserV0_1(pre) => Described {
                    info: legacy::same(
                        &pre.instantiate(&mut *store)?
                            .medmemory_plugin_document_parser()
                            .call_describe(&mut *store)?,
                    ),
                    services: Vec::new(),
                },
                Pre::RuleV0_1(pre) => {
                    let instance = pre.instantiate(&mut *store)?;
                    let rules = instance.medmemory_plugin_clinical_rules();
                    Described {
                        info: legacy::same(&rules.call_describe(&mut *store)?),
                        services: legacy::services(rules.call_services(&mut *store)?),
                    }
                }
                Pre::RetrieverV0_1(pre) => Described {
                    info: legacy::same(
                        &pre.instantiate(&mut *store)?
                            .medmemory_plugin_evidence_retriever()
                            .call_describe(&mut *store)?,
                    ),
                    services: Vec::new(),
                },
            }))
        });
        result
    }

    /// Parses one document. Blocking: run it off the async runtime.
    pub fn parse(
        &self,
        pre: &Pre,
        ctx: &CallContext,
        media_type: &str,
        content: &[u8],
    ) -> (Result<document_parser::Parsed, PluginFailure>, CallOutcome) {
        if !matches!(pre, Pre::Parser(_) | Pre::ParserV0_1(_)) {
            return (Err(wrong_kind(pre)), CallOutcome::default());
        }
        if content.len() > ctx.limits.max_input_bytes {
            return (Err(PluginFailure::InputTooLarge), CallOutcome::default());
        }
        let doc = document_parser::Document {
            media_type: media_type.to_owned(),
            content: content.to_vec(),
        };
        let (result, outcome) = self.run(ctx, None, |store| match pre {
            Pre::ParserV0_1(pre) => {
                let doc = v0_1::document_parser::Document {
                    media_type: doc.media_type.clone(),
                    content: doc.content.clone(),
                };
                let parsed = pre
                    .instantiate(&mut *store)?
                    .medmemory_plugin_document_parser()
                    .call_parse(&mut *store, &doc)?;
                Ok(parsed.map(|p| legacy::same(&p)).map_err(legacy::error))
            }
            Pre::Parser(pre) => pre
                .instantiate(&mut *store)?
                .medmemory_plugin_document_parser()
                .call_parse(&mut *store, &doc),
            _ => unreachable!("checked above"),
        });
        let result = result.and_then(|parsed| check_parsed(parsed, &ctx.limits, content.len()));
        (result, outcome)
    }

    /// Evaluates one CDS service: the cards that pass the host's checks
    /// (the others are dropped and counted in `ignored`). Blocking: run it
    /// off the async runtime.
    pub fn evaluate(
        &self,
        pre: &Pre,
        ctx: &CallContext,
        request: &clinical_rules::HookRequest,
    ) -> (
        Result<clinical_rules::Evaluation, PluginFailure>,
        CallOutcome,
    ) {
        if !matches!(pre, Pre::Rule(_) | Pre::RuleV0_1(_)) {
            return (Err(wrong_kind(pre)), CallOutcome::default());
        }
        let input = serde_json::to_vec(request).map_or(0, |v| v.len());
        if input > ctx.limits.max_input_bytes {
            return (Err(PluginFailure::InputTooLarge), CallOutcome::default());
        }
        let (result, mut outcome) = self.run(ctx, None, |store| match pre {
            Pre::RuleV0_1(pre) => {
                let cards = pre
                    .instantiate(&mut *store)?
                    .medmemory_plugin_clinical_rules()
                    .call_evaluate(&mut *store, &legacy::hook_request(request))?;
                Ok(cards.map(legacy::evaluation).map_err(legacy::error))
            }
            Pre::Rule(pre) => pre
                .instantiate(&mut *store)?
                .medmemory_plugin_clinical_rules()
                .call_evaluate(&mut *store, request),
            _ => unreachable!("checked above"),
        });
        let result = result.and_then(|evaluation| {
            let (evaluation, dropped) = check_evaluation(evaluation, &ctx.limits)?;
            outcome.ignored = dropped;
            Ok(evaluation)
        });
        (result, outcome)
    }

    /// Answers one question with the host's patient-scoped `search` and
    /// `records`. Results that point at anything those did not hand out in
    /// this call, or with a non-finite score, are ignored (and counted in
    /// `ignored`); at most `query.limit` are kept. Blocking: run it off the
    /// async runtime.
    pub fn retrieve(
        &self,
        pre: &Pre,
        ctx: &CallContext,
        query: &evidence_retriever::Query,
        memory: Box<dyn PatientMemory>,
    ) -> (
        Result<Vec<evidence_retriever::Ranked>, PluginFailure>,
        CallOutcome,
    ) {
        if !matches!(pre, Pre::Retriever(_) | Pre::RetrieverV0_1(_)) {
            return (Err(wrong_kind(pre)), CallOutcome::default());
        }
        let input = query.text.len() + query.history.iter().map(String::len).sum::<usize>();
        if input > ctx.limits.max_input_bytes {
            return (Err(PluginFailure::InputTooLarge), CallOutcome::default());
        }
        let (result, mut outcome) = self.run(ctx, Some(memory), |store| match pre {
            Pre::RetrieverV0_1(pre) => {
                let ranked = pre
                    .instantiate(&mut *store)?
                    .medmemory_plugin_evidence_retriever()
                    .call_retrieve(&mut *store, &legacy::query(query))?;
                Ok(ranked.map(legacy::ranked).map_err(legacy::error))
            }
            Pre::Retriever(pre) => pre
                .instantiate(&mut *store)?
                .medmemory_plugin_evidence_retriever()
                .call_retrieve(&mut *store, query),
            _ => unreachable!("checked above"),
        });
        let chunks: HashSet<&str> = outcome.chunks_seen.iter().map(String::as_str).collect();
        let records: HashSet<&str> = outcome.records_seen.iter().map(String::as_str).collect();
        let mut ignored = 0;
        let result = result.map(|ranked| {
            let mut kept = Vec::new();
            let mut seen = HashSet::new();
            for r in ranked {
                let (handed_out, key) = match &r.evidence {
                    evidence_retriever::Evidence::Chunk(id) => {
                        (chunks.contains(id.as_str()), (false, id.clone()))
                    }
                    evidence_retriever::Evidence::Record(id) => {
                        (records.contains(id.as_str()), (true, id.clone()))
                    }
                };
                if !handed_out || !r.score.is_finite() {
                    ignored += 1;
                } else if kept.len() < query.limit as usize && seen.insert(key) {
                    kept.push(r);
                }
            }
            kept
        });
        if ignored > 0 {
            metrics::counter!("retriever_results_ignored_total").increment(ignored as u64);
        }
        outcome.ignored = ignored;
        (result, outcome)
    }
}

fn wrong_kind(pre: &Pre) -> PluginFailure {
    PluginFailure::WrongKind(match pre {
        Pre::Parser(_) | Pre::ParserV0_1(_) => "parser",
        Pre::Rule(_) | Pre::RuleV0_1(_) => "clinical-rule",
        Pre::Retriever(_) | Pre::RetrieverV0_1(_) => "retriever",
    })
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
