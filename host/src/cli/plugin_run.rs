//! `medmemory plugin run`: the plugin author's loop. Runs a component on one
//! input exactly as the server would (same engine, limits and checks), with no
//! server or database, and reports what the call cost.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::plugins::{
    CallContext, CallOutcome, FixtureMemory, Kind, LimitOverrides, Limits, PluginFailure,
    PluginHost, PluginInfo, Registry, clinical_rules, evidence_retriever,
};

/// The input of a retriever run: a query, and the chunks `search` searches
/// and the records `records` reads.
#[derive(Debug, Deserialize)]
struct RetrieverInput {
    query: evidence_retriever::Query,
    #[serde(flatten)]
    memory: FixtureMemory,
}

/// What `plugin run` prints on stdout.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// The plugin, as `describe()` told.
    pub plugin: PluginInfo,
    /// The output, when the call succeeded.
    pub output: Option<serde_json::Value>,
    /// The failure code and message, when it did not.
    pub error: Option<(String, String)>,
    /// Fuel used by the (last) call.
    pub fuel: u64,
    /// Wall time of the (last) call in milliseconds.
    pub elapsed_ms: f64,
    /// Peak linear memory in bytes.
    pub peak_memory_bytes: usize,
    /// What the plugin logged.
    pub logs: Vec<(String, String)>,
    /// Log messages past the cap.
    pub logs_dropped: usize,
    /// Compiling the component, in milliseconds.
    pub compile_ms: f64,
    /// Loading it from the compile cache, in milliseconds.
    pub cached_load_ms: f64,
    /// Median and 99th percentile call time over `repeat` calls, in milliseconds.
    pub call_ms: Percentiles,
}

/// Median and p99 of a series.
#[derive(Debug, Serialize)]
pub struct Percentiles {
    /// Calls measured.
    pub n: usize,
    /// 50th percentile.
    pub median: f64,
    /// 99th percentile.
    pub p99: f64,
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Percentiles {
        n: samples.len(),
        median: at(0.5),
        p99: at(0.99),
    }
}

type Call = Box<dyn Fn() -> (Result<serde_json::Value, PluginFailure>, CallOutcome)>;

fn json<T: Serialize>(
    result: Result<T, PluginFailure>,
) -> Result<serde_json::Value, PluginFailure> {
    result.map(|v| serde_json::to_value(v).unwrap_or_default())
}

/// Runs `file` on `input` `repeat` times and prints a [`RunReport`] as JSON.
pub fn run(
    settings: &Settings,
    file: &Path,
    input: &Path,
    media_type: Option<&str>,
    config: BTreeMap<String, String>,
    overrides: &LimitOverrides,
    repeat: usize,
) -> anyhow::Result<()> {
    let component = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let input = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let host = Arc::new(
        PluginHost::new(Limits::from_settings(settings)).map_err(|e| anyhow::anyhow!("{e:#}"))?,
    );
    let limits = host
        .limits()
        .with(overrides)
        .map_err(|name| anyhow::anyhow!("--{name} is above the host's limit or zero"))?;
    // A private folder (0700, unpredictable name) for the compiled artefacts:
    // a shared temporary folder must not hand us someone else's code.
    let private = tempfile::Builder::new()
        .prefix("medmemory-plugin-run-")
        .tempdir()
        .context("creating a private temporary folder")?;
    let cache = private.path().to_path_buf();
    let started = Instant::now();
    let plugin = Registry::new(host.clone(), cache.clone())
        .install(&component)
        .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
    let compile = started.elapsed();
    let started = Instant::now();
    Registry::new(host.clone(), cache.clone())
        .install(&component)
        .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
    let cached_load = started.elapsed();
    drop(private);

    let ctx = Arc::new(CallContext { limits, config });
    let call: Call = match plugin.info.kind {
        Kind::Parser => {
            let media_type = media_type
                .map(str::to_owned)
                .unwrap_or_else(|| crate::ingest::sniff::media_type(&input).to_owned());
            let (host, plugin, ctx) = (host.clone(), plugin.clone(), ctx.clone());
            Box::new(move || {
                let (r, o) = host.parse(&plugin.pre, &ctx, &media_type, &input);
                (json(r), o)
            })
        }
        Kind::ClinicalRule => {
            let request: clinical_rules::HookRequest =
                serde_json::from_slice(&input).context("the input is not a JSON hook request")?;
            let (host, plugin, ctx) = (host.clone(), plugin.clone(), ctx.clone());
            Box::new(move || {
                let (r, o) = host.evaluate(&plugin.pre, &ctx, &request);
                (json(r), o)
            })
        }
        Kind::Retriever => {
            let RetrieverInput { query, memory } = serde_json::from_slice(&input).context(
                "the input is not {\"query\": {...}, \"chunks\": [...], \"records\": [...]}",
            )?;
            let (host, plugin, ctx) = (host.clone(), plugin.clone(), ctx.clone());
            Box::new(move || {
                let (r, o) = host.retrieve(&plugin.pre, &ctx, &query, Box::new(memory.clone()));
                (json(r), o)
            })
        }
    };
    let mut times = Vec::with_capacity(repeat.max(1));
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let (result, outcome) = call();
        times.push(outcome.elapsed);
        last = Some((result, outcome));
    }
    let (result, outcome) = last.expect("at least one call");
    let report = RunReport {
        plugin: plugin.info.clone(),
        error: result
            .as_ref()
            .err()
            .map(|f| (f.code().to_owned(), f.to_string())),
        output: result.ok(),
        fuel: outcome.fuel_used,
        elapsed_ms: outcome.elapsed.as_secs_f64() * 1000.0,
        peak_memory_bytes: outcome.peak_memory_bytes,
        logs: outcome.logs,
        logs_dropped: outcome.logs_dropped,
        compile_ms: compile.as_secs_f64() * 1000.0,
        cached_load_ms: cached_load.as_secs_f64() * 1000.0,
        call_ms: percentiles(times),
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "{} {}: {} | fuel {} | {:.2} ms (median {:.3} ms, p99 {:.3} ms over {}) | peak memory {} KiB | compile {:.1} ms, cached load {:.2} ms",
        report.plugin.name,
        report.plugin.version,
        report.error.as_ref().map_or("ok", |e| e.0.as_str()),
        report.fuel,
        report.elapsed_ms,
        report.call_ms.median,
        report.call_ms.p99,
        report.call_ms.n,
        report.peak_memory_bytes / 1024,
        report.compile_ms,
        report.cached_load_ms,
    );
    if report.error.is_some() {
        anyhow::bail!("the call failed");
    }
    Ok(())
}
