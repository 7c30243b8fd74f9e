//! The REST API, one file per resource; see `shared/API.md` for the contract.
//!
//! Every route except the public operations endpoints takes a
//! [`Principal`](crate::auth::Principal) and checks casbin through
//! [`access`]. Layers add a request id (echoed or generated), a PHI-free trace
//! span (method, matched route, status: never bodies or query strings), a
//! request-duration histogram labelled by matched route, and the request id in
//! every problem document.

pub mod access;
pub mod audit;
pub mod clinics;
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
pub mod records;
pub mod search;
pub mod tokens;

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

use crate::app::AppState;
use error::{Error, ProblemBody, problem_response};

/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole API.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(audit::router())
        .merge(clinics::router())
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
        .with_state(state)
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
