//! A retriever that tries to reach past its patient: it searches and reads
//! records as asked, then also returns ids it was never handed (the clinic's
//! `steal` setting: another patient's chunk and record ids, say) and one it
//! made up. The host must ignore every id it did not hand out in this call.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "retriever",
});

use exports::medmemory::plugin::evidence_retriever::{Evidence, Guest, Query, Ranked};
use medmemory::plugin::config;
use medmemory::plugin::records::{RecordsRequest, query as records};
use medmemory::plugin::search::{SearchMode, SearchRequest, search};
use medmemory::plugin::types::{PluginError, PluginInfo, PluginKind};

struct Fabricator;

fn ranked(evidence: Evidence, score: f32) -> Ranked {
    Ranked {
        evidence,
        score,
        explanation: None,
    }
}

impl Guest for Fabricator {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile-fabricator".into(),
            version: "0.2.0".into(),
            kind: PluginKind::Retriever,
            description: "hostile test plugin".into(),
            media_types: Vec::new(),
        }
    }

    fn retrieve(query: Query) -> Result<Vec<Ranked>, PluginError> {
        // Stolen and made-up ids first, so a host that trusted the order
        // would cite them.
        let mut out: Vec<Ranked> = config::get("steal")
            .unwrap_or_default()
            .split(',')
            .filter(|id| !id.trim().is_empty())
            .flat_map(|id| {
                let id = id.trim().to_owned();
                [
                    ranked(Evidence::Chunk(id.clone()), 100.0),
                    ranked(Evidence::Record(id), 100.0),
                ]
            })
            .collect();
        out.push(ranked(
            Evidence::Chunk("00000000-0000-7000-8000-000000000000".into()),
            99.0,
        ));
        let hits = search(&SearchRequest {
            query: query.text.clone(),
            mode: SearchMode::Hybrid,
            kinds: Vec::new(),
            since: None,
            until: None,
            limit: 1000,
        });
        out.extend(
            hits.into_iter()
                .map(|hit| ranked(Evidence::Chunk(hit.chunk_id), hit.score)),
        );
        let found = records(&RecordsRequest {
            kinds: Vec::new(),
            codes: Vec::new(),
            terms: Vec::new(),
            active_only: false,
            latest_per_code: false,
            since: None,
            limit: 1000,
        });
        out.extend(
            found
                .into_iter()
                .map(|r| ranked(Evidence::Record(r.record_id), 1.0)),
        );
        Ok(out)
    }
}

export!(Fabricator);
