//! Answers composed from structured records, without a model: when a
//! retriever answers a value or list question with records only, each record
//! becomes one sentence stating what it holds (value, unit, date, reference
//! range, status), cited by its number. Nothing is paraphrased, so nothing
//! can be made up.

use super::grounding::Accepted;
use crate::db::records::{Record, RecordKind};

/// What `model` says for a composed answer.
pub const MODEL: &str = "records";

fn date(text: &Option<String>) -> Option<String> {
    let text = text.as_deref()?.trim();
    // A date-time reads as its date; anything else as written.
    Some(match text.get(..10) {
        Some(day) if text.len() > 10 && text.as_bytes()[10] == b'T' => day.to_owned(),
        _ => text.to_owned(),
    })
}

fn detail<'a>(record: &'a Record, names: &[&str]) -> Option<&'a str> {
    record
        .fields
        .details
        .iter()
        .find(|d| names.contains(&d.name.as_str()) && !d.value.trim().is_empty())
        .map(|d| d.value.trim())
}

/// One sentence for one record, without its marker.
pub fn sentence(record: &Record) -> String {
    let f = &record.fields;
    let display = f.display.trim();
    let since = date(&f.effective);
    let mut s = match f.kind {
        RecordKind::Observation => {
            let value = f.value.as_ref().and_then(|v| {
                let number = v.text.clone().or_else(|| v.value.map(|n| n.to_string()))?;
                Some(
                    match v.unit.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
                        Some(unit) => format!("{number} {unit}"),
                        None => number,
                    },
                )
            });
            let mut s = match value {
                Some(value) => format!("{display} was {value}"),
                None => format!("{display} was recorded"),
            };
            if let Some(flag) = f.interpretation.as_deref().filter(|i| !i.trim().is_empty()) {
                s.push_str(&format!(" (flagged {})", flag.trim()));
            }
            if let Some(day) = since {
                s.push_str(&format!(" on {day}"));
            }
            if let Some(range) = f.reference_range.as_ref() {
                let text = range
                    .text
                    .clone()
                    .or_else(|| match (range.low, range.high) {
                        (Some(low), Some(high)) => Some(format!("{low}-{high}")),
                        (None, Some(high)) => Some(format!("<={high}")),
                        (Some(low), None) => Some(format!(">={low}")),
                        (None, None) => None,
                    });
                if let Some(text) = text {
                    s.push_str(&format!(", reference range {text}"));
                }
            }
            s
        }
        RecordKind::Medication => {
            let mut s = format!("Medication: {display}");
            if let Some(dose) = detail(record, &["dosage", "dose", "sig"]) {
                s.push_str(&format!(", {dose}"));
            }
            if let Some(day) = since {
                s.push_str(&format!(", since {day}"));
            }
            s
        }
        RecordKind::Allergy => {
            let mut s = format!("Allergy or intolerance: {display}");
            if let Some(reaction) = detail(record, &["reaction", "manifestation"]) {
                s.push_str(&format!(" (reaction: {reaction})"));
            }
            s
        }
        RecordKind::Condition => {
            let mut s = format!("Condition: {display}");
            if let Some(day) = since {
                s.push_str(&format!(", since {day}"));
            }
            s
        }
        RecordKind::Encounter => match since {
            Some(day) => format!("{display} on {day}"),
            None => display.to_owned(),
        },
        RecordKind::Note => display.to_owned(),
    };
    if let Some(status) = f.status.as_deref().map(str::trim).filter(|s| !s.is_empty())
        && f.kind != RecordKind::Observation
    {
        s.push_str(&format!(" ({status})"));
    }
    s
}

/// The composed answer: one cited sentence per record, in the retriever's
/// order (`records[i]` is evidence `i + 1`).
pub fn sentences(records: &[Record]) -> Vec<Accepted> {
    records
        .iter()
        .enumerate()
        .map(|(i, record)| Accepted {
            text: format!("{}. [{}]", sentence(record).trim_end_matches('.'), i + 1),
            cites: vec![i + 1],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::records::{Detail, Provenance, Range, RecordFields, Value};

    fn record(kind: RecordKind, display: &str) -> Record {
        Record {
            id: uuid::Uuid::nil(),
            patient_id: uuid::Uuid::nil(),
            fields: RecordFields {
                kind,
                codes: Vec::new(),
                display: display.into(),
                status: None,
                value: None,
                reference_range: None,
                interpretation: None,
                effective: None,
                effective_end: None,
                details: Vec::new(),
            },
            effective_at: None,
            provenance: Provenance::default(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn records_state_what_they_hold() {
        let mut a1c = record(RecordKind::Observation, "Hemoglobin A1c");
        a1c.fields.value = Some(Value {
            value: Some(7.2),
            text: Some("7.2".into()),
            unit: Some("%".into()),
        });
        a1c.fields.interpretation = Some("H".into());
        a1c.fields.effective = Some("2024-03-05T09:30:00Z".into());
        a1c.fields.reference_range = Some(Range {
            low: Some(4.0),
            high: Some(5.6),
            text: None,
        });
        let mut metformin = record(RecordKind::Medication, "Metformin 500 MG Oral Tablet");
        metformin.fields.status = Some("active".into());
        metformin.fields.effective = Some("2020-01-10".into());
        metformin.fields.details = vec![Detail {
            name: "dosage".into(),
            value: "twice daily".into(),
        }];
        let got: Vec<String> = sentences(&[a1c, metformin])
            .into_iter()
            .map(|a| a.text)
            .collect();
        assert_eq!(
            got,
            [
                "Hemoglobin A1c was 7.2 % (flagged H) on 2024-03-05, reference range 4-5.6. [1]",
                "Medication: Metformin 500 MG Oral Tablet, twice daily, since 2020-01-10 (active). [2]",
            ]
        );
    }
}
