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
    /// A patient with only these records and no demographics: what a rule's
    /// unit tests hand it.
    pub fn of(records: Vec<PatientRecord>) -> PatientContext {
        PatientContext {
            id: "p".into(),
            birth_date: None,
            sex: None,
            records,
        }
    }

    /// The newest record carrying any of `codes` in `system`.
    pub fn latest_of(&self, system: &str, codes: &[&str]) -> Option<&PatientRecord> {
        self.records
            .iter()
            .filter(|r| has_code(r, system, codes))
            .max_by(|a, b| a.record.effective.cmp(&b.record.effective))
    }

    /// The newest `n` records carrying any of `codes` in `system`, newest first.
    pub fn newest(&self, system: &str, codes: &[&str], n: usize) -> Vec<&PatientRecord> {
        let mut found: Vec<&PatientRecord> = self
            .records
            .iter()
            .filter(|r| has_code(r, system, codes))
            .collect();
        found.sort_by(|a, b| b.record.effective.cmp(&a.record.effective));
        found.truncate(n);
        found
    }

    /// Records of `kind` that still hold (no inactive status, no end date),
    /// whose display mentions one of `words` (lowercase).
    pub fn active_mentioning(&self, kind: RecordKind, words: &[&str]) -> Vec<&PatientRecord> {
        self.records
            .iter()
            .filter(|r| r.record.kind == kind && is_active(&r.record))
            .filter(|r| mentions(&r.record, words))
            .collect()
    }

    /// The newest record carrying `code` in `system`.
    pub fn latest(&self, system: &str, code: &str) -> Option<&PatientRecord> {
        self.latest_of(system, &[code])
    }
}

/// Whether a record carries any of `codes` in `system`.
fn has_code(r: &PatientRecord, system: &str, codes: &[&str]) -> bool {
    r.record
        .codes
        .iter()
        .any(|c| c.system == system && codes.contains(&c.code.as_str()))
}

/// Statuses that mean a record no longer holds.
const INACTIVE: [&str; 9] = [
    "resolved",
    "inactive",
    "stopped",
    "completed",
    "entered-in-error",
    "refuted",
    "cancelled",
    "remission",
    "discontinued",
];

/// Whether a record still holds: no inactive status and no end date.
pub fn is_active(record: &ClinicalRecord) -> bool {
    record.effective_end.is_none()
        && record
            .status
            .as_deref()
            .is_none_or(|s| !INACTIVE.contains(&s.trim().to_lowercase().as_str()))
}

/// Whether a record's display or a code display mentions one of `words`
/// (lowercase).
pub fn mentions(record: &ClinicalRecord, words: &[&str]) -> bool {
    let mut text = record.display.to_lowercase();
    for c in &record.codes {
        if let Some(d) = &c.display {
            text.push(' ');
            text.push_str(&d.to_lowercase());
        }
    }
    words.iter().any(|w| text.contains(w))
}

/// A number the clinic set for this plugin (`config`), or `default`.
pub fn setting(key: &str, default: f64) -> Result<f64, PluginError> {
    match config::get(key) {
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| PluginError::invalid(format!("the `{key}` setting must be a number"))),
        None => Ok(default),
    }
}
