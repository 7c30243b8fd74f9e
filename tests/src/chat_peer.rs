//! A scripted OpenAI-compatible chat-completions server for the answer
//! tests: it streams what the test's script returns for each request, as
//! llama.cpp does (content deltas, a finish chunk, a usage chunk with
//! `choices: []`, `data: [DONE]`), records every request body, and notices
//! when the client hangs up mid-stream.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the peer answers to one request.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// Content deltas, in order.
    pub pieces: Vec<String>,
    /// Pause before each delta.
    pub delay: Duration,
    /// `usage.prompt_tokens` to report.
    pub prompt_tokens: usize,
}

impl Reply {
    /// The text split into word-sized deltas, at once.
    pub fn text(text: &str) -> Reply {
        let mut pieces = Vec::new();
        let mut current = String::new();
        for c in text.chars() {
            current.push(c);
            if c == ' ' {
                pieces.push(std::mem::take(&mut current));
            }
        }
        if !current.is_empty() {
            pieces.push(current);
        }
        Reply {
            pieces,
            delay: Duration::ZERO,
            prompt_tokens: 100,
        }
    }
}

type Script = dyn Fn(&Value) -> Reply + Send + Sync;

/// The running peer.
pub struct ChatPeer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Every request body received, in order.
    pub requests: Arc<Mutex<Vec<Value>>>,
    /// Content deltas written so far.
    pub sent: Arc<AtomicUsize>,
    /// Whether a client hung up before the stream ended.
    pub hung_up: Arc<AtomicBool>,
}

impl ChatPeer {
    /// Starts a peer answering each request with `script(request body)`.
    pub async fn start(script: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> ChatPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let script: Arc<Script> = Arc::new(script);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicUsize::new(0));
        let hung_up = Arc::new(AtomicBool::new(false));
        let peer = ChatPeer {
            url,
            requests: requests.clone(),
            sent: sent.clone(),
            hung_up: hung_up.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (script, requests, sent, hung_up) = (
                    script.clone(),
                    requests.clone(),
                    sent.clone(),
                    hung_up.clone(),
                );
                tokio::spawn(async move {
                    let _ = serve(socket, script, requests, sent, hung_up).await;
                });
            }
        });
        peer
    }

    /// The request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(
    mut socket: tokio::net::TcpStream,
    script: Arc<Script>,
    requests: Arc<Mutex<Vec<Value>>>,
    sent: Arc<AtomicUsize>,
    hung_up: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while buffer.len() < head_end + length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body: Value =
        serde_json::from_slice(&buffer[head_end..head_end + length]).unwrap_or(Value::Null);
    requests.lock().unwrap().push(body.clone());
    let reply = script(&body);
    socket
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
        )
        .await?;
    let event = |value: Value| format!("data: {value}\n\n");
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "peer",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    socket.write_all(b": ping\n\n").await?;
    for piece in &reply.pieces {
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let written = socket
            .write_all(event(chunk(json!({"content": piece}), Value::Null)).as_bytes())
            .await
            .and(socket.flush().await);
        if written.is_err() {
            hung_up.store(true, Ordering::SeqCst);
            return Ok(());
        }
        sent.fetch_add(1, Ordering::SeqCst);
    }
    let completion = reply.pieces.len();
    let tail = format!(
        "{}{}data: [DONE]\n\n",
        event(chunk(json!({}), json!("stop"))),
        event(
            json!({"id": "c1", "object": "chat.completion.chunk", "choices": [],
                     "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": completion,
                               "total_tokens": reply.prompt_tokens + completion}})
        ),
    );
    socket.write_all(tail.as_bytes()).await?;
    socket.shutdown().await
}
