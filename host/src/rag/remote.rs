//! An OpenAI-compatible chat-completions client, streamed: `POST
//! {base}/v1/chat/completions` with `stream: true` and
//! `stream_options.include_usage`, read as server-sent events until
//! `data: [DONE]`. Tolerant of the peers' differences: `choices` null or
//! missing in the usage chunk, unknown fields, comments and pings.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest_object_store as reqwest;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::draft::{GenerateError, Output, Request};
use crate::ml::llm::Role;

/// Longest wait for the server's next bytes.
const IDLE: Duration = Duration::from_secs(60);

/// A remote chat-completions server.
pub struct Remote {
    http: reqwest::Client,
    endpoint: String,
    model: String,
    key: Option<String>,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: usize,
    #[serde(default)]
    completion_tokens: usize,
}

/// The chat-completions endpoint for a base URL given with or without
/// `/v1` or the full path.
fn endpoint(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.ends_with("/chat/completions") {
        url.to_owned()
    } else if url.ends_with("/v1") {
        format!("{url}/chat/completions")
    } else {
        format!("{url}/v1/chat/completions")
    }
}

impl Remote {
    /// A client for the server at `url` serving `model`.
    pub fn new(url: &str, model: Option<String>, key: Option<String>) -> anyhow::Result<Remote> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!("generator_url must be an http(s) URL");
        }
        // reqwest's rustls takes the process-wide crypto provider (for
        // https servers); ring is the one the rest of the tree uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the generator's HTTP client")?;
        Ok(Remote {
            http,
            endpoint: endpoint(url),
            model: model.unwrap_or_else(|| "default".into()),
            key,
        })
    }

    /// The model name sent to the server.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Streams one greedy completion into `pieces`; stops reading (and so
    /// closes the request) as soon as `pieces` is closed.
    pub async fn generate(
        &self,
        request: Request,
        pieces: mpsc::Sender<String>,
    ) -> Result<Output, GenerateError> {
        let started = Instant::now();
        let messages: Vec<_> = request
            .messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                json!({"role": role, "content": m.content})
            })
            .collect();
        let body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": request.max_tokens,
            "temperature": 0,
            "top_p": 1,
            "seed": 0,
        });
        let mut call = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .body(body.to_string());
        if let Some(key) = &self.key {
            call = call.bearer_auth(key);
        }
        let mut response = call
            .send()
            .await
            .map_err(|e| GenerateError::Unavailable(format!("{}", e.without_url())))?;
        if !response.status().is_success() {
            return Err(GenerateError::Unavailable(format!(
                "the generator answered {}",
                response.status()
            )));
        }
        // Until the server reports usage (and if it never does: an old
        // server, a cancelled stream), count what was sent and received, so
        // quotas hold whatever the peer reports.
        let prompt_chars: usize = request.messages.iter().map(|m| m.content.len()).sum();
        let mut output = Output {
            prompt_tokens: prompt_chars.div_ceil(4),
            ..Output::default()
        };
        let mut buffer = Vec::new();
        loop {
            let chunk = tokio::select! {
                _ = pieces.closed() => {
                    output.cancelled = true;
                    return Ok(output);
                }
                chunk = tokio::time::timeout(IDLE, response.chunk()) => chunk,
            };
            let chunk = chunk
                .map_err(|_| anyhow::anyhow!("the generator sent nothing for {IDLE:?}"))?
                .map_err(|e| {
                    anyhow::anyhow!("reading the generator's stream: {}", e.without_url())
                })?;
            let Some(chunk) = chunk else {
                // The server closed the stream without [DONE]: keep what came.
                return Ok(output);
            };
            buffer.extend_from_slice(&chunk);
            while let Some(newline) = buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=newline).collect();
                let line = String::from_utf8_lossy(&line);
                let Some(data) = line.trim_end().strip_prefix("data:") else {
                    continue; // comments, pings, event names, blank lines
                };
                let data = data.trim();
                if data == "[DONE]" {
                    return Ok(output);
                }
                let Ok(chunk) = serde_json::from_str::<Chunk>(data) else {
                    continue;
                };
                if let Some(usage) = chunk.usage {
                    output.prompt_tokens = usage.prompt_tokens;
                    output.completion_tokens = usage.completion_tokens;
                }
                for choice in chunk.choices.unwrap_or_default() {
                    let Some(text) = choice.delta.and_then(|d| d.content) else {
                        continue;
                    };
                    if text.is_empty() {
                        continue;
                    }
                    output.first_token.get_or_insert_with(|| started.elapsed());
                    output.completion_tokens += 1;
                    metrics::counter!("answer_tokens_generated_total").increment(1);
                    if pieces.send(text).await.is_err() {
                        output.cancelled = true;
                        return Ok(output);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_a_base_a_v1_or_the_full_path() {
        assert_eq!(endpoint("http://h:1"), "http://h:1/v1/chat/completions");
        assert_eq!(endpoint("http://h:1/v1/"), "http://h:1/v1/chat/completions");
        assert_eq!(
            endpoint("http://h:1/x/chat/completions"),
            "http://h:1/x/chat/completions"
        );
    }

    #[test]
    fn usage_chunks_may_have_null_or_no_choices() {
        for raw in [
            r#"{"choices":null,"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
            r#"{"usage":{"prompt_tokens":5,"completion_tokens":2},"timings":{}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
        ] {
            let chunk: Chunk = serde_json::from_str(raw).unwrap();
            assert!(chunk.choices.unwrap_or_default().is_empty());
            assert_eq!(chunk.usage.unwrap().completion_tokens, 2);
        }
    }
}
