//! Clinical records rendered as sentences, so that search finds structured data
//! ("what was her last A1c?" reaches a lab value that came from an HL7 message).

use crate::db::records::{NewRecord, RecordFields, RecordKind};
use crate::plugins::document_parser::TextSection;
use crate::plugins::types::{self, Span};

/// The kind of a record a parser found (the contract's enum, mapped once).
pub fn kind(kind: types::RecordKind) -> RecordKind {
    match kind {
        types::RecordKind::Observation => RecordKind::Observation,
        types::RecordKind::Medication => RecordKind::Medication,
        types::RecordKind::Condition => RecordKind::Condition,
        types::RecordKind::Allergy => RecordKind::Allergy,
        types::RecordKind::Encounter => RecordKind::Encounter,
        types::RecordKind::Note => RecordKind::Note,
    }
}

/// A section of text that states one record, spanning where it came from.
pub fn record_section(record: &NewRecord) -> TextSection {
    let title = match record.fields.kind {
        RecordKind::Observation => "Observation",
        RecordKind::Medication => "Medication",
        RecordKind::Condition => "Condition",
        RecordKind::Allergy => "Allergy",
        RecordKind::Encounter => "Encounter",
        RecordKind::Note => "Note",
    };
    let span = &record.provenance;
    TextSection {
        title: Some(title.to_owned()),
        text: sentence(&record.fields),
        source: Span {
            start: span
                .span_start
                .and_then(|s| u32::try_from(s).ok())
                .unwrap_or(0),
            end: span
                .span_end
                .and_then(|s| u32::try_from(s).ok())
                .unwrap_or(0),
            page: span.page.and_then(|p| u32::try_from(p).ok()),
        },
    }
}

/// `Hemoglobin A1c: 7.2 % (reference 4.0-5.6; flag H); final; 2024-03-05.`
pub fn sentence(record: &RecordFields) -> String {
    let mut out = record.display.clone();
    if let Some(value) = &record.value {
        let shown = value
            .text
            .clone()
            .or_else(|| value.value.map(|v| v.to_string()))
            .unwrap_or_default();
        out.push_str(": ");
        out.push_str(&shown);
        if let Some(unit) = &value.unit {
            out.push(' ');
            out.push_str(unit);
        }
    }
    let mut notes = Vec::new();
    if let Some(range) = record.reference_range.as_ref().and_then(|r| r.text.clone()) {
        notes.push(format!("reference {range}"));
    }
    if let Some(flag) = &record.interpretation {
        notes.push(format!("flag {flag}"));
    }
    if !notes.is_empty() {
        out.push_str(&format!(" ({})", notes.join("; ")));
    }
    let mut parts = vec![out];
    if let Some(status) = &record.status {
        parts.push(status.clone());
    }
    match (&record.effective, &record.effective_end) {
        (Some(start), Some(end)) => parts.push(format!("{start} to {end}")),
        (Some(start), None) => parts.push(start.clone()),
        (None, Some(end)) => parts.push(format!("until {end}")),
        (None, None) => {}
    }
    parts.extend(
        record
            .details
            .iter()
            .map(|d| format!("{}: {}", d.name, d.value)),
    );
    format!("{}.", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::records::{Detail, Range, Value};

    #[test]
    fn a_lab_result_reads_as_a_sentence() {
        let record = RecordFields {
            kind: RecordKind::Observation,
            codes: Vec::new(),
            display: "Hemoglobin A1c".into(),
            status: Some("final".into()),
            value: Some(Value {
                value: Some(7.2),
                text: Some("7.2".into()),
                unit: Some("%".into()),
            }),
            reference_range: Some(Range {
                low: Some(4.0),
                high: Some(5.6),
                text: Some("4.0-5.6".into()),
            }),
            interpretation: Some("H".into()),
            effective: Some("2024-03-05".into()),
            effective_end: None,
            details: vec![Detail {
                name: "panel".into(),
                value: "Diabetes panel".into(),
            }],
        };
        assert_eq!(
            sentence(&record),
            "Hemoglobin A1c: 7.2 % (reference 4.0-5.6; flag H); final; 2024-03-05; panel: Diabetes panel."
        );
    }
}
