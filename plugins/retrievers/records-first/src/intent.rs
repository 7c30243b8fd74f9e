//! What a question asks the record for: a value (observations by code), a
//! list (records of one kind), or neither (search).

use medmemory_plugin_sdk::retriever::RecordKind;

use crate::vocab::{self, DRUG_CLASSES, RESULTS, has, has_stem};

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
pub fn intent_with_follow_up(previous: &str, follow_up: &str) -> Intent {
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
