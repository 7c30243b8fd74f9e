//! The REST API, one file per resource; see `shared/API.md` for the contract.
//!
//! Owns: routes, request parsing, problem documents, rate limits, the
//! OpenAPI document. Uses: the domain services (`memory`, `ingest`, `fhir`),
//! `auth` and `authz`, and the stores for plain reads. The top of the stack:
//! only the composition root (`app`) uses it.
//!
//! Every route except the public operations endpoints takes a
//! [`Principal`](crate::auth::Principal) and checks casbin through
//! [`access`]. Layers add a request id (echoed or generated), a PHI-free trace
//! span (method, matched route, status: never bodies or query strings), a
//! request-duration histogram labelled by matched route, and the request id in
//! every problem document.

pub mod access;
pub mod alerts;
pub mod answers;
pub mod audit;
pub mod cds;
pub mod cds_clients;
pub mod clinics;
pub mod conversations;
pub mod documents;
pub mod error;
pub mod extract;
pub mod health;
pub mod jobs;
pub mod limits;
pub mod me;
pub mod openapi;
pub mod patients;
pub mod plugins;
pub mod policies;
mod principal;
pub mod records;
pub mod search;
pub mod state;
pub mod tokens;

pub use state::{AppState, Services};

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use error::{Error, ProblemBody, problem_response};

/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole API.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(alerts::router())
        .merge(answers::router())
        .merge(audit::router())
        .merge(cds::router())
        .merge(cds_clients::router())
        .merge(clinics::router())
        .merge(conversations::router())
        .merge(patients::router())
        .merge(documents::router(&state.settings))
        .merge(jobs::router())
        .merge(me::router())
        .merge(plugins::router())
        .merge(policies::router())
        .merge(records::router())
        .merge(search::router())
        .merge(tokens::router());
    Router::new()
        .merge(health::router())
        .merge(openapi::router())
        .nest("/api/v1", api)
        .fallback(|| async { Error::not_found("route_not_found") })
        .method_not_allowed_fallback(|| async {
            Error::problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::enforce,
        ))
        .layer(middleware::from_fn(record_metrics))
        .layer(middleware::from_fn(problem_request_id))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", |p| p.as_str())
                    .to_owned();
                let id = request
                    .extensions()
                    .get::<RequestId>()
                    .and_then(|id| id.header_value().to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                tracing::info_span!("request", method = %request.method(), route, request_id = id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::from_fn(bounded_request_id))
        .with_state(state)
}

/// The longest client request id kept; longer ones are replaced.
pub const MAX_REQUEST_ID: usize = 64;

/// Whether a client's request id may be kept (it ends up in logs and the
/// append-only audit): 1 to 64 of `A-Z a-z 0-9 - _ . :`.
pub fn acceptable_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Drops a client's `x-request-id` that is too long or has other characters,
/// so that one is generated instead.
async fn bounded_request_id(mut request: Request, next: Next) -> Response {
    let keep = request
        .headers()
        .get_all(REQUEST_ID)
        .iter()
        .map(|v| acceptable_request_id(v.as_bytes()))
        .collect::<Vec<_>>();
    if keep != [true] && !keep.is_empty() {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

/// Records `http_request_duration_seconds{method, route, status}`.
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Puts the request id into problem documents, so a client can quote it.
async fn problem_request_id(request: Request, next: Next) -> Response {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .map(str::to_owned);
    let mut response = next.run(request).await;
    let Some(ProblemBody(mut problem)) = response.extensions_mut().remove::<ProblemBody>() else {
        return response;
    };
    problem.request_id = id;
    let headers = response.headers().clone();
    let mut rebuilt = problem_response(problem);
    for (name, value) in headers.iter() {
        if name != axum::http::header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt.into_response()
}

#[cfg(test)]
mod tests {
    use super::acceptable_request_id;

    #[test]
    fn only_short_plain_request_ids_are_kept() {
        assert!(acceptable_request_id(b"req-1234_abc.def:9"));
        assert!(acceptable_request_id(&[b'a'; 64]));
        assert!(!acceptable_request_id(&[b'a'; 65]));
        assert!(!acceptable_request_id(b""));
        assert!(!acceptable_request_id(b"a b"));
        assert!(!acceptable_request_id(b"<script>"));
        assert!(!acceptable_request_id("é".as_bytes()));
    }
}
