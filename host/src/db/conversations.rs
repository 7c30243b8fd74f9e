//! Conversations with a patient's memory: each question and the answer the
//! host let through, with its citations and token usage. Scoped by clinic and
//! patient like every PHI read; erased with the patient by cascade.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::audit::AuditEvent;
use super::{Db, WritePool, now};
use crate::{append_audit, on_pool};

/// A conversation about one patient.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Conversation {
    /// The conversation's id.
    pub id: Uuid,
    /// The patient it is about.
    pub patient_id: Uuid,
    /// The casbin subject who asked the first question.
    pub started_by: String,
    /// When the first question was answered.
    pub created_at: DateTime<Utc>,
    /// When the last question was answered.
    pub updated_at: DateTime<Utc>,
}

/// One question and its answer, as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredMessage {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// 1 for the first question of the conversation.
    pub ordinal: i64,
    pub asked_by: String,
    pub question: String,
    pub answer: String,
    pub refused: bool,
    /// `answered`, `refused`, `extractive` or `cancelled`.
    pub outcome: String,
    /// The citations, as the JSON array the API returns.
    pub citations: String,
    pub model: String,
    pub retriever: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub created_at: DateTime<Utc>,
    pub rating: Option<i64>,
    pub feedback_comment: Option<String>,
    pub feedback_by: Option<String>,
    pub feedback_at: Option<DateTime<Utc>>,
}

/// An answer to store: the ids were handed out before it was generated.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub asked_by: String,
    pub question: String,
    pub answer: String,
    pub refused: bool,
    pub outcome: String,
    pub citations: String,
    pub model: String,
    pub retriever: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

const CONVERSATION: &str = "id, patient_id, started_by, created_at, updated_at";
const MESSAGE: &str = "id, conversation_id, ordinal, asked_by, question, answer, refused, outcome, \
     citations, model, retriever, prompt_tokens, completion_tokens, created_at, rating, \
     feedback_comment, feedback_by, feedback_at";

impl Db {
    /// One conversation of this clinic's patient.
    pub async fn conversation(
        &self,
        clinic: Uuid,
        patient: Uuid,
        id: Uuid,
    ) -> sqlx::Result<Option<Conversation>> {
        let sql = format!(
            "SELECT {CONVERSATION} FROM conversations WHERE clinic_id = $1 AND patient_id = $2 AND id = $3"
        );
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(patient)
                .bind(id)
                .fetch_optional(pool)
                .await
        })
    }

    /// A page of the patient's conversations, most recent first, older than
    /// `before` (a conversation id from the previous page).
    pub async fn conversations(
        &self,
        clinic: Uuid,
        patient: Uuid,
        before: Option<Uuid>,
        limit: i64,
    ) -> sqlx::Result<Vec<Conversation>> {
        let sql = format!(
            "SELECT {CONVERSATION} FROM conversations
             WHERE clinic_id = $1 AND patient_id = $2 AND ($3 IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4"
        );
        on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(patient)
                .bind(before)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
    }

    /// The messages of a conversation of this clinic, oldest first; the last
    /// `limit` only when given.
    pub async fn messages(
        &self,
        clinic: Uuid,
        conversation: Uuid,
        limit: Option<i64>,
    ) -> sqlx::Result<Vec<StoredMessage>> {
        let sql = format!(
            "SELECT {MESSAGE} FROM messages WHERE clinic_id = $1 AND conversation_id = $2
             ORDER BY ordinal DESC LIMIT $3"
        );
        let mut rows: Vec<StoredMessage> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(conversation)
                .bind(limit.unwrap_or(i64::MAX))
                .fetch_all(pool)
                .await?
        });
        rows.reverse();
        Ok(rows)
    }

    /// Stores an answer with its audit entry in one transaction, creating the
    /// conversation with its first message. `false` if the conversation
    /// exists for another patient (never written).
    pub async fn save_message(
        &self,
        clinic: Uuid,
        patient: Uuid,
        message: &NewMessage,
        audit: &AuditEvent,
    ) -> sqlx::Result<bool> {
        let at = now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // One writer per clinic at a time, so ordinals never collide.
            super::WriteTx::lock_clinic(&mut tx, clinic).await?;
            let owner: Option<Uuid> = sqlx::query_scalar(
                "SELECT patient_id FROM conversations WHERE clinic_id = $1 AND id = $2",
            )
            .bind(clinic)
            .bind(message.conversation_id)
            .fetch_optional(&mut *tx)
            .await?;
            match owner {
                Some(owner) if owner != patient => return Ok(false),
                Some(_) => {
                    sqlx::query("UPDATE conversations SET updated_at = $1 WHERE clinic_id = $2 AND id = $3")
                        .bind(at)
                        .bind(clinic)
                        .bind(message.conversation_id)
                        .execute(&mut *tx)
                        .await?;
                }
                None => {
                    sqlx::query(
                        "INSERT INTO conversations (id, clinic_id, patient_id, started_by, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(message.conversation_id)
                    .bind(clinic)
                    .bind(patient)
                    .bind(&message.asked_by)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            let ordinal: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(MAX(ordinal), 0) + 1 AS BIGINT) FROM messages WHERE conversation_id = $1",
            )
            .bind(message.conversation_id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO messages (id, clinic_id, conversation_id, ordinal, asked_by, question, answer,
                 refused, outcome, citations, model, retriever, prompt_tokens, completion_tokens, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(message.id)
            .bind(clinic)
            .bind(message.conversation_id)
            .bind(ordinal)
            .bind(&message.asked_by)
            .bind(&message.question)
            .bind(&message.answer)
            .bind(message.refused)
            .bind(&message.outcome)
            .bind(&message.citations)
            .bind(&message.model)
            .bind(&message.retriever)
            .bind(message.prompt_tokens)
            .bind(message.completion_tokens)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Records a clinician's rating of an answer (the last one wins);
    /// `false` if this clinic's patient has no such message.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_feedback(
        &self,
        clinic: Uuid,
        patient: Uuid,
        conversation: Uuid,
        message: Uuid,
        rating: i64,
        comment: Option<&str>,
        by: &str,
        audit: &AuditEvent,
    ) -> sqlx::Result<bool> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE messages SET rating = $1, feedback_comment = $2, feedback_by = $3, feedback_at = $4
                 WHERE clinic_id = $5 AND conversation_id = $6 AND id = $7
                   AND conversation_id IN (SELECT id FROM conversations WHERE clinic_id = $5 AND patient_id = $8)",
            )
            .bind(rating)
            .bind(comment)
            .bind(by)
            .bind(now())
            .bind(clinic)
            .bind(conversation)
            .bind(message)
            .bind(patient)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if done {
                append_audit!(tx, audit);
                tx.commit().await?;
            }
            Ok(done)
        })
    }

    /// Prompt and completion tokens this clinic's answers used since `since`
    /// (for its quota), across every instance.
    pub async fn answer_tokens_since(
        &self,
        clinic: Uuid,
        since: DateTime<Utc>,
    ) -> sqlx::Result<i64> {
        on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS BIGINT)
                 FROM messages WHERE clinic_id = $1 AND created_at >= $2",
            )
            .bind(clinic)
            .bind(since)
            .fetch_one(pool)
            .await
        })
    }
}
