//! `{{name}}`: a MedMemory retriever plugin.
//!
//! Scaffolded by `cargo xtask plugin new retriever {{name}}`. It asks the
//! host's patient-scoped `search` twice (keyword and vector) and fuses the two
//! rankings with reciprocal rank fusion. Only chunk ids that `search` (and
//! record ids that `records`) handed it during the call count; the host
//! ignores anything else.
//!
//! - Test it natively: `cargo test`
//! - Build the component: `cargo build --release --target wasm32-wasip2`
//! - Try it: `medmemory plugin run <target>/wasm32-wasip2/release/{{crate}}.wasm --input question.json`
//! - Install it: `medmemory plugin install <the .wasm>` or `POST /api/v1/plugins`

use std::collections::HashMap;

use medmemory_plugin_sdk::retriever::{
    Guest, Hit, PluginError, PluginInfo, Query, Ranked, SearchMode, SearchRequest, search,
};

/// The RRF constant: larger values flatten the difference between ranks.
const RRF_K: f32 = 60.0;

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo::retriever(
            "{{name}}",
            env!("CARGO_PKG_VERSION"),
            "Keyword and vector search fused with reciprocal rank fusion.",
        )
    }

    fn retrieve(query: Query) -> Result<Vec<Ranked>, PluginError> {
        if query.text.trim().is_empty() {
            return Err(PluginError::invalid("the question is empty"));
        }
        let pool = query.limit.saturating_mul(2).clamp(1, 50);
        let keyword = search(&SearchRequest::new(&query.text, SearchMode::Keyword, pool));
        let vector = search(&SearchRequest::new(&query.text, SearchMode::Vector, pool));
        Ok(fuse(&[keyword, vector], query.limit as usize))
    }
}

medmemory_plugin_sdk::retriever::export!(Plugin);

/// Reciprocal rank fusion of several rankings, best first.
pub fn fuse(rankings: &[Vec<Hit>], limit: usize) -> Vec<Ranked> {
    let mut scores: HashMap<&str, f32> = HashMap::new();
    for ranking in rankings {
        for (rank, hit) in ranking.iter().enumerate() {
            *scores.entry(hit.chunk_id.as_str()).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<Ranked> = scores
        .into_iter()
        .map(|(id, score)| {
            let why = "reciprocal rank fusion of keyword and vector search";
            Ranked::chunk(id, score, Some(why.into()))
        })
        .collect();
    fused.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id().cmp(b.id())));
    fused.truncate(limit);
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str) -> Hit {
        Hit {
            chunk_id: id.into(),
            document_id: Some("d".into()),
            record_id: None,
            kind: medmemory_plugin_sdk::retriever::RecordKind::Note,
            score: 1.0,
            similarity: None,
            text: String::new(),
            section: None,
            effective: None,
        }
    }

    #[test]
    fn agreement_between_rankings_wins() {
        let fused = fuse(&[vec![hit("a"), hit("b")], vec![hit("b"), hit("c")]], 2);
        assert_eq!(fused[0].id(), "b");
        assert_eq!(fused.len(), 2);
    }
}
