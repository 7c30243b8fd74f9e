//! The conversations `/ask` keeps: list, read, and a clinician's rating of
//! an answer. Authorize, parse, call the store, render.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::access::{self, PageQuery};
use super::error::{Error, Result};
use super::extract::{Json, Query};
use crate::auth::Principal;
use crate::authz::Permission;
use crate::db::audit::AuditEvent;
use crate::db::conversations::{Conversation, StoredMessage};
use crate::rag::Citation;

/// Conversation routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/clinics/{clinic}/patients/{patient}/conversations",
            get(conversations),
        )
        .route(
            "/clinics/{clinic}/patients/{patient}/conversations/{conversation}",
            get(conversation),
        )
        .route(
            "/clinics/{clinic}/patients/{patient}/conversations/{conversation}/messages/{message}/feedback",
            post(feedback),
        )
}

/// A page of conversations.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationPage {
    /// Most recent first.
    pub items: Vec<Conversation>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One question and answer of a conversation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    /// 1 for the first question.
    pub ordinal: i64,
    pub asked_by: String,
    pub question: String,
    pub answer: String,
    pub refused: bool,
    pub outcome: String,
    pub citations: Vec<Citation>,
    pub model: String,
    pub retriever: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The clinician's rating, 1 to 5, if any.
    pub rating: Option<i64>,
    pub feedback_comment: Option<String>,
}

impl From<StoredMessage> for MessageView {
    fn from(m: StoredMessage) -> Self {
        MessageView {
            id: m.id,
            ordinal: m.ordinal,
            asked_by: m.asked_by,
            question: m.question,
            answer: m.answer,
            refused: m.refused,
            outcome: m.outcome,
            citations: serde_json::from_str(&m.citations).unwrap_or_default(),
            model: m.model,
            retriever: m.retriever,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
            created_at: m.created_at,
            rating: m.rating,
            feedback_comment: m.feedback_comment,
        }
    }
}

/// A conversation with its messages.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    #[serde(flatten)]
    pub conversation: Conversation,
    /// Oldest first.
    pub messages: Vec<MessageView>,
}

/// Lists the patient's conversations, most recent first.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/patients/{patient}/conversations", tag = "answers",
    params(("clinic" = String, Path), ("patient" = String, Path), PageQuery),
    responses((status = 200, body = ConversationPage), (status = 404, description = "not found")))]
pub async fn conversations(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
    Query(page): Query<PageQuery>,
) -> Result<JsonResponse<ConversationPage>> {
    let patient = access::patient(&state, &who, &clinic, &patient, Permission::MEMORY_ASK).await?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Error::invalid(
            "invalid_limit",
            "limit must be between 1 and 500",
        ));
    }
    let before = match page.cursor.as_deref() {
        None => None,
        Some(raw) => Some(
            raw.parse::<Uuid>()
                .map_err(|_| Error::invalid("invalid_cursor", "cursor is not one this API gave"))?,
        ),
    };
    let mut items = state
        .db
        .conversations(patient.clinic_id, patient.id, before, i64::from(limit) + 1)
        .await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|c| c.id.to_string())
    } else {
        None
    };
    Ok(JsonResponse(ConversationPage { items, next_cursor }))
}

/// Reads one conversation with its questions, answers and citations.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/patients/{patient}/conversations/{conversation}", tag = "answers",
    params(("clinic" = String, Path), ("patient" = String, Path), ("conversation" = String, Path)),
    responses((status = 200, body = ConversationView), (status = 404, description = "not found")))]
pub async fn conversation(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient, conversation)): Path<(String, String, String)>,
) -> Result<JsonResponse<ConversationView>> {
    let patient = access::patient(&state, &who, &clinic, &patient, Permission::MEMORY_ASK).await?;
    let id = access::parse_id(&conversation, "conversation_not_found")?;
    let conversation = state
        .db
        .conversation(patient.clinic_id, patient.id, id)
        .await?
        .ok_or_else(|| Error::not_found("conversation_not_found"))?;
    let messages = state
        .db
        .messages(patient.clinic_id, id, None)
        .await?
        .into_iter()
        .map(MessageView::from)
        .collect();
    Ok(JsonResponse(ConversationView {
        conversation,
        messages,
    }))
}

/// A clinician's rating of one answer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// 1 (wrong or unsafe) to 5 (correct and useful).
    #[schema(minimum = 1, maximum = 5)]
    pub rating: i64,
    /// Up to 2000 characters.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Rates an answer; the last rating wins.
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/patients/{patient}/conversations/{conversation}/messages/{message}/feedback",
    tag = "answers", request_body = FeedbackRequest,
    params(("clinic" = String, Path), ("patient" = String, Path), ("conversation" = String, Path), ("message" = String, Path)),
    responses((status = 204, description = "recorded"), (status = 404, description = "not found"), (status = 422, description = "invalid")))]
pub async fn feedback(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient, conversation, message)): Path<(String, String, String, String)>,
    Json(request): Json<FeedbackRequest>,
) -> Result<StatusCode> {
    let patient = access::patient(&state, &who, &clinic, &patient, Permission::MEMORY_ASK).await?;
    let conversation = access::parse_id(&conversation, "conversation_not_found")?;
    let message = access::parse_id(&message, "message_not_found")?;
    if !(1..=5).contains(&request.rating) {
        return Err(Error::invalid("invalid_rating", "rating must be 1 to 5"));
    }
    let comment = request
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > 2000) {
        return Err(Error::invalid(
            "invalid_comment",
            "comment must be at most 2000 characters",
        ));
    }
    let mut event = AuditEvent::now(&who.subject, "memory", "feedback", "succeeded");
    event.clinic_id = Some(patient.clinic_id);
    event.patient_id = Some(patient.id);
    event.request_id = who.request_id.clone();
    event.detail = Some(
        serde_json::json!({"conversation": conversation, "message": message, "rating": request.rating})
            .to_string(),
    );
    let found = state
        .db
        .set_feedback(
            patient.clinic_id,
            patient.id,
            conversation,
            message,
            request.rating,
            comment,
            &who.subject,
            &event,
        )
        .await?;
    if !found {
        return Err(Error::not_found("message_not_found"));
    }
    Ok(StatusCode::NO_CONTENT)
}
