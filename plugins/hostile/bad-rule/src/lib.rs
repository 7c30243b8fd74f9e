//! A clinical rule that misbehaves as its clinic's `mode` setting says:
//! `loop` spins until the host stops it, `trap` panics, `garbage` returns
//! cards that break the CDS Hooks contract (an empty summary, a delete
//! without a resource id). The host must drop or fail its output alone, and
//! never fail the ingestion job (or the CDS call) that triggered it. Its
//! `needs-coverage` service declares a prefetch no patient memory holds.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "clinical-rule",
});

use exports::medmemory::plugin::clinical_rules::{
    Action, ActionType, Card, CardSource, Evaluation, Guest, HookRequest, Indicator, Service,
    Suggestion,
};
use medmemory::plugin::config;
use medmemory::plugin::types::{PluginError, PluginInfo, PluginKind};

struct BadRule;

fn card(summary: &str, suggestions: Vec<Suggestion>) -> Card {
    Card {
        uuid: None,
        summary: summary.into(),
        indicator: Indicator::Critical,
        detail: None,
        source: CardSource {
            label: "bad rule".into(),
            url: None,
            topic: None,
        },
        suggestions,
        selection_behavior: None,
        override_reasons: Vec::new(),
        links: Vec::new(),
        evidence: Vec::new(),
    }
}

impl Guest for BadRule {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile-bad-rule".into(),
            version: "0.2.0".into(),
            kind: PluginKind::ClinicalRule,
            description: "hostile test plugin".into(),
            media_types: Vec::new(),
        }
    }

    fn services() -> Vec<Service> {
        vec![
            Service {
                id: "bad".into(),
                hook: "patient-view".into(),
                title: "bad".into(),
                description: "misbehaves".into(),
                prefetch: Vec::new(),
                usage_requirements: None,
            },
            Service {
                // Asks for data no patient memory holds: without it, 412.
                id: "needs-coverage".into(),
                hook: "order-sign".into(),
                title: "needs coverage".into(),
                description: "misbehaves, given the patient's coverage".into(),
                prefetch: vec![(
                    "coverage".into(),
                    "Coverage?patient={{context.patientId}}".into(),
                )],
                usage_requirements: Some("prefetch the patient's Coverage".into()),
            },
        ]
    }

    fn evaluate(request: HookRequest) -> Result<Evaluation, PluginError> {
        match config::get("mode").as_deref() {
            Some("loop") => {
                let mut n = request.patient.records.len() as u64;
                loop {
                    n = std::hint::black_box(n.wrapping_mul(31).wrapping_add(7));
                }
            }
            Some("trap") => panic!("a rule that traps"),
            _ => Ok(Evaluation {
                cards: vec![
                    card("", Vec::new()),
                    card(
                        "Delete something",
                        vec![Suggestion {
                            label: "delete".into(),
                            uuid: None,
                            is_recommended: false,
                            actions: vec![Action {
                                action_type: ActionType::Delete,
                                description: "delete".into(),
                                resource_json: None,
                                resource_id: None,
                            }],
                        }],
                    ),
                ],
                system_actions: Vec::new(),
            }),
        }
    }
}

export!(BadRule);
