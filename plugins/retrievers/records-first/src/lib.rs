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

mod vocab;

use medmemory_plugin_sdk::retriever::{
    Guest, PluginError, PluginInfo, Query, Ranked, RecordKind, RecordsRequest, SearchMode,
    SearchRequest, StoredRecord, records, search,
};
use vocab::{DRUG_CLASSES, RESULTS, has, has_stem};

struct RecordsFirst;

/// What a question asks the record for.
#[derive(Debug, PartialEq)]
pub enum Intent {
    /// Observations with these codes or display words.
    Values {
        codes: Vec<String>,
        terms: Vec<String>,
        latest: bool,
    },
    /// Records of one kind, narrowed to these display words if any.
    List {
        kind: RecordKind,
        terms: Vec<String>,
        active: bool,
        latest: bool,
    },
    /// Not a value or list question.
    Search,
}

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

fn asks_latest(q: &str) -> bool {
    [
        "latest",
        "last",
        "most recent",
        "recent",
        "current",
        "currently",
        "newest",
        "now",
        "today",
    ]
    .iter()
    .any(|w| has(q, w))
}

/// What `question` asks for.
pub fn intent(question: &str) -> Intent {
    let q = question.to_lowercase();
    let latest = asks_latest(&q);
    let active = ["current", "currently", "active", "now", "taking", "takes"]
        .iter()
        .any(|w| has(&q, w))
        && !has(&q, "ever");
    if has_stem(&q, &["allerg"]) {
        return list(RecordKind::Allergy, Vec::new(), false, false);
    }
    let about_drugs = has_stem(
        &q,
        &["medication", "medicine", "meds", "drug", "prescri", "pill"],
    ) || has(&q, "given for")
        || has(&q, "taking")
        || has(&q, "take for");
    if about_drugs {
        let terms: Vec<String> = DRUG_CLASSES
            .iter()
            .filter(|c| c.words.iter().any(|w| has(&q, w)))
            .flat_map(|c| c.drugs.iter().map(|d| (*d).to_owned()))
            .collect();
        return list(
            RecordKind::Medication,
            terms,
            active && !has(&q, "given"),
            false,
        );
    }
    if has_stem(
        &q,
        &[
            "visit",
            "appointment",
            "encounter",
            "admission",
            "admitted",
            "hospitali",
        ],
    ) || has(&q, "seen")
    {
        return list(RecordKind::Encounter, Vec::new(), false, latest);
    }
    if has_stem(&q, &["condition", "problem", "diagnos", "disease"]) {
        return list(RecordKind::Condition, Vec::new(), active, false);
    }
    let matched: Vec<&vocab::Result> = RESULTS
        .iter()
        .filter(|r| r.words.iter().any(|w| has(&q, w)))
        .collect();
    // The most specific name wins: "ldl cholesterol" is LDL, not total.
    let matched = match matched.first() {
        Some(first) if matched.len() > 1 && has(&q, "cholesterol") => vec![*first],
        _ => matched,
    };
    if matched.is_empty() {
        return Intent::Search;
    }
    Intent::Values {
        codes: matched
            .iter()
            .flat_map(|r| r.loinc.iter().map(|c| (*c).to_owned()))
            .collect(),
        terms: matched
            .iter()
            .flat_map(|r| r.display.iter().map(|d| (*d).to_owned()))
            .collect(),
        latest,
    }
}

fn list(kind: RecordKind, terms: Vec<String>, active: bool, latest: bool) -> Intent {
    Intent::List {
        kind,
        terms,
        active,
        latest,
    }
}

/// A follow-up's intent: the previous question's topic, with the follow-up
/// deciding whether only the latest is wanted ("and before that?" is not).
fn intent_with_follow_up(previous: &str, follow_up: &str) -> Intent {
    let latest = asks_latest(&follow_up.to_lowercase());
    match intent(previous) {
        Intent::Values { codes, terms, .. } => Intent::Values {
            codes,
            terms,
            latest,
        },
        other => other,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn values(question: &str) -> (Vec<String>, bool) {
        match intent(question) {
            Intent::Values { codes, latest, .. } => (codes, latest),
            other => panic!("{question}: {other:?}"),
        }
    }

    #[test]
    fn value_questions_name_codes() {
        let (codes, latest) = values("What was the last A1c?");
        assert!(codes.contains(&"4548-4".to_owned()) && latest);
        let (codes, latest) = values("How has her LDL cholesterol changed?");
        assert!(codes.contains(&"13457-7".to_owned()) && !codes.contains(&"2093-3".to_owned()));
        assert!(!latest);
        assert_eq!(
            intent("Tell me about the discharge summary"),
            Intent::Search
        );
    }

    #[test]
    fn list_questions_name_kinds() {
        assert!(matches!(
            intent("What are his current medications?"),
            Intent::List {
                kind: RecordKind::Medication,
                active: true,
                ..
            }
        ));
        match intent("What has he been given for pain?") {
            Intent::List {
                kind: RecordKind::Medication,
                terms,
                active: false,
                ..
            } => {
                assert!(terms.contains(&"ibuprofen".to_owned()));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            intent("Any allergies?"),
            Intent::List {
                kind: RecordKind::Allergy,
                ..
            }
        ));
        assert!(matches!(
            intent("When was the last visit?"),
            Intent::List {
                kind: RecordKind::Encounter,
                latest: true,
                ..
            }
        ));
    }

    #[test]
    fn a_follow_up_keeps_the_topic() {
        match intent_with_follow_up("What was the last potassium?", "And before that?") {
            Intent::Values {
                codes,
                latest: false,
                ..
            } => assert!(codes.contains(&"2823-3".to_owned())),
            other => panic!("{other:?}"),
        }
    }
}
