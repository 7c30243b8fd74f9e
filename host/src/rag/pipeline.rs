//! The answer pipeline in two steps. [`Rag::prepare`] does everything that
//! can refuse the request with an HTTP error (the conversation, the quota,
//! the evidence, a place in the queue); [`Rag::answer`] then streams,
//! grounds, stores and audits the answer.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use uuid::Uuid;

use super::generator::{GenerateError, Request};
use super::grounding::{self, Dropped, Sentences};
use super::{Answer, AskError, Citation, Event, Rag, Timings, Usage, compose, prompt};
use crate::db::audit::AuditEvent;
use crate::db::conversations::NewMessage;
use crate::db::records::Record;
use crate::db::{new_id, now};
use crate::memory::Evidence;
use crate::retrieval;

/// How long a client is asked to wait when the queue is full.
const BUSY_RETRY: Duration = Duration::from_secs(5);
/// How long a client is asked to wait when its clinic's quota is spent.
const QUOTA_RETRY: Duration = Duration::from_secs(600);

/// A question, parsed and authorized.
#[derive(Debug, Clone)]
pub struct Question {
    pub clinic: Uuid,
    pub patient: Uuid,
    /// 1 to 2000 characters.
    pub text: String,
    /// A follow-up continues this conversation.
    pub conversation: Option<Uuid>,
    /// The retriever to use; the clinic's default when `None`.
    pub retriever: Option<String>,
    /// The casbin subject asking.
    pub asked_by: String,
    pub request_id: Option<String>,
}

/// A question that will be answered: ids handed out, evidence chosen.
pub struct Prepared {
    question: Question,
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    retriever: String,
    evidence: Vec<Evidence>,
    /// The records behind the evidence, when the retriever ranked records
    /// only: the answer is then composed from them, without a model.
    records: Option<Vec<Record>>,
    history: Vec<(String, String)>,
    refused: bool,
    _admitted: Option<OwnedSemaphorePermit>,
    started: Instant,
    retrieval: Duration,
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn citation(n: usize, e: &Evidence) -> Citation {
    Citation {
        n,
        chunk_id: e.chunk_id,
        document_id: e.document_id,
        record_id: e.record_id,
        section: e.section.clone(),
        page: e.page,
        text: e.text.clone(),
    }
}

impl Rag {
    /// Checks the conversation and the quota, finds the evidence and takes
    /// a place in the queue (unless the answer is a refusal).
    pub async fn prepare(&self, question: Question) -> Result<Prepared, AskError> {
        let started = Instant::now();
        let (clinic, patient) = (question.clinic, question.patient);
        let (conversation_id, history): (Uuid, Vec<(String, String)>) = match question.conversation
        {
            Some(id) => {
                self.db
                    .conversation(clinic, patient, id)
                    .await?
                    .ok_or(AskError::ConversationNotFound)?;
                let turns = self
                    .db
                    .messages(clinic, id, Some(self.policy.turns as i64))
                    .await?;
                let history = turns
                    .into_iter()
                    .map(|m| (m.question, grounding::without_markers(&m.answer)))
                    .collect();
                (id, history)
            }
            None => (new_id(), Vec::new()),
        };
        let hour_ago = now() - chrono::TimeDelta::hours(1);
        let used = self.db.answer_tokens_since(clinic, hour_ago).await?;
        if used >= self.policy.tokens_per_clinic_hour {
            return Err(AskError::QuotaExceeded {
                retry_after: QUOTA_RETRY,
            });
        }
        let request = retrieval::Request {
            clinic,
            patient,
            text: question.text.clone(),
            history: history.iter().map(|(q, _)| q.clone()).collect(),
            limit: self.policy.evidence,
            retriever: question.retriever.clone(),
            request_id: question.request_id.clone(),
        };
        let mut retrieved = self.retrieval.retrieve(&request).await?;
        // Relevance is cosine similarity, comparable across questions: it
        // decides whether the record speaks to the question at all. A
        // follow-up is compared with the question before it too.
        self.retrieval.score(&request, &mut retrieved).await?;
        let best = retrieved
            .found
            .iter()
            .filter_map(|f| f.evidence.similarity)
            .fold(f32::NEG_INFINITY, f32::max);
        let records = retrieved.all_records().then(|| {
            retrieved
                .found
                .iter()
                .filter_map(|f| f.record.clone())
                .collect()
        });
        let retriever = retrieved.retriever.clone();
        let evidence: Vec<Evidence> = retrieved.found.into_iter().map(|f| f.evidence).collect();
        let refused = evidence.is_empty() || best < self.policy.min_relevance;
        let admitted = if refused || records.is_some() {
            None
        } else {
            if !self.generator.ready() {
                return Err(AskError::Unavailable(
                    "the answer model is not loaded yet".into(),
                ));
            }
            Some(
                self.admitted
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| AskError::Busy {
                        retry_after: BUSY_RETRY,
                    })?,
            )
        };
        Ok(Prepared {
            question,
            conversation_id,
            message_id: new_id(),
            retriever,
            evidence,
            records,
            history,
            refused,
            _admitted: admitted,
            started,
            retrieval: started.elapsed(),
        })
    }

