//! Public operations endpoints: liveness, readiness, metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::AppState;

/// Operations routes (public).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// Liveness: 200 while the process serves.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "The process serves")))]
pub async fn health() -> &'static str {
    "ok"
}

/// The result of one readiness check.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// database, identity_provider, migrations, vector_store, vector_index,
    /// model or plugins.
    #[schema(value_type = String)]
    pub name: &'static str,
    /// Whether it is usable.
    pub ok: bool,
    /// Why not, when it is not (never patient data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The readiness report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Whether every check passed.
    pub ready: bool,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The names of the failed checks.
    #[schema(value_type = Vec<String>)]
    pub failed: Vec<&'static str>,
    /// What is reported but not required to serve: `generator` (the answer
    /// model; `/ask` answers 503 until it is usable).
    pub optional: Vec<Check>,
}

/// Logs why a check failed and returns the public wording.
fn hidden(check: &'static str, error: impl std::fmt::Display) -> String {
    tracing::warn!(check, error = %error, "readiness check failed");
    "unavailable; see the server log".to_owned()
}

fn check(name: &'static str, result: Result<(), String>) -> Check {
    Check {
        name,
        ok: result.is_ok(),
        detail: result.err(),
    }
}

/// Readiness: 200 only when the database, migrations, vector store, model and
/// plugin registry are all usable; otherwise 503 naming what failed.
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "Not ready; `failed` names the checks", body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> Response {
    // The report is public: it names what failed and how to fix it, never
    // an error text, a path or a clinic id; those go to the log.
    let database = state.db.ping().await.map_err(|e| hidden("database", e));
    let migrations = match state.db.migrations_current().await {
        Ok(true) => Ok(()),
        Ok(false) => Err("pending migrations; run `medmemory migrate`".to_owned()),
        Err(e) => Err(hidden("migrations", e)),
    };
    let vectors = state
        .memory
        .vectors()
        .ping()
        .await
        .map_err(|e| hidden("vector_store", e));
    let model = match (state.models.embedder(), state.models.error()) {
        (Some(_), _) => Ok(()),
        (None, Some(e)) => Err(hidden("model", e)),
        (None, None) => Err("loading".to_owned()),
    };
    let plugins = if state.plugins.registry().list().is_empty() {
        Err("no plugin installed; build them with `cargo xtask plugins`".to_owned())
    } else {
        Ok(())
    };
    let index = if state.ingest.index_problems().is_empty() {
        Ok(())
    } else {
        // Each problem, with its clinic, was logged by the check.
        Err(
            "vectors were built with another model or layout; run `medmemory reindex` (the log names the clinics)"
                .to_owned(),
        )
    };
    let identity = match state.auth.oidc() {
        None => Ok(()),
        Some(oidc) if oidc.is_ready() => Ok(()),
        Some(_) => Err("the identity provider's keys are not loaded yet".to_owned()),
    };
    // Reported, not required: search and ingestion work without it.
    let generator = match state.rag.generator() {
        g if g.ready() => Ok(()),
        crate::rag::Generator::Disabled => Err("disabled (generator = \"none\")".to_owned()),
        _ => match state.models.llm_error() {
            Some(e) => Err(hidden("generator", e)),
            None => Err("loading".to_owned()),
        },
    };
    let checks = vec![
        check("database", database),
        check("identity_provider", identity),
        check("migrations", migrations),
        check("vector_store", vectors),
        check("vector_index", index),
        check("model", model),
        check("plugins", plugins),
    ];
    let failed: Vec<&'static str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready: failed.is_empty(),
        checks,
        failed,
        optional: vec![check("generator", generator)],
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
