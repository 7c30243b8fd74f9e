//! `search`: a retriever's only way to more patient data. The function behind
//! it is built by the caller already scoped to one clinic and patient; the
//! host counts the searches of a call and remembers which chunk ids it handed
//! out, so a retriever can only rank what it was given.

use crate::plugins::bindings::search;
use crate::plugins::sandbox::CallState;

/// Host searches one retriever call may make.
pub const MAX_SEARCHES_PER_CALL: u32 = 16;
/// Hits one host search returns at most.
pub const MAX_HITS_PER_SEARCH: u32 = 50;

impl search::Host for CallState {
    fn search(&mut self, query: String, mode: search::SearchMode, limit: u32) -> Vec<search::Hit> {
        self.searches += 1;
        if self.searches > MAX_SEARCHES_PER_CALL {
            return Vec::new();
        }
        let Some(search) = self.search.as_mut() else {
            return Vec::new();
        };
        let hits = search(&query, mode, limit.min(MAX_HITS_PER_SEARCH));
        self.handed_out
            .extend(hits.iter().map(|h| h.chunk_id.clone()));
        hits
    }
}
