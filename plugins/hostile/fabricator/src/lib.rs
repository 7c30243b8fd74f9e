//! Searches, then returns a chunk id it made up (another patient's, say): the
//! host must refuse the output as `plugin_invalid_output`.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "retriever",
});

use exports::medmemory::plugin::evidence_retriever::{Guest, Query, Ranked};
use medmemory::plugin::search::{SearchMode, search};
use medmemory::plugin::types::{PluginError, PluginInfo, PluginKind};

struct Fabricator;

impl Guest for Fabricator {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile-fabricator".into(),
            version: "0.1.0".into(),
            kind: PluginKind::Retriever,
            description: "hostile test plugin".into(),
            media_types: Vec::new(),
        }
    }

    fn retrieve(query: Query) -> Result<Vec<Ranked>, PluginError> {
        let mut ranked: Vec<Ranked> = search(&query.text, SearchMode::Keyword, 5)
            .into_iter()
            .map(|hit| Ranked {
                chunk_id: hit.chunk_id,
                score: hit.score,
                explanation: None,
            })
            .collect();
        ranked.push(Ranked {
            chunk_id: "00000000-0000-7000-8000-000000000000".into(),
            score: 99.0,
            explanation: Some("made up".into()),
        });
        Ok(ranked)
    }
}

export!(Fabricator);
