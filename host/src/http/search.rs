//! `POST .../patients/{patient}/search`: the patient's memory, best first.
//! Authorize, parse, call [`Memory::search`](crate::memory::Memory::search),
//! render.

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::access;
use super::error::{Error, Result};
use super::extract::Json;
use super::records::time_bound;
use crate::auth::Principal;
use crate::authz::Permission;
use crate::db::records::RecordKind;
use crate::memory::{Evidence, Mode, Query, Scope};
use crate::retrieval::RetrieveError;

/// Search routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/clinics/{clinic}/patients/{patient}/search", post(search))
}

/// A search request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The question or phrase, 1 to 2000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    pub query: String,
    /// How many hits, 1 to 50; default 10.
    #[schema(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
    /// Search mode; default hybrid. Searches the memory directly, without
    /// a retriever plugin.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// A retriever plugin (by name) to choose the evidence. Without one (and
    /// without `mode` or filters), the clinic's chosen retriever is used if
    /// it has chosen one.
    #[serde(default)]
    pub retriever: Option<String>,
    /// Only chunks stating records of these kinds (`note` is document text).
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    /// Only chunks effective at or after this date or date-time.
    #[serde(default)]
    pub since: Option<String>,
    /// Only chunks effective before this date or date-time.
    #[serde(default)]
    pub until: Option<String>,
}

/// Search results, best first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResults {
    /// The hits.
    pub items: Vec<Evidence>,
    /// The retriever plugin that chose them; null for a direct search.
    pub retriever: Option<String>,
}

/// Searches one patient's memory.
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/patients/{patient}/search", tag = "memory", request_body = SearchRequest,
    params(("clinic" = String, Path), ("patient" = String, Path)),
    responses((status = 200, body = SearchResults), (status = 404, description = "not found"), (status = 422, description = "invalid"),
        (status = 502, description = "the retriever plugin failed"), (status = 503, description = "model not loaded")))]
pub async fn search(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
    Json(request): Json<SearchRequest>,
) -> Result<JsonResponse<SearchResults>> {
    let patient =
        access::patient(&state, &who, &clinic, &patient, Permission::MEMORY_SEARCH).await?;
    let query = request.query.trim().to_owned();
    if query.is_empty() || query.chars().count() > 2000 {
        return Err(Error::invalid(
            "invalid_query",
            "query must be 1 to 2000 characters",
        ));
    }
    let limit = request.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(Error::invalid(
            "invalid_limit",
            "limit must be between 1 and 50",
        ));
    }
    let mut kinds = Vec::new();
    for raw in request.kinds.unwrap_or_default() {
        let kind = RecordKind::parse(&raw).ok_or_else(|| {
            Error::invalid(
                "invalid_filter",
                format!("kinds must be a list of {}", RecordKind::list()),
            )
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let direct = request.mode.is_some()
        || !kinds.is_empty()
        || request.since.is_some()
        || request.until.is_some();
    if request.retriever.is_some() && direct {
        return Err(Error::invalid(
            "invalid_search",
            "a retriever chooses its own mode and filters: give either retriever or mode/kinds/since/until",
        ));
    }
    let chosen = match &request.retriever {
        Some(name) => Some(name.clone()),
        None if !direct => state
            .db
            .clinic(patient.clinic_id)
            .await?
            .and_then(|c| c.retriever),
        None => None,
    };
    if let Some(retriever) = chosen {
        let retrieval = crate::retrieval::Request {
            clinic: patient.clinic_id,
            patient: patient.id,
            text: query,
            history: Vec::new(),
            limit: limit as usize,
            retriever: Some(retriever),
            request_id: who.request_id.clone(),
        };
        let retrieved = state
            .retrieval
            .retrieve(&retrieval)
            .await
            .map_err(retrieve_problem)?;
        return Ok(JsonResponse(SearchResults {
            items: retrieved.found.into_iter().map(|f| f.evidence).collect(),
            retriever: Some(retrieved.retriever),
        }));
    }
    let query = Query {
        text: query,
        mode: request.mode.unwrap_or_default(),
        limit: limit as usize,
        scope: Scope {
            kinds,
            since: time_bound(request.since.as_deref(), "since")?,
            until: time_bound(request.until.as_deref(), "until")?,
        },
    };
    let items = state
        .memory
        .search(patient.clinic_id, patient.id, &query)
        .await
        .map_err(|e| retrieve_problem(e.into()))?;
    Ok(JsonResponse(SearchResults {
        items,
        retriever: None,
    }))
}

/// The problem for a failed retrieval (`/search` and `/ask`).
pub(super) fn retrieve_problem(e: RetrieveError) -> Error {
    match e {
        RetrieveError::UnknownRetriever => Error::invalid(
            "unknown_retriever",
            "retriever must name a retriever plugin enabled in this clinic (or hybrid)",
        ),
        RetrieveError::ModelUnavailable => Error::problem(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "model_unavailable",
            "the embedding model is not loaded yet",
        ),
        RetrieveError::Plugin(_, code) => Error::problem(
            axum::http::StatusCode::BAD_GATEWAY,
            "retriever_failed",
            format!("the retriever plugin failed ({code}); try another retriever"),
        ),
        RetrieveError::Internal(e) => Error::Internal(e),
    }
}
