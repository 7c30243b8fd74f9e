//! `POST .../patients/{patient}/search`: the patient's memory, best first.
//!
//! The query is embedded with the same model as the chunks; the vector store
//! returns chunk ids of this patient only, and their text is read back from SQL
//! (the source of truth) scoped again by clinic and patient.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::access;
use super::error::{Error, Result};
use super::extract::Json;
use crate::app::AppState;
use crate::auth::Principal;

/// Search routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/clinics/{clinic}/patients/{patient}/search", post(search))
}

/// How to search.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Semantic similarity of embeddings.
    #[default]
    Vector,
    /// Full-text (BM25) only.
    Keyword,
    /// Both, fused.
    Hybrid,
}

/// A search request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The question or phrase, 1 to 2000 characters.
    pub query: String,
    /// How many hits, 1 to 50; default 10.
    pub limit: Option<u32>,
    /// Search mode; default vector.
    #[serde(default)]
    pub mode: Mode,
}

/// One hit with its citation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Hit {
    /// The chunk's id.
    pub chunk_id: Uuid,
    /// The chunk's text.
    pub text: String,
    /// Similarity, higher is better.
    pub score: f32,
    /// The document it came from.
    pub document_id: Uuid,
    /// The section heading, if any.
    pub section: Option<String>,
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
    if !matches!(request.mode, Mode::Vector) {
        return Err(Error::invalid(
            "unsupported_search_mode",
            "this server supports mode `vector`",
        ));
    }
    let embedder = state.embedder().ok_or_else(|| {
        Error::problem(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "model_unavailable",
            "the embedding model is not loaded yet",
        )
    })?;
    let vector = tokio::task::spawn_blocking(move || embedder.embed(&[query.as_str()]))
        .await
        .map_err(anyhow::Error::from)?
        .map_err(anyhow::Error::from)?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("the model returned no vector"))?;
    let hits = state
        .vectors
        .search_patient(patient.clinic_id, patient.id, &vector, limit as usize)
        .await
        .map_err(anyhow::Error::from)?;
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
                section: chunk.section,
                span_start: chunk.span_start,
                span_end: chunk.span_end,
            })
        })
        .collect();
    Ok(JsonResponse(SearchResults { items }))
}
