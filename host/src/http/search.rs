//! `POST .../patients/{patient}/search`: the patient's memory, best first.
//!
//! `hybrid` (the default) runs a vector search (the query embedded with the
//! same model as the chunks) and a BM25 full-text search, both prefiltered to
//! this patient and the requested kinds and dates, and fuses them with
//! reciprocal rank fusion; `vector` and `keyword` run one of them. The stores
//! return chunk ids only; text and citations are read back from SQL (the source
//! of truth), scoped again by clinic and patient.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::access;
use super::error::{Error, Result};
use super::extract::Json;
use super::records::time_bound;
use crate::app::AppState;
use crate::auth::Principal;
use crate::db::records::KINDS;
use crate::memory::{Scope, fusion};

/// Search routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/clinics/{clinic}/patients/{patient}/search", post(search))
}

/// How to search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Vector and full-text search fused by reciprocal rank.
    #[default]
    Hybrid,
    /// Semantic similarity of embeddings only.
    Vector,
    /// Full-text (BM25) only.
    Keyword,
}

/// A search request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The question or phrase, 1 to 2000 characters.
    pub query: String,
    /// How many hits, 1 to 50; default 10.
    pub limit: Option<u32>,
    /// Search mode; default hybrid.
    #[serde(default)]
    pub mode: Mode,
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

/// One hit with its citation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Hit {
    /// The chunk's id.
    pub chunk_id: Uuid,
    /// The chunk's text.
    pub text: String,
    /// Relevance, higher is better: cosine similarity (vector), BM25
    /// (keyword) or the fused reciprocal-rank score (hybrid).
    pub score: f32,
    /// The document it came from (null for a record posted directly).
    pub document_id: Option<Uuid>,
    /// The record it states, if any.
    pub record_id: Option<Uuid>,
    /// The record kind it states, or `note` for document text.
    pub kind: String,
    /// The section heading, if any.
    pub section: Option<String>,
    /// The 1-based page of the source, for paged formats.
    pub page: Option<i64>,
    /// First byte of the source span in the document.
    pub span_start: i64,
    /// End of the source span (exclusive).
    pub span_end: i64,
}

/// Search results, best first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResults {
    /// The hits.
    pub items: Vec<Hit>,
}

/// Searches one patient's memory.
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/patients/{patient}/search", tag = "memory", request_body = SearchRequest,
    params(("clinic" = String, Path), ("patient" = String, Path)),
    responses((status = 200, body = SearchResults), (status = 404, description = "not found"), (status = 422, description = "invalid"),
        (status = 503, description = "model not loaded")))]
pub async fn search(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
    Json(request): Json<SearchRequest>,
) -> Result<JsonResponse<SearchResults>> {
    let patient = access::patient(&state, &who, &clinic, &patient, "memory", "search").await?;
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
    let kinds = request.kinds.unwrap_or_default();
    if kinds.len() > KINDS.len() || kinds.iter().any(|k| !KINDS.contains(&k.as_str())) {
        return Err(Error::invalid(
            "invalid_filter",
            format!("kinds must be a list of {}", KINDS.join(", ")),
        ));
    }
    let scope = Scope {
        kinds,
        since: time_bound(request.since.as_deref(), "since")?,
        until: time_bound(request.until.as_deref(), "until")?,
    };
    let limit = limit as usize;
    // Each side fetches more than asked, so fusion has candidates to agree on.
    let depth = if request.mode == Mode::Hybrid {
        (limit * 3).max(20)
    } else {
        limit
    };
    let vector_hits = if request.mode == Mode::Keyword {
        Vec::new()
    } else {
        let embedder = state.embedder().ok_or_else(|| {
            Error::problem(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "model_unavailable",
                "the embedding model is not loaded yet",
            )
        })?;
        let text = query.clone();
        let vector = tokio::task::spawn_blocking(move || embedder.embed(&[text.as_str()]))
            .await
            .map_err(anyhow::Error::from)?
            .map_err(anyhow::Error::from)?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the model returned no vector"))?;
        state
            .vectors
            .vector_search(patient.clinic_id, patient.id, &scope, &vector, depth)
            .await
            .map_err(anyhow::Error::from)?
    };
    let keyword_hits = if request.mode == Mode::Vector {
        Vec::new()
    } else {
        state
            .vectors
            .keyword_search(patient.clinic_id, patient.id, &scope, &query, depth)
            .await
            .map_err(anyhow::Error::from)?
    };
    let hits = match request.mode {
        Mode::Vector => vector_hits,
        Mode::Keyword => keyword_hits,
        Mode::Hybrid => fusion::reciprocal_rank(&[&vector_hits, &keyword_hits], limit),
    };
    let ids: Vec<Uuid> = hits.iter().map(|h| h.chunk_id).collect();
    let mut chunks: HashMap<Uuid, _> = state
        .db
        .patient_chunks(patient.clinic_id, patient.id, &ids)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    // Vectors without a committed chunk (an interrupted job) are not evidence.
    let items = hits
        .into_iter()
        .filter_map(|hit| {
            let chunk = chunks.remove(&hit.chunk_id)?;
            Some(Hit {
                chunk_id: chunk.id,
                text: chunk.text,
                score: hit.score,
                document_id: chunk.document_id,
                record_id: chunk.record_id,
                kind: chunk.kind,
                section: chunk.section,
                page: chunk.page,
                span_start: chunk.span_start,
                span_end: chunk.span_end,
            })
        })
        .collect();
    Ok(JsonResponse(SearchResults { items }))
}
