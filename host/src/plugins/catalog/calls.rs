//! Audited calls: each goes through the plugin's circuit breaker, runs off
//! the async runtime, and is recorded (digests of input and output, fuel,
//! time, memory, outcome) before its result is handed back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{CallError, CallFor, Plugins, sha256_hex};
use crate::db::new_id;
use crate::db::plugins::PluginCall;
use crate::plugins::bindings::{clinical_rules, document_parser, evidence_retriever};
use crate::plugins::breaker::Admission;
use crate::plugins::failure::{CallOutcome, PluginFailure};
use crate::plugins::registry::InstalledPlugin;
use crate::plugins::sandbox::{CallContext, PatientMemory};

/// How long past its deadline a call may run before the watchdog gives up
/// on it.
const WATCHDOG_GRACE: Duration = Duration::from_secs(2);

fn deadline(ctx: &CallContext) -> Duration {
    Duration::from_millis(ctx.limits.deadline_ms)
}

impl Plugins {
    /// Runs `call` through the breaker, off the async runtime, under a
    /// wall-clock watchdog, then audits it.
    async fn call<T, F>(
        &self,
        plugin: &Arc<InstalledPlugin>,
        who: &CallFor,
        operation: &'static str,
        (input_sha256, deadline): (String, Duration),
        call: F,
    ) -> Result<(T, CallOutcome), CallError>
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&InstalledPlugin) -> (Result<T, PluginFailure>, CallOutcome) + Send + 'static,
    {
        let breaker = self.breaker_for(who.clinic, &plugin.info.id);
        let admission = breaker.admit(Instant::now());
        let (result, outcome) = if admission == Admission::Refuse {
            (Err(PluginFailure::CircuitOpen), CallOutcome::default())
        } else {
            let p = plugin.clone();
            let started = Instant::now();
            let task = tokio::task::spawn_blocking(move || call(&p));
            // The epoch deadline stops guest code, and no host import blocks;
            // should a call still outlive its deadline (a host bug), the
            // caller moves on and the thread is left to finish on its own.
            match tokio::time::timeout(deadline + WATCHDOG_GRACE, task).await {
                Ok(done) => {
                    done.map_err(|e| PluginFailure::Trapped(format!("host task failed: {e}")))?
                }
                Err(_) => {
                    tracing::error!(plugin = %plugin.info.name, operation, "plugin call outlived its deadline; abandoned");
                    metrics::counter!("plugin_calls_abandoned_total").increment(1);
                    let outcome = CallOutcome {
                        elapsed: started.elapsed(),
                        ..CallOutcome::default()
                    };
                    (Err(PluginFailure::DeadlineExceeded), outcome)
                }
            }
        };
        if admission != Admission::Refuse {
            let fault = result
                .as_ref()
                .err()
                .is_some_and(PluginFailure::is_plugin_fault);
            breaker.record(self.breaker, fault, Instant::now());
            if fault && breaker.is_open(Instant::now()) {
                tracing::warn!(plugin = %plugin.info.name, clinic = ?who.clinic, "plugin circuit breaker open for this clinic");
            }
        }
        let code = match &result {
            Ok(_) => "ok",
            Err(f) => f.code(),
        };
        let name = plugin.info.name.clone();
        metrics::counter!("plugin_calls_total", "plugin" => name.clone(), "operation" => operation, "outcome" => code)
            .increment(1);
        metrics::histogram!("plugin_call_duration_seconds", "plugin" => name.clone(), "operation" => operation)
            .record(outcome.elapsed.as_secs_f64());
        metrics::counter!("plugin_fuel_total", "plugin" => name).increment(outcome.fuel_used);
        let output_sha256 = result
            .as_ref()
            .ok()
            .and_then(|v| serde_json::to_vec(v).ok())
            .map(|bytes| sha256_hex(&bytes));
        let record = PluginCall {
            id: new_id(),
            plugin_id: plugin.info.id.clone(),
            clinic_id: who.clinic,
            patient_id: who.patient,
            operation,
            input_sha256,
            output_sha256,
            fuel: outcome.fuel_used as i64,
            duration_us: outcome.elapsed.as_micros() as i64,
            peak_memory_bytes: outcome.peak_memory_bytes as i64,
            outcome: code.to_owned(),
            request_id: who.request_id.clone(),
        };
        self.db.record_plugin_call(&record).await.map_err(|e| {
            tracing::error!(error = %e, "could not audit a plugin call");
            CallError::Audit(e.to_string())
        })?;
        let value = result?;
        Ok((value, outcome))
    }

    /// Parses a document with `plugin`, audited.
    pub async fn parse(
        &self,
        plugin: &Arc<InstalledPlugin>,
        ctx: CallContext,
        who: &CallFor,
        media_type: &str,
        content: Arc<Vec<u8>>,
    ) -> Result<(document_parser::Parsed, CallOutcome), CallError> {
        let host = self.registry.host().clone();
        let media_type = media_type.to_owned();
        let digest = sha256_hex(&content);
        self.call(plugin, who, "parse", (digest, deadline(&ctx)), move |p| {
            host.parse(&p.pre, &ctx, &media_type, &content)
        })
        .await
    }

    /// Evaluates a CDS service with `plugin`, audited.
    pub async fn evaluate(
        &self,
        plugin: &Arc<InstalledPlugin>,
        ctx: CallContext,
        who: &CallFor,
        request: clinical_rules::HookRequest,
    ) -> Result<(clinical_rules::Evaluation, CallOutcome), CallError> {
        let host = self.registry.host().clone();
        let digest = sha256_hex(&serde_json::to_vec(&request).unwrap_or_default());
        self.call(
            plugin,
            who,
            "evaluate",
            (digest, deadline(&ctx)),
            move |p| host.evaluate(&p.pre, &ctx, &request),
        )
        .await
    }

    /// Asks a retriever, audited; `memory` is already scoped to the patient.
    pub async fn retrieve(
        &self,
        plugin: &Arc<InstalledPlugin>,
        ctx: CallContext,
        who: &CallFor,
        query: evidence_retriever::Query,
        memory: Box<dyn PatientMemory>,
    ) -> Result<(Vec<evidence_retriever::Ranked>, CallOutcome), CallError> {
        let host = self.registry.host().clone();
        let digest = sha256_hex(&serde_json::to_vec(&query).unwrap_or_default());
        self.call(
            plugin,
            who,
            "retrieve",
            (digest, deadline(&ctx)),
            move |p| host.retrieve(&p.pre, &ctx, &query, memory),
        )
        .await
    }
}
