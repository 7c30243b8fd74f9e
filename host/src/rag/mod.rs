//! Answers: a question about one patient → evidence from the patient's
//! memory → a prompt → a generated draft → the sentences the host lets
//! through, cited, streamed, stored and audited.
//!
//! Owns: the answer pipeline ([`Rag`]), answers composed from records
//! (`compose`), the generators (local burn decoder or an OpenAI-compatible
//! server), the prompt, and grounding (the rules an answer must pass). Uses: `retrieval` (the evidence), `db` (conversations, audit),
//! `ml` (the local decoder). A domain module, beside `ingest`.
//!
//! Grounding is the host's, not the model's: below the evidence threshold the
//! answer is refused without calling the model; every sentence must cite
//! evidence it was given and agree with it on every number and date, or it
//! is dropped; if nothing is left, the answer quotes the best evidence.

mod compose;
mod draft;
mod figures;
pub mod generator;
pub mod grounding;
mod pipeline;
pub mod prompt;
mod remote;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::config::Settings;
use crate::db::Db;
use crate::retrieval::{Retrieval, RetrieveError};

pub use generator::Generator;
pub use pipeline::{Prepared, Question};

/// How answers are bounded.
#[derive(Debug, Clone)]
pub struct AnswerPolicy {
    pub max_tokens: usize,
    pub evidence: usize,
    pub evidence_chars: usize,
    pub min_relevance: f32,
    pub concurrency: usize,
    pub queue: usize,
    pub tokens_per_clinic_hour: i64,
    /// Earlier question/answer pairs a follow-up sees.
    pub turns: usize,
}

impl AnswerPolicy {
    pub fn from_settings(s: &Settings) -> AnswerPolicy {
        AnswerPolicy {
            max_tokens: s.answer_max_tokens.clamp(16, 2048),
            evidence: s.answer_evidence.clamp(1, 20),
            evidence_chars: s.answer_evidence_chars.clamp(100, 4000),
            min_relevance: s.answer_min_relevance,
            concurrency: s.answer_concurrency.max(1),
            queue: s.answer_queue,
            tokens_per_clinic_hour: s.answer_tokens_per_clinic_hour,
            turns: 2,
        }
    }
}

/// One cited piece of evidence.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Citation {
    /// The number the answer's `[n]` markers use.
    pub n: usize,
    pub chunk_id: Uuid,
    /// The document it came from (null for a record posted directly).
    pub document_id: Option<Uuid>,
    /// The record it states, if any.
    pub record_id: Option<Uuid>,
    pub section: Option<String>,
    /// 1-based page, for paged formats.
    pub page: Option<i64>,
    /// The evidence text.
    pub text: String,
}

/// Tokens spent.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Timings {
    /// Finding the evidence.
    pub retrieval_ms: u64,
    /// Waiting for a generation slot.
    pub queue_ms: u64,
    /// From the model call to its first token.
    pub first_token_ms: Option<u64>,
    /// The whole answer.
    pub total_ms: u64,
}

/// A finished answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Answer {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    /// The sentences the host let through, each with its `[n]` markers.
    pub answer: String,
    /// True when the record holds no evidence for the question (no model
    /// call was made, no citations are given).
    pub refused: bool,
    /// `answered`, `composed` (stated from the records the retriever chose,
    /// without a model), `extractive` (the model's draft did not hold up, so the
    /// best evidence is quoted), `refused` or `cancelled`.
    pub outcome: String,
    /// The evidence the answer cites.
    pub citations: Vec<Citation>,
    /// The model that wrote the draft (empty when none was called).
    pub model: String,
    /// The retriever that chose the evidence.
    pub retriever: String,
    pub usage: Usage,
    pub timings: Timings,
}

/// What a streamed answer sends, in order: `Started`, `Text`…, `Done`.
#[derive(Debug, Clone)]
pub enum Event {
    /// The ids, before anything else.
    Started {
        conversation_id: Uuid,
        message_id: Uuid,
    },
    /// Text of sentences the host accepted.
    Text(String),
    /// The whole answer.
    Done(Box<Answer>),
}

/// Why a question was not answered.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The conversation is not this patient's (or does not exist).
    #[error("no such conversation")]
    ConversationNotFound,
    /// The patient was erased while the question was being answered.
    #[error("the patient is gone")]
    PatientGone,
    /// The clinic spent its token quota for the hour.
    #[error("the clinic's answer quota is spent for now")]
    QuotaExceeded { retry_after: Duration },
    /// Too many questions are waiting.
    #[error("too many questions are waiting for the generator")]
    Busy { retry_after: Duration },
    /// The embedding model or the generator is not available.
    #[error("{0}")]
    Unavailable(String),
    /// Retrieval failed: an unknown retriever, or the retriever plugin failed.
    #[error(transparent)]
    Retrieval(RetrieveError),
    /// A store or the model failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<RetrieveError> for AskError {
    fn from(e: RetrieveError) -> Self {
        match e {
            RetrieveError::ModelUnavailable => {
                AskError::Unavailable("the embedding model is not loaded yet".into())
            }
            RetrieveError::Internal(e) => AskError::Internal(e),
            other => AskError::Retrieval(other),
        }
    }
}

impl From<sqlx::Error> for AskError {
    fn from(e: sqlx::Error) -> Self {
        AskError::Internal(e.into())
    }
}

/// The answer service.
pub struct Rag {
    db: Db,
    retrieval: Arc<Retrieval>,
    generator: Generator,
    policy: AnswerPolicy,
    /// Questions admitted (generating or waiting).
    admitted: Arc<Semaphore>,
    /// Generations running.
    running: Arc<Semaphore>,
}

impl Rag {
    pub fn new(
        db: Db,
        retrieval: Arc<Retrieval>,
        generator: Generator,
        policy: AnswerPolicy,
    ) -> Rag {
        Rag {
            admitted: Arc::new(Semaphore::new(policy.concurrency + policy.queue)),
            running: Arc::new(Semaphore::new(policy.concurrency)),
            db,
            retrieval,
            generator,
            policy,
        }
    }

    /// The generator in use.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }
}
