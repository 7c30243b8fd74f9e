//! `bench answers`: the burn decoder against an OpenAI-compatible peer
//! (llama.cpp's `llama-server` on the same GGUF and thread count) on the
//! same prompt: time to first token for a long prompt, prefill and decode
//! tokens/s, and the process's peak RSS.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use medmemory::ml::llm::{Llm, Message, Role, Sampling};
use medmemory::rag::generator::{Generator, Request};
use tokio::sync::mpsc;

use crate::median;

/// Decode length measured.
const DECODE: usize = 64;
/// Runs per figure.
const RUNS: usize = 3;

/// A clinical prompt of about `tokens` tokens.
fn long_prompt(llm: &Llm, tokens: usize) -> anyhow::Result<Vec<Message>> {
    let line = "2024-03-05 HbA1c 7.2 %, fasting glucose 7.8 mmol/L, creatinine 88 umol/L, \
        eGFR 71 mL/min/1.73m2; metformin 500 mg twice daily continued; blood pressure 132/84.";
    let mut evidence = String::new();
    let mut n = 1;
    loop {
        let messages = vec![
            Message::new(Role::System, "You are a clinical assistant. Be brief."),
            Message::new(
                Role::User,
                format!("Evidence:\n{evidence}\nQuestion: Summarise the diabetes care."),
            ),
        ];
        if llm.tokenizer.chat(&messages)?.len() >= tokens {
            return Ok(messages);
        }
        evidence.push_str(&format!("[{n}] \"{line}\"\n"));
        n += 1;
    }
}

/// Peak resident set of this process, in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

pub async fn run(
    models: &Path,
    prompt_tokens: usize,
    peer: Option<String>,
    prompt_out: Option<&Path>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let llm = Llm::load(models).context("loading the generator (run `cargo xtask models`)")?;
    let load = started.elapsed();
    let messages = long_prompt(&llm, prompt_tokens)?;
    let prompt = llm.tokenizer.chat(&messages)?;
    if let Some(path) = prompt_out {
        let json: Vec<_> = messages
            .iter()
            .map(|m| {
                let role = if m.role == Role::System {
                    "system"
                } else {
                    "user"
                };
                format!("{{\"role\":\"{role}\",\"content\":{:?}}}", m.content)
            })
            .collect();
        std::fs::write(path, format!("[{}]", json.join(",")))?;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "answers: SmolLM2-135M-Instruct Q4_1 (f32 weights in memory), {} prompt tokens, {DECODE} decoded, {threads} threads, median of {RUNS}",
        prompt.len()
    );
    println!("burn: load {:.2} s", load.as_secs_f64());
    let (mut ttft, mut prefill, mut decode) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let generation = llm.generate(&prompt, DECODE, Sampling::GREEDY, |_| {
            ControlFlow::Continue(())
        })?;
        let decoded = generation.tokens.len().saturating_sub(1).max(1);
        ttft.push(generation.prefill.as_secs_f64());
        prefill.push(prompt.len() as f64 / generation.prefill.as_secs_f64());
        decode.push(decoded as f64 / generation.decode.as_secs_f64().max(1e-9));
    }
    // Decode from a short prompt: the cost per token without a long cache.
    let short = llm
        .tokenizer
        .chat(&[Message::new(Role::User, "List ten fruits.")])?;
    let mut short_decode = Vec::new();
    for _ in 0..RUNS {
        let generation = llm.generate(&short, DECODE, Sampling::GREEDY, |_| {
            ControlFlow::Continue(())
        })?;
        let decoded = generation.tokens.len().saturating_sub(1).max(1);
        short_decode.push(decoded as f64 / generation.decode.as_secs_f64().max(1e-9));
    }
    let (burn_ttft, burn_prefill, burn_decode) = (median(ttft), median(prefill), median(decode));
    println!(
        "burn: time to first token {:.2} s, prefill {:.0} tok/s, decode {:.1} tok/s after the long prompt, {:.1} tok/s after a short one; peak RSS {:.0} MiB",
        burn_ttft,
        burn_prefill,
        burn_decode,
        median(short_decode),
        peak_rss_mib()
    );
    let Some(url) = peer else {
        println!("peer: none given (--peer URL of an OpenAI-compatible server)");
        return Ok(());
    };
    let settings = medmemory::config::Settings {
        generator: "openai".into(),
        generator_url: Some(url.clone()),
        ..Default::default()
    };
    let generator = Generator::from_settings(&settings, Default::default())?;
    let (mut ttft, mut decode) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        let (tx, mut rx) = mpsc::channel(1024);
        let started = Instant::now();
        // A different first token each run: llama-server would otherwise
        // reuse the cached prompt and skip the prefill being measured.
        let mut messages = messages.clone();
        messages[0].content = format!("Run {run}. {}", messages[0].content);
        let request = Request {
            messages,
            max_tokens: DECODE,
        };
        let drain = tokio::spawn(async move {
            let mut pieces = 0usize;
            while rx.recv().await.is_some() {
                pieces += 1;
            }
            pieces
        });
        let output = generator.generate(request, tx).await?;
        drain.await?;
        let total = started.elapsed().as_secs_f64();
        let first = output.first_token.map_or(total, |d| d.as_secs_f64());
        ttft.push(first);
        decode.push(
            output.completion_tokens.saturating_sub(1).max(1) as f64 / (total - first).max(1e-9),
        );
    }
    let (peer_ttft, peer_decode) = (median(ttft), median(decode));
    let peer_prefill = prompt.len() as f64 / peer_ttft;
    println!(
        "peer {url}: time to first token {peer_ttft:.2} s (prefill ≈ {peer_prefill:.0} tok/s, incl. HTTP), decode {peer_decode:.1} tok/s"
    );
    println!(
        "ratio burn/peer: prefill {:.2}×, decode {:.2}×",
        burn_prefill / peer_prefill,
        burn_decode / peer_decode
    );
    Ok(())
}
