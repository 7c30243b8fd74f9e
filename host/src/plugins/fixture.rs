//! A patient memory made of given chunks and records, for running a
//! retriever without a server (`medmemory plugin run`) and in tests: search
//! is a naive word match, records are filtered the way the host filters them.

use serde::Deserialize;

use super::bindings::{records, search, types};
use super::sandbox::PatientMemory;

/// Chunks and records standing in for one patient's memory.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FixtureMemory {
    /// What `search` searches (scores are recomputed).
    #[serde(default)]
    pub chunks: Vec<search::Hit>,
    /// What `records` reads.
    #[serde(default)]
    pub records: Vec<records::StoredRecord>,
    /// Every request made, for tests: `search:<query>` or `records`.
    #[serde(skip)]
    pub calls: Vec<String>,
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
        .collect()
}

impl PatientMemory for FixtureMemory {
    fn search(&mut self, request: &search::SearchRequest) -> Vec<search::Hit> {
        self.calls.push(format!("search:{}", request.query));
        let words = words(&request.query);
        let mut scored: Vec<search::Hit> = self
            .chunks
            .iter()
            .filter(|c| request.kinds.is_empty() || request.kinds.contains(&c.kind))
            .map(|c| {
                let text = c.text.to_lowercase();
                let score = words.iter().filter(|w| text.contains(w.as_str())).count() as f32;
                search::Hit { score, ..c.clone() }
            })
            .filter(|h| h.score > 0.0)
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score));
        scored.truncate(request.limit as usize);
        scored
    }

    fn records(&mut self, request: &records::RecordsRequest) -> Vec<records::StoredRecord> {
        self.calls.push("records".into());
        let mut found: Vec<records::StoredRecord> = self
            .records
            .iter()
            .filter(|r| matches(&r.record, request))
            .cloned()
            .collect();
        found.sort_by(|a, b| b.record.effective.cmp(&a.record.effective));
        found.truncate(request.limit as usize);
        found
    }
}

fn matches(r: &types::ClinicalRecord, q: &records::RecordsRequest) -> bool {
    let display = r.display.to_lowercase();
    (q.kinds.is_empty() || q.kinds.contains(&r.kind))
        && (q.codes.is_empty() || r.codes.iter().any(|c| q.codes.contains(&c.code)))
        && (q.terms.is_empty() || q.terms.iter().any(|t| display.contains(&t.to_lowercase())))
}
