//! `/clinics/{clinic}/jobs/{job}`: ingestion job status, and its progress as
//! server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use futures::Stream;
use uuid::Uuid;

use super::AppState;
use super::access;
use super::error::{Error, Result};
use crate::auth::Principal;
use crate::authz::Permission;
use crate::db::jobs::Job;

/// How often the event stream looks at the job. The job lives in the
/// database, so any instance can serve the stream of a job another runs.
const POLL: Duration = Duration::from_millis(200);
/// A stream ends after this long even if the job has not settled.
const MAX_STREAM: Duration = Duration::from_secs(30 * 60);

/// Job routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clinics/{clinic}/jobs/{job}", get(read))
        .route("/clinics/{clinic}/jobs/{job}/events", get(events))
}

async fn find(state: &AppState, who: &Principal, clinic: &str, job: &str) -> Result<Job> {
    let clinic = access::clinic(state, who, clinic, Permission::JOB_READ).await?;
    let id = access::parse_id(job, "job_not_found")?;
    state
        .db
        .job(clinic, id)
        .await?
        .ok_or_else(|| Error::not_found("job_not_found"))
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
    Ok(JsonResponse(find(&state, &who, &clinic, &job).await?))
}

fn settled(job: &Job) -> bool {
    matches!(job.status.as_str(), "succeeded" | "failed")
}

fn event(job: &Job) -> Event {
    Event::default()
        .event(if settled(job) { "done" } else { "progress" })
        .json_data(job)
        .unwrap_or_else(|_| Event::default().event("error"))
}

/// Streams a job's progress: a `progress` event (the job as JSON) at once and
/// at every change of status, progress or attempt, then one `done` event when
/// it succeeds or fails, and the stream ends.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/jobs/{job}/events", tag = "documents",
    params(("clinic" = String, Path), ("job" = String, Path)),
    responses((status = 200, description = "text/event-stream of `progress` and `done` events carrying the job"),
        (status = 404, description = "not found")))]
pub async fn events(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, job)): Path<(String, String)>,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let first = find(&state, &who, &clinic, &job).await?;
    let clinic: Uuid = first.clinic_id;
    let started = tokio::time::Instant::now();
    // (state, last job sent, finished)
    let stream = futures::stream::unfold(
        (state, None::<Job>, false, first),
        move |(state, last, finished, current)| async move {
            if finished {
                return None;
            }
            let mut current = current;
            loop {
                let changed = last.as_ref().is_none_or(|l| {
                    l.status != current.status
                        || l.progress != current.progress
                        || l.attempts != current.attempts
                });
                if changed || started.elapsed() > MAX_STREAM {
                    let done = settled(&current) || started.elapsed() > MAX_STREAM;
                    let sent = event(&current);
                    return Some((Ok(sent), (state, Some(current.clone()), done, current)));
                }
                tokio::time::sleep(POLL).await;
                match state.db.job(clinic, current.id).await {
                    Ok(Some(job)) => current = job,
                    // Deleted with its document, or the database is gone: end.
                    _ => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
