//! What the host checks in a plugin's output before anyone uses it: size,
//! spans inside the document, non-empty displays, card summaries and sources.

use super::bindings::{clinical_rules, document_parser, types};
use super::failure::PluginFailure;
use super::limits::Limits;

/// Longest card summary (CDS Hooks).
const MAX_SUMMARY_CHARS: usize = 140;

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn record_bytes(r: &types::ClinicalRecord) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    r.display.len()
        + r.codes
            .iter()
            .map(|c| c.system.len() + c.code.len() + opt(&c.display))
            .sum::<usize>()
        + r.details
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
        + opt(&r.status)
        + opt(&r.interpretation)
        + opt(&r.effective)
        + opt(&r.effective_end)
        + opt(&r.source_id)
        + r.value.as_ref().map_or(0, |v| opt(&v.text) + opt(&v.unit))
        + r.reference_range.as_ref().map_or(0, |v| opt(&v.text))
}

/// Enforces the parser output contract: counts, size, and spans inside the
/// document.
pub(super) fn check_parsed(
    parsed: document_parser::Parsed,
    limits: &Limits,
    input_len: usize,
) -> Result<document_parser::Parsed, PluginFailure> {
    if parsed.records.len() > limits.max_records || parsed.sections.len() > limits.max_sections {
        return Err(PluginFailure::OutputTooLarge);
    }
    let text_bytes: usize = parsed
        .sections
        .iter()
        .map(|s| s.text.len() + s.title.as_ref().map_or(0, String::len))
        .sum::<usize>()
        + parsed.records.iter().map(record_bytes).sum::<usize>()
        + parsed.warnings.iter().map(String::len).sum::<usize>();
    if text_bytes > limits.max_output_bytes {
        return Err(PluginFailure::OutputTooLarge);
    }
    let spans = parsed
        .sections
        .iter()
        .map(|s| &s.source)
        .chain(parsed.records.iter().filter_map(|r| r.source.as_ref()));
    for span in spans {
        if span.start > span.end || span.end as usize > input_len {
            return Err(PluginFailure::InvalidOutput(format!(
                "span {}..{} lies outside the {input_len}-byte document",
                span.start, span.end
            )));
        }
    }
    if let Some(r) = parsed.records.iter().find(|r| r.display.trim().is_empty()) {
        return Err(PluginFailure::InvalidOutput(format!(
            "a {:?} record has an empty display",
            r.kind
        )));
    }
    Ok(parsed)
}

/// Why a card (or a system action) breaks the CDS Hooks 2.0 contract, if it
/// does: summary, source, selection behavior and HL7's `cds-resp`
/// invariants.
fn card_problem(card: &clinical_rules::Card) -> Option<&'static str> {
    use clinical_rules::{LinkType, SelectionBehavior};
    let chars = card.summary.chars().count();
    if card.summary.trim().is_empty() || chars >= MAX_SUMMARY_CHARS {
        return Some("the summary must have 1 to 139 characters");
    }
    if card.source.label.trim().is_empty() {
        return Some("the source needs a label");
    }
    if !card.suggestions.is_empty() && card.selection_behavior.is_none() {
        return Some("a card with suggestions needs a selection behavior");
    }
    let recommended = card.suggestions.iter().filter(|s| s.is_recommended).count();
    if card.selection_behavior == Some(SelectionBehavior::AtMostOne) && recommended > 1 {
        return Some("at most one suggestion may be recommended with at-most-one");
    }
    if card.suggestions.iter().any(|s| s.label.trim().is_empty()) {
        return Some("every suggestion needs a label");
    }
    if let Some(problem) = card
        .suggestions
        .iter()
        .flat_map(|s| &s.actions)
        .find_map(action_problem)
    {
        return Some(problem);
    }
    if card
        .override_reasons
        .iter()
        .any(|r| r.display.as_deref().is_none_or(|d| d.trim().is_empty()))
    {
        return Some("every override reason needs a display");
    }
    for link in &card.links {
        if link.label.trim().is_empty() || !is_absolute_url(&link.url) {
            return Some("every link needs a label and an absolute http(s) URL");
        }
        if link.app_context.is_some() && link.link_type != LinkType::Smart {
            return Some("appContext is only allowed on smart links");
        }
    }
    None
}

/// Why an action breaks the contract, if it does.
fn action_problem(action: &clinical_rules::Action) -> Option<&'static str> {
    use clinical_rules::ActionType;
    if action.description.trim().is_empty() {
        return Some("every action needs a description");
    }
    match action.action_type {
        ActionType::Delete if action.resource_id.as_deref().is_none_or(str::is_empty) => {
            Some("a delete action names its resource by resourceId")
        }
        ActionType::Create | ActionType::Update
            if !action.resource_json.as_deref().is_some_and(|json| {
                serde_json::from_str::<serde_json::Value>(json).is_ok_and(|v| v.is_object())
            }) =>
        {
            Some("a create or update action carries its resource as a JSON object")
        }
        _ => None,
    }
}

fn is_absolute_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && !url.contains(char::is_whitespace)
}

