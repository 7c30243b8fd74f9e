//! `hybrid`, the default retriever: the host's hybrid search (vector and
//! keyword, fused by reciprocal rank), in the order the host ranks it. The
//! smallest useful retriever, and the one to copy.

use medmemory_plugin_sdk::retriever::{
    Guest, PluginError, PluginInfo, Query, Ranked, SearchMode, SearchRequest, search,
};

struct Hybrid;

impl Guest for Hybrid {
    fn describe() -> PluginInfo {
        PluginInfo::retriever(
            "hybrid",
            env!("CARGO_PKG_VERSION"),
            "The host's hybrid search: vector and keyword, fused by reciprocal rank.",
        )
    }

    fn retrieve(query: Query) -> Result<Vec<Ranked>, PluginError> {
        if query.text.trim().is_empty() {
            return Err(PluginError::invalid("the question is empty"));
        }
        let hits = search(&SearchRequest::new(
            &query_text(&query),
            SearchMode::Hybrid,
            query.limit,
        ));
        Ok(hits
            .iter()
            .map(|hit| Ranked::chunk(&hit.chunk_id, hit.score, None))
            .collect())
    }
}

/// The text to search: a follow-up carries the question before it, so "and
/// before that?" still finds what the conversation is about.
pub fn query_text(query: &Query) -> String {
    match query.history.last() {
        Some(previous) => format!("{previous} {}", query.text),
        None => query.text.clone(),
    }
}

medmemory_plugin_sdk::retriever::export!(Hybrid);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follow_up_searches_with_the_question_before_it() {
        let mut query = Query {
            text: "and before that?".into(),
            history: Vec::new(),
            limit: 5,
            now: "2025-01-01T00:00:00Z".into(),
        };
        assert_eq!(query_text(&query), "and before that?");
        query.history = vec!["first".into(), "last A1c".into()];
        assert_eq!(query_text(&query), "last A1c and before that?");
    }
}
