//! Who writes the draft answer: the local burn decoder (the default), or any
//! OpenAI-compatible chat-completions server (llama.cpp's `llama-server`,
//! vLLM, Ollama) by URL, model and key. Both stream text pieces into a
//! channel; dropping the receiving end stops generation at once (the local
//! decoder stops before its next token, the remote request is closed).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::config::Settings;
use crate::ml::Models;
use crate::ml::llm::{Finish, LLM_ID, Sampling};

pub use super::draft::{GenerateError, Output, Request};
use super::remote::Remote;

/// The configured generator.
#[derive(Clone)]
pub enum Generator {
    /// SmolLM2 on burn, in this process.
    Local(Models),
    /// An OpenAI-compatible server.
    Remote(Arc<Remote>),
    /// No generator (`generator = "none"`): questions with evidence are
    /// refused with 503; questions without evidence are still answered
    /// with a refusal.
    Disabled,
}

impl Generator {
    /// The generator the settings choose (`generator = "local"`, `"none"`, or
    /// `"openai"` with `generator_url`, `generator_model`, `generator_api_key`).
    pub fn from_settings(settings: &Settings, models: Models) -> anyhow::Result<Generator> {
        match settings.generator.as_str() {
            "local" => Ok(Generator::Local(models)),
            "none" => Ok(Generator::Disabled),
            "openai" => {
                let url = settings
                    .generator_url
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("generator = \"openai\" needs generator_url"))?;
                Ok(Generator::Remote(Arc::new(Remote::new(
                    &url,
                    settings.generator_model.clone(),
                    settings.generator_api_key.clone(),
                )?)))
            }
            other => {
                anyhow::bail!("generator must be \"local\", \"openai\" or \"none\", not {other:?}")
            }
        }
    }

    /// The model's name, recorded with every answer.
    pub fn model(&self) -> String {
        match self {
            Generator::Local(_) => LLM_ID.to_owned(),
            Generator::Remote(remote) => remote.model().to_owned(),
            Generator::Disabled => String::new(),
        }
    }

    /// Whether the generator can answer now (the local model is loaded; a
    /// remote server is assumed up until a call says otherwise).
    pub fn ready(&self) -> bool {
        match self {
            Generator::Local(models) => models.llm().is_some(),
            Generator::Remote(_) => true,
            Generator::Disabled => false,
        }
    }

    /// Generates greedily, sending text pieces to `pieces` as they come.
    pub async fn generate(
        &self,
        request: Request,
        pieces: mpsc::Sender<String>,
    ) -> Result<Output, GenerateError> {
        match self {
            Generator::Local(models) => local(models, request, pieces).await,
            Generator::Remote(remote) => remote.generate(request, pieces).await,
            Generator::Disabled => Err(GenerateError::Unavailable("answers are disabled".into())),
        }
    }
}

async fn local(
    models: &Models,
    request: Request,
    pieces: mpsc::Sender<String>,
) -> Result<Output, GenerateError> {
    let llm = models.llm().ok_or_else(|| {
        GenerateError::Unavailable(
            models
                .llm_error()
                .unwrap_or_else(|| "the local model is not loaded yet".into()),
        )
    })?;
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let prompt = llm
            .tokenizer
            .chat(&request.messages)
            .map_err(anyhow::Error::from)?;
        // Leave room for the answer inside the context.
        if prompt.len() + request.max_tokens > llm.context() {
            return Err(anyhow::anyhow!(
                "the prompt of {} tokens leaves no room for the answer",
                prompt.len()
            )
            .into());
        }
        let mut first_token = None;
        let mut gone = false;
        let generation = llm
            .generate(&prompt, request.max_tokens, Sampling::GREEDY, |piece| {
                first_token.get_or_insert_with(|| started.elapsed());
                metrics::counter!("answer_tokens_generated_total").increment(1);
                if pieces.is_closed()
                    || (!piece.is_empty() && pieces.blocking_send(piece.to_owned()).is_err())
                {
                    gone = true;
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })
            .map_err(anyhow::Error::from)?;
        Ok(Output {
            prompt_tokens: generation.prompt_tokens,
            completion_tokens: generation.tokens.len(),
            first_token,
            cancelled: gone || generation.finish == Finish::Cancelled,
        })
    })
    .await
    .map_err(|e| GenerateError::Failed(anyhow::anyhow!("the generator panicked: {e}")))?
}
