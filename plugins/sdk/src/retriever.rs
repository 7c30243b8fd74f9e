//! Bindings and helpers for the `retriever` world.

wit_bindgen::generate!({
    path: "../../wit",
    world: "retriever",
    pub_export_macro: true,
    export_macro_name: "export",
    default_bindings_module: "medmemory_plugin_sdk::retriever",
});

pub use exports::medmemory::plugin::evidence_retriever::{Evidence, Guest, Query, Ranked};
pub use medmemory::plugin::records::{RecordsRequest, StoredRecord, query as records};
pub use medmemory::plugin::search::{Hit, SearchMode, SearchRequest, search};

shared_helpers!();

impl PluginInfo {
    /// Describes a retriever.
    pub fn retriever(name: &str, version: &str, description: &str) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            kind: PluginKind::Retriever,
            description: description.into(),
            media_types: Vec::new(),
        }
    }
}

impl SearchRequest {
    /// A search for `query` in `mode`, unfiltered, at most `limit` hits.
    pub fn new(query: &str, mode: SearchMode, limit: u32) -> SearchRequest {
        SearchRequest {
            query: query.to_owned(),
            mode,
            kinds: Vec::new(),
            since: None,
            until: None,
            limit,
        }
    }

    /// Only chunks stating records of these kinds.
    pub fn kinds(mut self, kinds: &[RecordKind]) -> SearchRequest {
        self.kinds = kinds.to_vec();
        self
    }
}

impl RecordsRequest {
    /// Records of these kinds (all when empty), newest first, at most `limit`.
    pub fn of(kinds: &[RecordKind], limit: u32) -> RecordsRequest {
        RecordsRequest {
            kinds: kinds.to_vec(),
            codes: Vec::new(),
            terms: Vec::new(),
            active_only: false,
            latest_per_code: false,
            since: None,
            limit,
        }
    }
}

impl Ranked {
    /// A chunk `search` returned, ranked.
    pub fn chunk(id: &str, score: f32, explanation: Option<String>) -> Ranked {
        Ranked {
            evidence: Evidence::Chunk(id.to_owned()),
            score,
            explanation,
        }
    }

    /// A record `records` returned, ranked.
    pub fn record(id: &str, score: f32, explanation: Option<String>) -> Ranked {
        Ranked {
            evidence: Evidence::Record(id.to_owned()),
            score,
            explanation,
        }
    }

    /// The id this result points at, chunk or record.
    pub fn id(&self) -> &str {
        match &self.evidence {
            Evidence::Chunk(id) | Evidence::Record(id) => id,
        }
    }
}
