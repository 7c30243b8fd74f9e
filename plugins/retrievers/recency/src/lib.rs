//! `recency`: hybrid search, re-ranked so that recent evidence comes first
//! among evidence that speaks to the question. Each hit keeps its rank score
//! (reciprocal rank) and is weighted by its age against `now`: a half-life
//! of 365 days by default (the clinic's `half_life_days` setting), 90 days
//! when the question asks for the latest, last, current or recent state.
//! Undated text (notes) weighs as if it were one half-life old.

use medmemory_plugin_sdk::retriever::{
    Guest, Hit, PluginError, PluginInfo, Query, Ranked, SearchMode, SearchRequest, config, search,
};
use medmemory_plugin_sdk::values::epoch_day;

/// The reciprocal-rank constant: larger values flatten the rank scores.
const RRF_K: f32 = 60.0;
const DEFAULT_HALF_LIFE_DAYS: f32 = 365.0;
const RECENT_HALF_LIFE_DAYS: f32 = 90.0;

struct Recency;

impl Guest for Recency {
    fn describe() -> PluginInfo {
        PluginInfo::retriever(
            "recency",
            env!("CARGO_PKG_VERSION"),
            "Hybrid search with recent evidence boosted (half-life per clinic).",
        )
    }

    fn retrieve(query: Query) -> Result<Vec<Ranked>, PluginError> {
        if query.text.trim().is_empty() {
            return Err(PluginError::invalid("the question is empty"));
        }
        let half_life = match config::get("half_life_days") {
            Some(v) => v
                .parse::<f32>()
                .ok()
                .filter(|d| d.is_finite() && *d > 0.0)
                .ok_or_else(|| PluginError::invalid("half_life_days must be a positive number"))?,
            None if asks_for_latest(&query.text) => RECENT_HALF_LIFE_DAYS,
            None => DEFAULT_HALF_LIFE_DAYS,
        };
        let text = match query.history.last() {
            Some(previous) => format!("{previous} {}", query.text),
            None => query.text.clone(),
        };
        let pool = query.limit.saturating_mul(4).clamp(1, 50);
        let hits = search(&SearchRequest::new(&text, SearchMode::Hybrid, pool));
        let today = epoch_day(&query.now);
        let mut ranked = rerank(&hits, today, half_life);
        ranked.truncate(query.limit as usize);
        Ok(ranked)
    }
}

medmemory_plugin_sdk::retriever::export!(Recency);

/// Whether a question asks for the newest state of something.
pub fn asks_for_latest(question: &str) -> bool {
    let q = question.to_lowercase();
    [
        "latest",
        "last",
        "most recent",
        "recent",
        "current",
        "now",
        "newest",
        "today",
    ]
    .iter()
    .any(|w| {
        q.split(|c: char| !c.is_alphanumeric())
            .collect::<Vec<_>>()
            .windows(w.split(' ').count())
            .any(|win| win.join(" ") == *w)
    })
}

/// Hits weighted by rank and age, best first.
pub fn rerank(hits: &[Hit], today: Option<i64>, half_life_days: f32) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = hits
        .iter()
        .enumerate()
        .map(|(rank, hit)| {
            let relevance = 1.0 / (RRF_K + rank as f32 + 1.0);
            let age = match (today, hit.effective.as_deref().and_then(epoch_day)) {
                (Some(today), Some(day)) => Some((today - day).max(0) as f32),
                _ => None,
            };
            let weight = 0.5f32.powf(age.unwrap_or(half_life_days) / half_life_days);
            let why = match (&hit.effective, age) {
                (Some(when), Some(age)) => format!("dated {when}, {age:.0} days old"),
                _ => "undated".to_owned(),
            };
            Ranked::chunk(&hit.chunk_id, relevance * (0.5 + weight), Some(why))
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use medmemory_plugin_sdk::retriever::RecordKind;

    fn hit(id: &str, effective: Option<&str>) -> Hit {
        Hit {
            chunk_id: id.into(),
            document_id: None,
            record_id: None,
            kind: RecordKind::Observation,
            score: 1.0,
            similarity: None,
            text: String::new(),
            section: None,
            effective: effective.map(str::to_owned),
        }
    }

    #[test]
    fn newer_evidence_overtakes_older_evidence_ranked_just_above_it() {
        let hits = [
            hit("old", Some("2019-01-01")),
            hit("new", Some("2024-12-01")),
            hit("undated", None),
        ];
        let today = epoch_day("2025-01-01T00:00:00Z");
        let ranked = rerank(&hits, today, 90.0);
        let order: Vec<&str> = ranked.iter().map(|r| r.id()).collect();
        assert_eq!(order, ["new", "undated", "old"]);
    }

    #[test]
    fn latest_questions_are_recognised() {
        assert!(asks_for_latest("What was the last A1c?"));
        assert!(asks_for_latest("most recent potassium"));
        assert!(!asks_for_latest("Has she ever had a blast crisis?"));
    }
}
