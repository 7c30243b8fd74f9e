//! `/clinics/{clinic}/patients/{patient}/documents`: uploads and their bytes.
//!
//! An upload is accepted only if its bytes sniff as a media type that an
//! installed parser handles; the client's `Content-Type` is kept for diagnosis
//! but never trusted. Accepting stores the bytes and queues an ingestion job in
//! one transaction and answers 202 at once; the job does the work.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use serde::Serialize;

use super::access::{self, List, PageQuery};
use super::error::{Error, Result};
use super::extract::{Query, RawBody};
use crate::app::AppState;
use crate::auth::Principal;
use crate::config::Settings;
use crate::db::documents::{Document, NewDocument};
use crate::db::jobs::Job;
use crate::ingest::sniff;

/// Document routes; uploads are limited to `max_upload_bytes`.
pub fn router(settings: &Settings) -> Router<AppState> {
    Router::new()
        .route(
            "/clinics/{clinic}/patients/{patient}/documents",
            get(list)
                .post(upload)
                .layer(DefaultBodyLimit::max(settings.max_upload_bytes)),
        )
        .route(
            "/clinics/{clinic}/patients/{patient}/documents/{document}",
            get(read),
        )
        .route(
            "/clinics/{clinic}/patients/{patient}/documents/{document}/content",
            get(content),
        )
}

/// An accepted upload.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The stored document.
    pub document: Document,
    /// Its ingestion job; poll `/clinics/{clinic}/jobs/{job}`.
    pub job: Job,
}

/// Uploads a document (raw body with any `Content-Type`).
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/patients/{patient}/documents", tag = "documents",
    params(("clinic" = String, Path), ("patient" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the document's bytes"),
    responses((status = 202, body = Accepted), (status = 400, description = "empty"), (status = 413, description = "too large"),
        (status = 415, description = "no parser handles the sniffed media type")))]
pub async fn upload(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(bytes): RawBody,
) -> Result<(StatusCode, JsonResponse<Accepted>)> {
    let patient = access::patient(&state, &who, &clinic, &patient, "document", "create").await?;
    if bytes.is_empty() {
        return Err(Error::bad_request(
            "empty_document",
            "the upload has no bytes",
        ));
    }
    let media_type = sniff::media_type(&bytes);
    if state
        .plugins
        .parser_for(patient.clinic_id, media_type)
        .await?
        .is_none()
    {
        return Err(Error::problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "the content sniffs as {media_type}, which no parser enabled for this clinic handles"
            ),
        ));
    }
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect::<String>());
    let sha256 = state.blobs.put(&bytes).await.map_err(anyhow::Error::from)?;
    let new = NewDocument {
        media_type: media_type.to_owned(),
        declared_media_type: declared,
        size_bytes: bytes.len() as i64,
        sha256,
    };
    let (document, job) = state
        .db
        .create_document(patient.clinic_id, patient.id, &new)
        .await?;
    state.worker.wake();
    tracing::info!(clinic = %document.clinic_id, document = %document.id, job = %job.id, media_type, "document accepted");
    Ok((
        StatusCode::ACCEPTED,
        JsonResponse(Accepted { document, job }),
    ))
}

/// Lists a patient's documents.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/patients/{patient}/documents", tag = "documents",
    params(("clinic" = String, Path), ("patient" = String, Path), PageQuery), responses((status = 200, body = List<Document>)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Result<JsonResponse<List<Document>>> {
    let patient = access::patient(&state, &who, &clinic, &patient, "document", "read").await?;
    let page = query.page()?;
    let documents = state
        .db
        .documents(patient.clinic_id, patient.id, page.after, page.limit + 1)
        .await?;
    Ok(JsonResponse(List::from_overfetch(documents, page, |d| {
        d.id
    })))
}

async fn find(
    state: &AppState,
    who: &Principal,
    path: &(String, String, String),
) -> Result<Document> {
    let (clinic, patient, document) = path;
    let patient = access::patient(state, who, clinic, patient, "document", "read").await?;
    let id = access::parse_id(document, "document_not_found")?;
    state
        .db
        .document(patient.clinic_id, patient.id, id)
        .await?
        .ok_or_else(|| Error::not_found("document_not_found"))
}

/// Reads a document's metadata.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/patients/{patient}/documents/{document}", tag = "documents",
    params(("clinic" = String, Path), ("patient" = String, Path), ("document" = String, Path)),
    responses((status = 200, body = Document), (status = 404, description = "not found")))]
pub async fn read(
    State(state): State<AppState>,
    who: Principal,
    Path(path): Path<(String, String, String)>,
) -> Result<JsonResponse<Document>> {
    Ok(JsonResponse(find(&state, &who, &path).await?))
}

/// Downloads a document's bytes as an attachment.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/patients/{patient}/documents/{document}/content", tag = "documents",
    params(("clinic" = String, Path), ("patient" = String, Path), ("document" = String, Path)),
    responses((status = 200, description = "the bytes"), (status = 404, description = "not found")))]
pub async fn content(
    State(state): State<AppState>,
    who: Principal,
    Path(path): Path<(String, String, String)>,
) -> Result<Response> {
    let document = find(&state, &who, &path).await?;
    let bytes = state
        .blobs
        .get(&document.sha256)
        .await
        .map_err(anyhow::Error::from)?;
    Ok((
        [
            (header::CONTENT_TYPE, document.media_type.clone()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", document.id),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        bytes,
    )
        .into_response())
}