/// Enforces the card contract on an evaluation: the whole output within the
/// size limit, then every card and system action checked; the ones that
/// break the contract are dropped (and their number returned), the rest get
/// ids for feedback.
pub(super) fn check_evaluation(
    evaluation: clinical_rules::Evaluation,
    limits: &Limits,
) -> Result<(clinical_rules::Evaluation, usize), PluginFailure> {
    let bytes = serde_json::to_vec(&evaluation).map_or(usize::MAX, |v| v.len());
    if bytes > limits.max_output_bytes {
        return Err(PluginFailure::OutputTooLarge);
    }
    let before = evaluation.cards.len() + evaluation.system_actions.len();
    let mut cards: Vec<_> = evaluation
        .cards
        .into_iter()
        .filter(|card| card_problem(card).is_none())
        .collect();
    let system_actions: Vec<_> = evaluation
        .system_actions
        .into_iter()
        .filter(|a| action_problem(a).is_none())
        .collect();
    for card in &mut cards {
        card.uuid
            .get_or_insert_with(|| uuid::Uuid::now_v7().to_string());
        for suggestion in &mut card.suggestions {
            suggestion
                .uuid
                .get_or_insert_with(|| uuid::Uuid::now_v7().to_string());
        }
    }
    let dropped = before - cards.len() - system_actions.len();
    if dropped > 0 {
        metrics::counter!("plugin_cards_dropped_total").increment(dropped as u64);
    }
    Ok((
        clinical_rules::Evaluation {
            cards,
            system_actions,
        },
        dropped,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinical_rules::*;

    fn card() -> Card {
        Card {
            uuid: None,
            summary: "Potassium 6.2 mmol/L is critical".into(),
            indicator: Indicator::Critical,
            detail: None,
            source: CardSource {
                label: "Lab rules".into(),
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

    fn suggestion(recommended: bool, action: Action) -> Suggestion {
        Suggestion {
            label: "Stop it".into(),
            uuid: None,
            is_recommended: recommended,
            actions: vec![action],
        }
    }

    fn delete(resource_id: Option<&str>, description: &str) -> Action {
        Action {
            action_type: ActionType::Delete,
            description: description.into(),
            resource_json: None,
            resource_id: resource_id.map(str::to_owned),
        }
    }

    #[test]
    fn cards_that_break_cds_hooks_invariants_are_dropped() {
        let limits = Limits {
            fuel: 1,
            memory_bytes: 1,
            deadline_ms: 1,
            max_input_bytes: 1 << 20,
            max_output_bytes: 1 << 20,
            max_records: 10,
            max_sections: 10,
        };
        let good = card();
        let mut long = card();
        long.summary = "x".repeat(140);
        let mut no_source = card();
        no_source.source.label = " ".into();
        let mut no_behavior = card();
        no_behavior.suggestions = vec![suggestion(
            false,
            delete(Some("MedicationRequest/1"), "Remove"),
        )];
        let mut two_recommended = no_behavior.clone();
        two_recommended.selection_behavior = Some(SelectionBehavior::AtMostOne);
        two_recommended.suggestions = vec![
            suggestion(true, delete(Some("MedicationRequest/1"), "Remove")),
            suggestion(true, delete(Some("MedicationRequest/2"), "Remove")),
        ];
        let mut any_two = two_recommended.clone();
        any_two.selection_behavior = Some(SelectionBehavior::Any);
        let mut delete_without_id = no_behavior.clone();
        delete_without_id.selection_behavior = Some(SelectionBehavior::Any);
        delete_without_id.suggestions = vec![suggestion(false, delete(None, "Remove"))];
        let mut no_description = delete_without_id.clone();
        no_description.suggestions = vec![suggestion(false, delete(Some("X/1"), ""))];
        let mut reason_without_display = card();
        reason_without_display.override_reasons = vec![types::Coding {
            system: "http://example.org".into(),
            code: "patient-refused".into(),
            display: None,
        }];
        let mut context_on_page = card();
        context_on_page.links = vec![Link {
            label: "Guideline".into(),
            url: "https://example.org/g".into(),
            link_type: LinkType::Absolute,
            app_context: Some("{}".into()),
        }];
        let mut smart_context = context_on_page.clone();
        smart_context.links[0].link_type = LinkType::Smart;
        let evaluation = Evaluation {
            cards: vec![
                good,
                long,
                no_source,
                no_behavior,
                two_recommended,
                any_two,
                delete_without_id,
                no_description,
                reason_without_display,
                context_on_page,
                smart_context,
            ],
            system_actions: vec![delete(Some("X/1"), "Remove"), delete(None, "Remove")],
        };
        let (kept, dropped) = check_evaluation(evaluation, &limits).unwrap();
        assert_eq!(
            kept.cards.len(),
            3,
            "the good, any-two and smart cards stay"
        );
        assert_eq!(kept.system_actions.len(), 1);
        assert_eq!(dropped, 9);
        assert!(kept.cards.iter().all(|c| c.uuid.is_some()));
        assert!(
            kept.cards
                .iter()
                .flat_map(|c| &c.suggestions)
                .all(|s| s.uuid.is_some())
        );
    }
}
