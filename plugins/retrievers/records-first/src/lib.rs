//! `records-first`: value and list questions answered from the structured
//! record, everything else from search.
//!
//! - "last A1c", "what was her potassium": observations by LOINC code (and
//!   display words, for sources without codes), the newest per code when the
//!   question asks for the latest, else the history newest first.
//! - "current medications", "what has he been given for pain", "allergies",
//!   "active problems", "when was the last visit": records by kind, active
//!   only when the question says current, narrowed to the drugs given for a
//!   complaint when it names one.
//! - Anything else, or nothing found: the host's hybrid search.
//!
//! When every result is a record, the host may compose the answer from the
//! records themselves (value, unit, date, range) without a model.

mod intent;
mod vocab;

use intent::{Intent, intent, intent_with_follow_up};
use medmemory_plugin_sdk::retriever::{
    Guest, PluginError, PluginInfo, Query, Ranked, RecordKind, RecordsRequest, SearchMode,
    SearchRequest, StoredRecord, records, search,
};

struct RecordsFirst;

impl Guest for RecordsFirst {
    fn describe() -> PluginInfo {
        PluginInfo::retriever(
            "records-first",
            env!("CARGO_PKG_VERSION"),
            "Value and list questions from structured records (latest by code, active by kind); search otherwise.",
        )
    }

    fn retrieve(query: Query) -> Result<Vec<Ranked>, PluginError> {
        if query.text.trim().is_empty() {
            return Err(PluginError::invalid("the question is empty"));
        }
        let mut intent = intent(&query.text);
        // A follow-up without a topic of its own ("and before that?") keeps
        // the previous question's.
        if intent == Intent::Search
            && let Some(previous) = query.history.last()
        {
            intent = intent_with_follow_up(previous, &query.text);
        }
        let found = read(&intent, query.limit);
        if !found.is_empty() {
            let why = explanation(&intent);
            return Ok(found
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    Ranked::record(&r.record_id, 1.0 - i as f32 * 0.01, Some(why.clone()))
                })
                .collect());
        }
        let text = match query.history.last() {
            Some(previous) => format!("{previous} {}", query.text),
            None => query.text.clone(),
        };
        Ok(
            search(&SearchRequest::new(&text, SearchMode::Hybrid, query.limit))
                .iter()
                .map(|hit| Ranked::chunk(&hit.chunk_id, hit.score, None))
                .collect(),
        )
    }
}

medmemory_plugin_sdk::retriever::export!(RecordsFirst);

fn request(kinds: &[RecordKind], limit: u32) -> RecordsRequest {
    RecordsRequest::of(kinds, limit)
}

/// The records `intent` asks for, newest first.
fn read(intent: &Intent, limit: u32) -> Vec<StoredRecord> {
    match intent {
        Intent::Values {
            codes,
            terms,
            latest,
        } => {
            let by_code = RecordsRequest {
                codes: codes.clone(),
                latest_per_code: *latest,
                ..request(&[RecordKind::Observation], limit)
            };
            let mut found = records(&by_code);
            if found.is_empty() {
                let by_name = RecordsRequest {
                    terms: terms.clone(),
                    latest_per_code: *latest,
                    ..request(&[RecordKind::Observation], limit)
                };
                found = records(&by_name);
            }
            // The latest of several codes for one result: the newest only.
            if *latest && found.len() > 1 {
                found.sort_by(|a, b| b.record.effective.cmp(&a.record.effective));
                found.truncate(1);
            }
            found
        }
        Intent::List {
            kind,
            terms,
            active,
            latest,
        } => {
            let read = RecordsRequest {
                terms: terms.clone(),
                active_only: *active,
                ..request(&[*kind], if *latest { 1 } else { limit })
            };
            records(&read)
        }
        Intent::Search => Vec::new(),
    }
}

fn explanation(intent: &Intent) -> String {
    match intent {
        Intent::Values { latest: true, .. } => "the latest result with this code".into(),
        Intent::Values { .. } => "results with this code, newest first".into(),
        Intent::List { kind, active, .. } => {
            let kind = format!("{kind:?}").to_lowercase();
            if *active {
                format!("active {kind} records")
            } else {
                format!("{kind} records, newest first")
            }
        }
        Intent::Search => String::new(),
    }
}
