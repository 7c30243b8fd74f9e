//! `search` and `records`: a retriever's only ways to more patient data. The
//! [`PatientMemory`](crate::plugins::sandbox::PatientMemory) behind them is
//! built by the caller already scoped to one clinic and patient; the host
//! counts the lookups of a call, caps their size, and remembers which chunk
//! and record ids it handed out, so a retriever can only rank what it was
//! given.

use crate::plugins::bindings::{records, search};
use crate::plugins::sandbox::CallState;

/// Host lookups (searches and record reads) one retriever call may make.
pub const MAX_LOOKUPS_PER_CALL: u32 = 16;
/// Hits one host search returns at most.
pub const MAX_HITS_PER_SEARCH: u32 = 50;
/// Records one read returns at most.
pub const MAX_RECORDS_PER_READ: u32 = 100;
/// Longest query text, terms list or code list a lookup may carry.
const MAX_QUERY_BYTES: usize = 4096;
const MAX_TERMS: usize = 64;

impl CallState {
    /// Counts a lookup; false once the call has made too many.
    fn admit_lookup(&mut self) -> bool {
        self.lookups += 1;
        self.lookups <= MAX_LOOKUPS_PER_CALL && self.memory.is_some()
    }
}

impl search::Host for CallState {
    fn search(&mut self, mut request: search::SearchRequest) -> Vec<search::Hit> {
        if !self.admit_lookup() || request.query.trim().is_empty() {
            return Vec::new();
        }
        if request.query.len() > MAX_QUERY_BYTES {
            let cut = crate::plugins::output::truncate(&request.query, MAX_QUERY_BYTES).len();
            request.query.truncate(cut);
        }
        request.limit = request.limit.clamp(1, MAX_HITS_PER_SEARCH);
        let Some(memory) = self.memory.as_mut() else {
            return Vec::new();
        };
        let hits = memory.search(&request);
        self.chunks_handed_out
            .extend(hits.iter().map(|h| h.chunk_id.clone()));
        hits
    }
}

impl records::Host for CallState {
    fn query(&mut self, mut request: records::RecordsRequest) -> Vec<records::StoredRecord> {
        if !self.admit_lookup() {
            return Vec::new();
        }
        request.limit = request.limit.clamp(1, MAX_RECORDS_PER_READ);
        request.terms.truncate(MAX_TERMS);
        request.codes.truncate(MAX_TERMS);
        let too_long =
            |list: &[String]| list.iter().map(String::len).sum::<usize>() > MAX_QUERY_BYTES;
        if too_long(&request.terms) || too_long(&request.codes) {
            return Vec::new();
        }
        let Some(memory) = self.memory.as_mut() else {
            return Vec::new();
        };
        let found = memory.records(&request);
        self.records_handed_out
            .extend(found.iter().map(|r| r.record_id.clone()));
        found
    }
}
