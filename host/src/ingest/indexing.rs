//! From committed text to vector rows: embeds chunks in batches off the async
//! runtime, reusing the vectors cached for the same text of the same patient
//! and model, and caching the new ones.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::db::Db;
use crate::db::chunks::Chunk;
use crate::db::embeddings::text_key;
use crate::memory::VectorRow;
use crate::ml::{Embedder, MODEL_ID};

/// A chunk text and its embedding, remembered for reuse.
type TextVector = (String, Vec<f32>);

/// Texts per model call: large enough to amortise, small enough that other
/// work on the blocking pool is never held up for long.
pub const BATCH: usize = 16;

/// Why indexing failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The model failed.
    #[error("the embedding model failed: {0}")]
    Model(String),
}

/// The text embedded for a chunk: its section title gives it context.
pub fn embed_text(section: Option<&str>, text: &str) -> String {
    match section {
        Some(title) => format!("{title}: {text}"),
        None => text.to_owned(),
    }
}

/// Embeds `chunks` (of any patients of one clinic) and returns their rows, in
/// the order given. Returns how many vectors came from the cache.
pub async fn vector_rows(
    db: &Db,
    embedder: &Arc<Embedder>,
    chunks: &[Chunk],
) -> Result<(Vec<VectorRow>, usize), IndexError> {
    let texts: Vec<String> = chunks
        .iter()
        .map(|c| embed_text(c.section.as_deref(), &c.text))
        .collect();
    let keys: Vec<String> = texts.iter().map(|t| text_key(t)).collect();

    // Cached vectors, per patient.
    let mut by_patient: HashMap<(Uuid, Uuid), Vec<String>> = HashMap::new();
    for (chunk, key) in chunks.iter().zip(&keys) {
        by_patient
            .entry((chunk.clinic_id, chunk.patient_id))
            .or_default()
            .push(key.clone());
    }
    let mut cached: HashMap<(Uuid, String), Vec<f32>> = HashMap::new();
    for ((clinic, patient), patient_keys) in &by_patient {
        for (key, vector) in db
            .cached_embeddings(*clinic, *patient, MODEL_ID, patient_keys)
            .await?
        {
            cached.insert((*patient, key), vector);
        }
    }

    // The rest through the model, a batch at a time.
    let mut missing: Vec<usize> = (0..chunks.len())
        .filter(|&i| !cached.contains_key(&(chunks[i].patient_id, keys[i].clone())))
        .collect();
    // Texts of similar length share a batch, so a batch pads little.
    missing.sort_by_key(|&i| texts[i].len());
    let reused = chunks.len() - missing.len();
    let mut fresh: HashMap<usize, Vec<f32>> = HashMap::new();
    for batch in missing.chunks(BATCH) {
        let inputs: Vec<String> = batch.iter().map(|&i| texts[i].clone()).collect();
        let model = embedder.clone();
        let vectors = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            model.embed(&refs)
        })
        .await
        .map_err(|e| IndexError::Model(e.to_string()))?
        .map_err(|e| IndexError::Model(e.to_string()))?;
        if vectors.len() != batch.len() {
            return Err(IndexError::Model(
                "the model returned too few vectors".into(),
            ));
        }
        let mut remember: HashMap<(Uuid, Uuid), Vec<TextVector>> = HashMap::new();
        for (&i, vector) in batch.iter().zip(vectors) {
            remember
                .entry((chunks[i].clinic_id, chunks[i].patient_id))
                .or_default()
                .push((keys[i].clone(), vector.clone()));
            fresh.insert(i, vector);
        }
        for ((clinic, patient), items) in remember {
            db.cache_embeddings(clinic, patient, MODEL_ID, &items)
                .await?;
        }
    }

    let rows = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let vector = fresh
                .remove(&i)
                .or_else(|| cached.get(&(c.patient_id, keys[i].clone())).cloned())
                .unwrap_or_default();
            VectorRow {
                chunk_id: c.id,
                patient_id: c.patient_id,
                document_id: c.document_id,
                record_id: c.record_id,
                kind: c.kind.clone(),
                effective_at: c.effective_at,
                text: embed_text(c.section.as_deref(), &c.text),
                vector,
            }
        })
        .collect();
    Ok((rows, reused))
}
