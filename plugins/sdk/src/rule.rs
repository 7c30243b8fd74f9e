//! Bindings and helpers for the `clinical-rule` world.

wit_bindgen::generate!({
    path: "../../wit",
    world: "clinical-rule",
    pub_export_macro: true,
    export_macro_name: "export",
    default_bindings_module: "medmemory_plugin_sdk::rule",
});

pub use exports::medmemory::plugin::clinical_rules::{
    Action, ActionType, Card, CardSource, DraftOrder, Evaluation, Guest, HookContext, HookRequest,
    Indicator, Link, LinkType, PatientContext, PatientRecord, SelectionBehavior, Service,
    Suggestion,
};

shared_helpers!();

impl PluginInfo {
    /// Describes a clinical rule.
    pub fn clinical_rule(name: &str, version: &str, description: &str) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            kind: PluginKind::ClinicalRule,
            description: description.into(),
            media_types: Vec::new(),
        }
    }
}

impl Card {
    /// A card with a summary (cut to 139 characters), an indicator and a source.
    pub fn new(summary: &str, indicator: Indicator, source: &str) -> Card {
        Card {
            uuid: None,
            summary: summary.chars().take(139).collect(),
            indicator,
            detail: None,
            source: CardSource {
                label: source.to_owned(),
                url: None,
                topic: None,
            },
            suggestions: Vec::new(),
            selection_behavior: None,
            override_reasons: Vec::new(),
            links: Vec::new(),
            evidence: Vec::new(),
        }
    }

    /// Names the records (by their ids in the request) the card is about.
    pub fn evidence<'a>(mut self, ids: impl IntoIterator<Item = &'a str>) -> Card {
        self.evidence = ids.into_iter().map(str::to_owned).collect();
        self
    }

    /// Adds Markdown detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Card {
        self.detail = Some(detail.into());
        self
    }
}

impl Evaluation {
    /// Cards and no system actions.
    pub fn cards(cards: Vec<Card>) -> Evaluation {
        Evaluation {
            cards,
            system_actions: Vec::new(),
        }
    }
}

impl PatientContext {
    /// The newest record carrying `code` in `system`.
    pub fn latest(&self, system: &str, code: &str) -> Option<&PatientRecord> {
        self.records
            .iter()
            .filter(|r| {
                r.record
                    .codes
                    .iter()
                    .any(|c| c.system == system && c.code == code)
            })
            .max_by(|a, b| a.record.effective.cmp(&b.record.effective))
    }
}
