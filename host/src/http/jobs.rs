//! `/clinics/{clinic}/jobs/{job}`: ingestion job status, and its progress as
//! server-sent events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use futures::Stream;
use uuid::Uuid;

use super::AppState;
use super::access;
use super::error::{Error, Result};
use super::principal::bearer;
use crate::auth::Principal;
use crate::authz::{Decision, Domain, Permission};
use crate::db::jobs::Job;

/// How often the event stream looks at the job. The job lives in the
/// database, so any instance can serve the stream of a job another runs.
const POLL: Duration = Duration::from_secs(1);
/// A stream ends after this long even if the job has not settled; the client
/// reconnects if it still cares.
const MAX_STREAM: Duration = Duration::from_secs(10 * 60);
/// How often an open stream checks that its credential still holds (not
/// revoked or expired, the role still granted).
const RECHECK: Duration = Duration::from_secs(10);
/// Event streams one caller may hold open at once.
pub const MAX_STREAMS_PER_CALLER: usize = 4;

/// Open event streams per caller (casbin subject), on this instance.
#[derive(Debug, Default)]
pub struct StreamSlots(Mutex<HashMap<String, usize>>);

/// One open stream; gives its slot back when the stream is dropped.
pub(super) struct StreamSlot {
    slots: Arc<StreamSlots>,
    subject: String,
}

impl StreamSlots {
    pub(super) fn take(self: &Arc<Self>, subject: &str) -> Option<StreamSlot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(subject.to_owned()).or_default();
        if *count >= MAX_STREAMS_PER_CALLER {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            slots: self.clone(),
            subject: subject.to_owned(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.subject) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.subject);
            }
        }
    }
}

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
/// it succeeds or fails, and the stream ends. A caller holds at most four
/// streams at once; a stream ends after ten minutes, or when its credential
/// is revoked or loses the permission.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/jobs/{job}/events", tag = "documents",
    params(("clinic" = String, Path), ("job" = String, Path)),
    responses((status = 200, description = "text/event-stream of `progress` and `done` events carrying the job"),
        (status = 404, description = "not found"),
        (status = 429, description = "too many open streams for this caller")))]
pub async fn events(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, job)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let first = find(&state, &who, &clinic, &job).await?;
    let slot = state.streams.take(&who.subject).ok_or_else(|| {
        Error::problem(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!("at most {MAX_STREAMS_PER_CALLER} open event streams per caller"),
        )
    })?;
    let secret = bearer(&headers)?.to_owned();
    let now = tokio::time::Instant::now();
    let watch = Watch {
        state,
        secret,
        clinic: first.clinic_id,
        started: now,
        checked: now,
        last: None,
        current: first,
        finished: false,
        _slot: slot,
    };
    let stream = futures::stream::unfold(watch, |mut watch| async move {
        let sent = watch.next().await?;
        Some((Ok(sent), watch))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// One open stream: what it last sent and what it checks.
struct Watch {
    state: AppState,
    secret: String,
    clinic: Uuid,
    started: tokio::time::Instant,
    checked: tokio::time::Instant,
    last: Option<Job>,
    current: Job,
    finished: bool,
    /// Held for as long as the stream lives.
    _slot: StreamSlot,
}

impl Watch {
    /// The next event, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Event> {
        if self.finished {
            return None;
        }
        loop {
            let changed = self.last.as_ref().is_none_or(|l| {
                l.status != self.current.status
                    || l.progress != self.current.progress
                    || l.attempts != self.current.attempts
            });
            let expired = self.started.elapsed() > MAX_STREAM;
            if changed || expired {
                self.finished = settled(&self.current) || expired;
                self.last = Some(self.current.clone());
                return Some(event(&self.current));
            }
            tokio::time::sleep(POLL).await;
            if self.checked.elapsed() >= RECHECK {
                self.checked = tokio::time::Instant::now();
                if !still_allowed(&self.state, &self.secret, self.clinic).await {
                    return None;
                }
            }
            match self.state.db.job(self.clinic, self.current.id).await {
                Ok(Some(job)) => self.current = job,
                // Deleted with its document, or the database is gone: end.
                _ => return None,
            }
        }
    }
}

/// Whether the credential that opened a stream still reads the clinic's jobs.
async fn still_allowed(state: &AppState, secret: &str, clinic: Uuid) -> bool {
    match state.auth.authenticate(secret).await {
        Ok(principal) => {
            state.authz.check(
                &principal.subject,
                Domain::Clinic(clinic),
                Permission::JOB_READ,
            ) == Decision::Allow
        }
        Err(_) => false,
    }
}
