//! What the host checks in a plugin's output before anyone uses it: size,
//! spans inside the document, non-empty displays, card summaries and sources.

use super::bindings::{clinical_rules, document_parser, types};
use super::failure::PluginFailure;
use super::limits::Limits;

/// Longest card summary (CDS Hooks).
const MAX_SUMMARY_CHARS: usize = 140;

pub(super) fn truncate(s: &str, max: usize) -> &str {
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

/// Enforces the card contract: size, summary length, ids for feedback.
pub(super) fn check_cards(
    mut cards: Vec<clinical_rules::Card>,
    limits: &Limits,
) -> Result<Vec<clinical_rules::Card>, PluginFailure> {
    let bytes = serde_json::to_vec(&cards).map_or(usize::MAX, |v| v.len());
    if bytes > limits.max_output_bytes {
        return Err(PluginFailure::OutputTooLarge);
    }
    for card in &mut cards {
        let chars = card.summary.chars().count();
        if card.summary.trim().is_empty() || chars > MAX_SUMMARY_CHARS {
            return Err(PluginFailure::InvalidOutput(format!(
                "a card summary must have 1 to {MAX_SUMMARY_CHARS} characters, not {chars}"
            )));
        }
        if card.source.label.trim().is_empty() {
            return Err(PluginFailure::InvalidOutput(
                "a card source needs a label".into(),
            ));
        }
        card.uuid
            .get_or_insert_with(|| uuid::Uuid::now_v7().to_string());
        for suggestion in &mut card.suggestions {
            suggestion
                .uuid
                .get_or_insert_with(|| uuid::Uuid::now_v7().to_string());
        }
    }
    Ok(cards)
}
