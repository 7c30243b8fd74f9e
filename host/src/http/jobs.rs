//! `/clinics/{clinic}/jobs/{job}`: ingestion job status.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json as JsonResponse, Router};

use super::access;
use super::error::{Error, Result};
use crate::app::AppState;
use crate::auth::Principal;
use crate::db::jobs::Job;

/// Job routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/clinics/{clinic}/jobs/{job}", get(read))
}

/// Reads a job: status, progress, error code.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/jobs/{job}", tag = "documents",
    params(("clinic" = String, Path), ("job" = String, Path)),
    responses((status = 200, body = Job), (status = 404, description = "not found")))]
pub async fn read(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, job)): Path<(String, String)>,
) -> Result<JsonResponse<Job>> {
    let clinic = access::clinic(&state, &who, &clinic, "job", "read").await?;
    let id = access::parse_id(&job, "job_not_found")?;
    let job = state
        .db
        .job(clinic, id)
        .await?
        .ok_or_else(|| Error::not_found("job_not_found"))?;
    Ok(JsonResponse(job))
}
