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
use bytes::Bytes;
use serde::Serialize;

use super::AppState;
use super::access::{self, List, PageQuery};
use super::error::{Error, Result};
use super::extract::{Query, RawBody, close_after_refusal};
use crate::auth::Principal;
use crate::authz::Permission;
use crate::config::Settings;
use crate::db::documents::{Document, NewDocument};
use crate::db::jobs::Job;
use crate::ingest::sniff;

/// Document routes; uploads are limited to `max_upload_bytes`.
pub fn router(settings: &Settings) -> Router<AppState> {
    Router::new()
        .route(
            "/clinics/{clinic}/patients/{patient}/documents",
            get(list).post(upload).layer((
                DefaultBodyLimit::max(settings.max_upload_bytes),
                axum::middleware::map_response(close_after_refusal),
            )),
        )
        .route(
            "/clinics/{clinic}/patients/{patient}/documents/{document}",
            get(read).delete(remove),
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
    /// True when the patient already had these exact bytes: the existing
    /// document and its latest job are returned (200) and nothing is queued.
    pub duplicate: bool,
}

/// Uploads a document: a raw body with any `Content-Type`, or a
/// `multipart/form-data` body whose `file` field holds it.
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/patients/{patient}/documents", tag = "documents",
    params(("clinic" = String, Path), ("patient" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the document's bytes"),
    responses((status = 202, body = Accepted), (status = 200, description = "the patient already has these bytes", body = Accepted), (status = 400, description = "empty"), (status = 413, description = "too large"),
        (status = 415, description = "no parser handles the sniffed media type")))]
pub async fn upload(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<(StatusCode, JsonResponse<Accepted>)> {
    let patient =
        access::patient(&state, &who, &clinic, &patient, Permission::DOCUMENT_CREATE).await?;
    let bytes = body.read().await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (bytes, declared) = if content_type.starts_with("multipart/form-data") {
        multipart_file(content_type, bytes).await?
    } else {
        (
            bytes,
            Some(content_type.chars().take(200).collect::<String>()),
        )
    };
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
    let declared = declared.filter(|d| !d.is_empty());
    let sha256 = state
        .blobs
        .put(patient.clinic_id, patient.id, &bytes)
        .await
        .map_err(anyhow::Error::from)?;
    let new = NewDocument {
        media_type: media_type.to_owned(),
        declared_media_type: declared,
        size_bytes: bytes.len() as i64,
        sha256,
    };
    let created = state
        .db
        .create_document(patient.clinic_id, patient.id, &new)
        .await?;
    // A duplicate whose earlier job failed was queued again: work it.
    if created.job.status == "queued" {
        state.ingest.wake();
    }
    let status = if created.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    tracing::info!(clinic = %created.document.clinic_id, document = %created.document.id, job = %created.job.id,
        media_type, duplicate = created.duplicate, "document accepted");
    Ok((
        status,
        JsonResponse(Accepted {
            document: created.document,
            job: created.job,
            duplicate: created.duplicate,
        }),
    ))
}

/// The first file of a `multipart/form-data` body (the field named `file`, or
/// else the first field with a file name) and its declared type.
async fn multipart_file(content_type: &str, body: Bytes) -> Result<(Bytes, Option<String>)> {
    let malformed = || {
        Error::bad_request(
            "malformed_multipart",
            "the multipart body could not be read",
        )
    };
    let boundary = multer::parse_boundary(content_type).map_err(|_| malformed())?;
    let stream = futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    while let Some(field) = multipart.next_field().await.map_err(|_| malformed())? {
        if field.name() == Some("file") || field.file_name().is_some() {
            let declared = field
                .content_type()
                .map(|m| m.essence_str().chars().take(200).collect());
            let bytes = field.bytes().await.map_err(|_| malformed())?;
            return Ok((bytes, declared));
        }
    }
    Err(Error::bad_request(
        "missing_file",
        "the multipart body has no file field",
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
    let patient =
        access::patient(&state, &who, &clinic, &patient, Permission::DOCUMENT_READ).await?;
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
    let patient = access::patient(state, who, clinic, patient, Permission::DOCUMENT_READ).await?;
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
        .get(document.clinic_id, document.patient_id, &document.sha256)
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

/// Deletes a document with its records, chunks, vectors and bytes.
#[utoipa::path(delete, path = "/api/v1/clinics/{clinic}/patients/{patient}/documents/{document}", tag = "documents",
    params(("clinic" = String, Path), ("patient" = String, Path), ("document" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 404, description = "not found")))]
pub async fn remove(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient, document)): Path<(String, String, String)>,
) -> Result<StatusCode> {
    let patient =
        access::patient(&state, &who, &clinic, &patient, Permission::DOCUMENT_DELETE).await?;
    let id = access::parse_id(&document, "document_not_found")?;
    // SQL first: once it commits the document is gone for every reader; the
    // vectors and bytes left by a crash right after are swept at start.
    let document = state
        .forget
        .delete_document(patient.clinic_id, patient.id, id)
        .await?
        .ok_or_else(|| Error::not_found("document_not_found"))?;
    tracing::info!(clinic = %patient.clinic_id, document = %document.id, "document deleted");
    Ok(StatusCode::NO_CONTENT)
}
