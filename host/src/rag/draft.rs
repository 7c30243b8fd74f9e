//! What the generators share: the request, what a generation cost, and
//! why it failed.

use std::time::Duration;

use crate::ml::llm::Message;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Request {
    /// The chat: system, earlier turns, the question with its evidence.
    pub messages: Vec<Message>,
    /// The answer's length cap, in tokens.
    pub max_tokens: usize,
}

/// What a generation cost.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Time to the first piece of text.
    pub first_token: Option<Duration>,
    /// Whether it ended because the receiver went away.
    pub cancelled: bool,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The model is not loaded (yet), or the server cannot be reached.
    #[error("the generator is unavailable: {0}")]
    Unavailable(String),
    /// The model or the server failed mid-way.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}