    /// Generates, grounds, stores and audits the answer, sending events to
    /// `events` when streaming. A closed `events` stops generation at once;
    /// what was accepted so far is stored as `cancelled`.
    pub async fn answer(
        &self,
        prepared: Prepared,
        events: Option<mpsc::Sender<Event>>,
    ) -> Result<Answer, AskError> {
        let send = |event: Event| {
            let events = events.clone();
            async move {
                match events {
                    Some(tx) => tx.send(event).await.is_ok(),
                    None => true,
                }
            }
        };
        let mut live = send(Event::Started {
            conversation_id: prepared.conversation_id,
            message_id: prepared.message_id,
        })
        .await;
        let mut timings = Timings {
            retrieval_ms: prepared.retrieval.as_millis() as u64,
            ..Timings::default()
        };
        let mut usage = Usage::default();
        let mut accepted: Vec<grounding::Accepted> = Vec::new();
        let mut model = String::new();
        let outcome;
        if prepared.refused {
            outcome = "refused";
            let text = format!(
                "The record has no evidence about \u{201c}{}\u{201d}.",
                prompt::quote(&prepared.question.text, 200)
            );
            live = live && send(Event::Text(text.clone())).await;
            accepted.push(grounding::Accepted {
                text,
                cites: Vec::new(),
            });
        } else if !live {
            outcome = "cancelled";
        } else if let Some(records) = &prepared.records {
            outcome = "composed";
            model = compose::MODEL.to_owned();
            for sentence in compose::sentences(records) {
                let lead = if accepted.is_empty() { "" } else { " " };
                live = live && send(Event::Text(format!("{lead}{}", sentence.text))).await;
                accepted.push(sentence);
            }
        } else {
            let waited = Instant::now();
            let _running = self
                .running
                .acquire()
                .await
                .map_err(|_| AskError::Unavailable("the generator is shutting down".into()))?;
            timings.queue_ms = waited.elapsed().as_millis() as u64;
            model = self.generator.model();
            let texts: Vec<&str> = prepared.evidence.iter().map(|e| e.text.as_str()).collect();
            let request = Request {
                messages: prompt::messages(
                    &prepared.question.text,
                    &prepared.evidence,
                    self.policy.evidence_chars,
                    &prepared.history,
                ),
                max_tokens: self.policy.max_tokens,
            };
            let (tx, rx) = mpsc::channel::<String>(64);
            let generation = self.generator.generate(request, tx);
            let ground = async {
                // Owned by this future: when it returns early, the receiver
                // is dropped and the generator stops.
                let mut rx = rx;
                let mut sentences = Sentences::default();
                let take = |sentence: String, accepted: &mut Vec<grounding::Accepted>| {
                    match grounding::check(&sentence, &texts) {
                        Ok(ok) => {
                            accepted.push(ok.clone());
                            Some(ok.text)
                        }
                        Err(reason) => {
                            let reason = match reason {
                                Dropped::Uncited => "uncited",
                                Dropped::Unsupported => "unsupported",
                            };
                            metrics::counter!("answer_sentences_dropped_total", "reason" => reason)
                                .increment(1);
                            None
                        }
                    }
                };
                while let Some(piece) = rx.recv().await {
                    for sentence in sentences.push(&piece) {
                        if let Some(text) = take(sentence, &mut accepted) {
                            let lead = if accepted.len() > 1 { " " } else { "" };
                            if !send(Event::Text(format!("{lead}{text}"))).await {
                                // The client is gone: dropping `rx` stops the model.
                                return false;
                            }
                        }
                    }
                }
                if let Some(rest) = sentences.finish()
                    && let Some(text) = take(rest, &mut accepted)
                {
                    let lead = if accepted.len() > 1 { " " } else { "" };
                    return send(Event::Text(format!("{lead}{text}"))).await;
                }
                true
            };
            let (generated, still_live) = tokio::join!(generation, ground);
            live = still_live;
            let generated = match generated {
                Ok(output) => output,
                Err(GenerateError::Unavailable(why)) => return Err(AskError::Unavailable(why)),
                Err(GenerateError::Failed(e)) => return Err(AskError::Internal(e)),
            };
            timings.first_token_ms = generated.first_token.map(|d| d.as_millis() as u64);
            usage = Usage {
                prompt_tokens: generated.prompt_tokens,
                completion_tokens: generated.completion_tokens,
            };
            outcome = if !live || generated.cancelled {
                "cancelled"
            } else if accepted.is_empty() {
                // Nothing held up: quote the best evidence instead.
                let text = format!(
                    "The record says: \u{201c}{}\u{201d} [1]",
                    prompt::quote(&prepared.evidence[0].text, 300)
                );
                live = send(Event::Text(text.clone())).await;
                accepted.push(grounding::Accepted {
                    text,
                    cites: vec![1],
                });
                "extractive"
            } else {
                "answered"
            };
        }
        let cited: BTreeSet<usize> = accepted.iter().flat_map(|a| a.cites.clone()).collect();
        let citations: Vec<Citation> = cited
            .iter()
            .filter_map(|&n| prepared.evidence.get(n - 1).map(|e| citation(n, e)))
            .collect();
        let text = accepted
            .iter()
            .map(|a| a.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        timings.total_ms = prepared.started.elapsed().as_millis() as u64;
        let answer = Answer {
            conversation_id: prepared.conversation_id,
            message_id: prepared.message_id,
            answer: text,
            refused: prepared.refused,
            outcome: outcome.to_owned(),
            citations,
            model,
            retriever: prepared.retriever.clone(),
            usage,
            timings,
        };
        self.store(&prepared, &answer).await?;
        metrics::counter!("answers_total", "outcome" => outcome).increment(1);
        if live {
            send(Event::Done(Box::new(answer.clone()))).await;
        }
        Ok(answer)
    }

    /// Stores the answer with its audit entry (digests and ids, no text).
    async fn store(&self, prepared: &Prepared, answer: &Answer) -> Result<(), AskError> {
        let q = &prepared.question;
        let citations = serde_json::to_string(&answer.citations).map_err(anyhow::Error::from)?;
        let message = NewMessage {
            id: answer.message_id,
            conversation_id: answer.conversation_id,
            asked_by: q.asked_by.clone(),
            question: q.text.clone(),
            answer: answer.answer.clone(),
            refused: answer.refused,
            outcome: answer.outcome.clone(),
            citations,
            model: answer.model.clone(),
            retriever: answer.retriever.clone(),
            prompt_tokens: answer.usage.prompt_tokens as i64,
            completion_tokens: answer.usage.completion_tokens as i64,
        };
        let mut event = AuditEvent::now(&q.asked_by, "memory", "answer", &answer.outcome);
        event.clinic_id = Some(q.clinic);
        event.patient_id = Some(q.patient);
        event.request_id = q.request_id.clone();
        let cited: Vec<Uuid> = answer.citations.iter().map(|c| c.chunk_id).collect();
        event.detail = Some(
            serde_json::json!({
                "conversation": answer.conversation_id,
                "message": answer.message_id,
                "question_sha256": digest(&q.text),
                "answer_sha256": digest(&answer.answer),
                "cited": cited,
                "model": answer.model,
                "retriever": answer.retriever,
            })
            .to_string(),
        );
        let saved = self
            .db
            .save_message(q.clinic, q.patient, &message, &event)
            .await
            .map_err(|e| {
                if crate::db::foreign_key_violation(&e) {
                    AskError::PatientGone
                } else {
                    AskError::Internal(e.into())
                }
            })?;
        if !saved {
            return Err(AskError::ConversationNotFound);
        }
        Ok(())
    }
}
