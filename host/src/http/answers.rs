//! `POST .../patients/{patient}/ask`: authorize, parse, call
//! [`Rag`](crate::rag::Rag), render as JSON or as server-sent events. The
//! conversations it keeps are read in [`conversations`](super::conversations).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::AppState;
use super::access;
use super::error::{Error, Result};
use super::extract::Json;
use crate::auth::Principal;
use crate::authz::Permission;
use crate::rag::{Answer, AskError, Event, Question};

/// Answer routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/clinics/{clinic}/patients/{patient}/ask", post(ask))
}

/// A question about one patient.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// The question, 1 to 2000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    pub question: String,
    /// A conversation id: the question follows up on it.
    #[serde(default)]
    pub conversation: Option<String>,
    /// The retriever plugin (by name) that chooses the evidence; default:
    /// the clinic's choice, else `hybrid`.
    #[serde(default)]
    pub retriever: Option<String>,
}

fn with_retry_after(error: Error, after: Duration) -> Response {
    let mut response = error.into_response();
    if let Ok(value) = HeaderValue::from_str(&after.as_secs().max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The problem for an unanswered question, and how long to wait if retrying helps.
fn ask_problem(e: AskError) -> (Error, Option<Duration>) {
    match e {
        AskError::ConversationNotFound => (Error::not_found("conversation_not_found"), None),
        AskError::PatientGone => (Error::not_found("patient_not_found"), None),
        AskError::Retrieval(e) => (super::search::retrieve_problem(e), None),
        AskError::QuotaExceeded { retry_after } => (
            Error::problem(
                StatusCode::TOO_MANY_REQUESTS,
                "answer_quota_exceeded",
                "the clinic has used its answer tokens for this hour",
            ),
            Some(retry_after),
        ),
        AskError::Busy { retry_after } => (
            Error::problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "generator_busy",
                "too many questions are waiting; try again shortly",
            ),
            Some(retry_after),
        ),
        AskError::Unavailable(_) => (
            Error::problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "model_unavailable",
                "a model needed for answers is not available yet",
            ),
            Some(Duration::from_secs(10)),
        ),
        AskError::Internal(e) => (Error::Internal(e), None),
    }
}

fn ask_error(e: AskError) -> Response {
    match ask_problem(e) {
        (error, Some(after)) => with_retry_after(error, after),
        (error, None) => error.into_response(),
    }
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// The `started` event's body.
#[derive(Serialize)]
struct Started {
    conversation_id: Uuid,
    message_id: Uuid,
}

fn sse(event: Event) -> SseEvent {
    let built = match event {
        Event::Started {
            conversation_id,
            message_id,
        } => SseEvent::default().event("started").json_data(Started {
            conversation_id,
            message_id,
        }),
        Event::Text(text) => SseEvent::default()
            .event("token")
            .json_data(serde_json::json!({ "text": text })),
        Event::Done(answer) => SseEvent::default().event("done").json_data(*answer),
    };
    built.unwrap_or_else(|_| SseEvent::default().event("error"))
}

/// Answers a question from the patient's record, with citations.
///
/// Below the evidence threshold the answer is refused (`refused: true`, no
/// citations, no model call). Otherwise every sentence carries `[n]` markers
/// naming its citations, and every number and date in it appears in the
/// evidence it cites; sentences that fail are dropped, and if none is left
/// the best evidence is quoted. With `Accept: text/event-stream` the answer
/// streams: `started` (conversation and message ids), `token` events (text
/// of accepted sentences), then `done` (the whole answer) or `error` (a
/// problem document). Closing the stream stops generation.
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/patients/{patient}/ask", tag = "answers", request_body = AskRequest,
    params(("clinic" = String, Path), ("patient" = String, Path)),
    responses((status = 200, body = Answer, description = "the answer; or text/event-stream of started, token, done"),
        (status = 404, description = "no such patient or conversation"),
        (status = 422, description = "invalid question or retriever"),
        (status = 429, description = "the clinic's answer quota is spent, or too many open streams"),
        (status = 503, description = "a model is not loaded, or the generator is busy")))]
pub async fn ask(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
    headers: HeaderMap,
    Json(request): Json<AskRequest>,
) -> Result<Response> {
    let patient = access::patient(&state, &who, &clinic, &patient, Permission::MEMORY_ASK).await?;
    let text = request.question.trim().to_owned();
    if text.is_empty() || text.chars().count() > 2000 {
        return Err(Error::invalid(
            "invalid_question",
            "question must be 1 to 2000 characters",
        ));
    }
    let conversation = match request.conversation.as_deref() {
        None => None,
        Some(raw) => Some(
            raw.parse::<Uuid>()
                .map_err(|_| Error::not_found("conversation_not_found"))?,
        ),
    };
    let stream = wants_stream(&headers);
    let slot = if stream {
        Some(state.streams.take(&who.subject).ok_or_else(|| {
            Error::problem(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                "too many open event streams for this caller",
            )
        })?)
    } else {
        None
    };
    let question = Question {
        clinic: patient.clinic_id,
        patient: patient.id,
        text,
        conversation,
        retriever: request.retriever,
        asked_by: who.subject.clone(),
        request_id: who.request_id.clone(),
    };
    let prepared = match state.rag.prepare(question).await {
        Ok(prepared) => prepared,
        Err(e) => return Ok(ask_error(e)),
    };
    if !stream {
        return Ok(match state.rag.answer(prepared, None).await {
            Ok(answer) => JsonResponse(answer).into_response(),
            Err(e) => ask_error(e),
        });
    }
    let (tx, rx) = mpsc::channel::<SseEvent>(32);
    let (events, mut answers) = mpsc::channel::<Event>(32);
    let rag = state.rag.clone();
    // The answer runs in its own task; the stream below forwards its events.
    // When the client goes away the stream is dropped, the forwarder's send
    // fails, and the pipeline's next send stops generation.
    tokio::spawn(async move {
        let forward = {
            let tx = tx.clone();
            async move {
                while let Some(event) = answers.recv().await {
                    if tx.send(sse(event)).await.is_err() {
                        return;
                    }
                }
            }
        };
        let (result, ()) = tokio::join!(rag.answer(prepared, Some(events)), forward);
        if let Err(e) = result {
            let (error, _) = ask_problem(e);
            if let Error::Internal(cause) = &error {
                tracing::error!(error = format!("{cause:#}"), "answer failed");
            }
            let problem = error.to_problem();
            let event = SseEvent::default()
                .event("error")
                .json_data(problem)
                .unwrap_or_else(|_| SseEvent::default().event("error"));
            let _ = tx.send(event).await;
        }
    });
    let stream = futures::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        let event = rx.recv().await?;
        Some((Ok::<_, Infallible>(event), (rx, slot)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
