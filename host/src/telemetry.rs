//! Logs and metrics, set up once per process.
//!
//! Logs are JSON lines with the request id and never carry bodies, query strings
//! or any other patient data; handlers log ids and codes only. Metrics are
//! Prometheus text, rendered on `/metrics`.
//!
//! Foundation: uses nothing of MedMemory's own.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Dependencies whose debug logs can carry data (query plans with search
/// text, row contents); capped at `warn` unless the filter names them.
const DATA_BEARING: [&str; 4] = ["lance", "datafusion", "hyper", "reqwest"];

/// The filter actually installed: the configured one, with the data-bearing
/// dependencies capped unless it names them explicitly.
pub fn effective_filter(configured: &str) -> String {
    let mut filter = configured.to_owned();
    for target in DATA_BEARING {
        if !configured.contains(target) {
            filter.push_str(&format!(",{target}=warn"));
        }
    }
    filter
}

/// Installs the JSON log subscriber writing to stderr (stdout is reserved for
/// command output such as tokens). Safe to call more than once.
pub fn init_logs(filter: &str) {
    let filter =
        EnvFilter::try_new(effective_filter(filter)).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (e.g. in tests): render an empty one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}
