//! Contract 0.1, still run: the host side of its imports (each delegates to
//! the current one) and the conversions between its types and the current
//! ones. `types` and the parser interface did not change between 0.1 and 0.2,
//! so their values convert field by field through serde ([`same`]); what
//! changed (rule requests and cards, retriever queries, results and search)
//! is converted by hand.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::bindings::v0_1;
use super::bindings::{clinical_rules, evidence_retriever, log, search, types};
use super::sandbox::CallState;

/// Converts between two generated types of the same shape (the same WIT
/// type in two package versions).
pub(super) fn same<A: Serialize, B: DeserializeOwned>(value: &A) -> B {
    serde_json::to_value(value)
        .and_then(serde_json::from_value)
        .unwrap_or_else(|e| unreachable!("0.1 and 0.2 types share a shape: {e}"))
}

/// A 0.1 plugin's error as the current type.
pub(super) fn error(e: v0_1::types::PluginError) -> types::PluginError {
    same(&e)
}

/// The request a 0.1 rule understands: records without ids, no hook context.
pub(super) fn hook_request(r: &clinical_rules::HookRequest) -> v0_1::clinical_rules::HookRequest {
    v0_1::clinical_rules::HookRequest {
        service_id: r.service_id.clone(),
        hook: r.hook.clone(),
        hook_instance: r.hook_instance.clone(),
        now: r.now.clone(),
        patient: v0_1::clinical_rules::PatientContext {
            id: r.patient.id.clone(),
            birth_date: r.patient.birth_date.clone(),
            sex: r.patient.sex.clone(),
            records: r.patient.records.iter().map(|p| same(&p.record)).collect(),
        },
    }
}

/// A 0.1 rule's cards as a current evaluation: links are pages, and cards
/// with suggestions let the clinician pick any of them.
pub(super) fn evaluation(cards: Vec<v0_1::clinical_rules::Card>) -> clinical_rules::Evaluation {
    use clinical_rules as now;
    let cards = cards
        .into_iter()
        .map(|c| now::Card {
            selection_behavior: (!c.suggestions.is_empty()).then_some(now::SelectionBehavior::Any),
            uuid: c.uuid,
            summary: c.summary,
            indicator: same(&c.indicator),
            detail: c.detail,
            source: same(&c.source),
            suggestions: c.suggestions.iter().map(same).collect(),
            override_reasons: Vec::new(),
            links: c
                .links
                .into_iter()
                .map(|l| now::Link {
                    label: l.label,
                    url: l.url,
                    link_type: now::LinkType::Absolute,
                    app_context: None,
                })
                .collect(),
            evidence: Vec::new(),
        })
        .collect();
    now::Evaluation {
        cards,
        system_actions: Vec::new(),
    }
}

/// A 0.1 rule's services: no prefetch, no usage requirements.
pub(super) fn services(
    services: Vec<v0_1::clinical_rules::Service>,
) -> Vec<clinical_rules::Service> {
    services
        .into_iter()
        .map(|s| clinical_rules::Service {
            id: s.id,
            hook: s.hook,
            title: s.title,
            description: s.description,
            prefetch: Vec::new(),
            usage_requirements: None,
        })
        .collect()
}

/// The query a 0.1 retriever understands.
pub(super) fn query(q: &evidence_retriever::Query) -> v0_1::evidence_retriever::Query {
    v0_1::evidence_retriever::Query {
        text: q.text.clone(),
        limit: q.limit,
        now: q.now.clone(),
    }
}

/// A 0.1 retriever's results: chunk ids only.
pub(super) fn ranked(r: Vec<v0_1::evidence_retriever::Ranked>) -> Vec<evidence_retriever::Ranked> {
    r.into_iter()
        .map(|r| evidence_retriever::Ranked {
            evidence: evidence_retriever::Evidence::Chunk(r.chunk_id),
            score: r.score,
            explanation: r.explanation,
        })
        .collect()
}

impl v0_1::types::Host for CallState {}

impl v0_1::log::Host for CallState {
    fn log(&mut self, level: v0_1::log::Level, message: String) {
        log::Host::log(self, same(&level), message)
    }
}

impl v0_1::config::Host for CallState {
    fn get(&mut self, key: String) -> Option<String> {
        super::bindings::config::Host::get(self, key)
    }

    fn all(&mut self) -> Vec<(String, String)> {
        super::bindings::config::Host::all(self)
    }
}

impl v0_1::search::Host for CallState {
    fn search(
        &mut self,
        query: String,
        mode: v0_1::search::SearchMode,
        limit: u32,
    ) -> Vec<v0_1::search::Hit> {
        let mode = match mode {
            v0_1::search::SearchMode::Vector => search::SearchMode::Vector,
            v0_1::search::SearchMode::Keyword => search::SearchMode::Keyword,
        };
        let request = search::SearchRequest {
            query,
            mode,
            kinds: Vec::new(),
            since: None,
            until: None,
            limit,
        };
        search::Host::search(self, request)
            .into_iter()
            .map(|h| v0_1::search::Hit {
                chunk_id: h.chunk_id,
                document_id: h.document_id.unwrap_or_default(),
                score: h.score,
                text: h.text,
                section: h.section,
            })
            .collect()
    }
}
