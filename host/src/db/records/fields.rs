//! What a record is and says: its kind, codes, value, range, times and
//! details, and where it came from. Shared by the API, the parsers' output and
//! the repository.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a record is. Parsed once where text enters (the API, a parser's
/// output, a database row); everything past that edge holds this type, so a
/// kind outside the list cannot reach a query or a vector filter.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// A measurement or finding: a lab result, a vital sign.
    Observation,
    /// A medication ordered, given or taken.
    Medication,
    /// A problem or diagnosis.
    Condition,
    /// An allergy or intolerance.
    Allergy,
    /// A visit or stay.
    Encounter,
    /// Free text: a note, or document text.
    Note,
}

impl RecordKind {
    /// Every kind, in the order the API lists them.
    pub const ALL: [RecordKind; 6] = [
        RecordKind::Observation,
        RecordKind::Medication,
        RecordKind::Condition,
        RecordKind::Allergy,
        RecordKind::Encounter,
        RecordKind::Note,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Observation => "observation",
            RecordKind::Medication => "medication",
            RecordKind::Condition => "condition",
            RecordKind::Allergy => "allergy",
            RecordKind::Encounter => "encounter",
            RecordKind::Note => "note",
        }
    }

    /// The kind named `text`, if it is one.
    pub fn parse(text: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// `observation, medication, ...`: for error messages.
    pub fn list() -> String {
        RecordKind::ALL.map(RecordKind::as_str).join(", ")
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code from a terminology (FHIR `Coding`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Coding {
    /// The code system URI, e.g. `http://loinc.org`.
    pub system: String,
    /// The code, e.g. `4548-4`.
    pub code: String,
    /// Human-readable text for the code.
    #[serde(default)]
    pub display: Option<String>,
}

/// A value: a number with its unit, or text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Value {
    /// The number, when the value is numeric.
    #[serde(default)]
    pub value: Option<f64>,
    /// The value as written, e.g. `7.2` or `positive`.
    #[serde(default)]
    pub text: Option<String>,
    /// The unit, e.g. `%` or `mg/dL`.
    #[serde(default)]
    pub unit: Option<String>,
}

/// A reference range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// Lower bound, inclusive.
    #[serde(default)]
    pub low: Option<f64>,
    /// Upper bound, inclusive.
    #[serde(default)]
    pub high: Option<f64>,
    /// The range as written, e.g. `4.0-5.6`.
    #[serde(default)]
    pub text: Option<String>,
}

/// A named detail, e.g. `dose` = `500 mg`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Detail {
    /// The detail's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// What a record says, as a parser or a client states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordFields {
    /// observation, medication, condition, allergy, encounter or note.
    pub kind: RecordKind,
    /// Codes, most specific first.
    #[serde(default)]
    pub codes: Vec<Coding>,
    /// What a clinician would read, e.g. `Hemoglobin A1c`.
    pub display: String,
    /// Status as given, e.g. `final` or `active`.
    #[serde(default)]
    pub status: Option<String>,
    /// The value, for observations.
    #[serde(default)]
    pub value: Option<Value>,
    /// The reference range, for observations.
    #[serde(default)]
    pub reference_range: Option<Range>,
    /// An interpretation flag, e.g. `H`.
    #[serde(default)]
    pub interpretation: Option<String>,
    /// When it happened or started: a date or an RFC 3339 date-time.
    #[serde(default)]
    pub effective: Option<String>,
    /// When it ended, for periods.
    #[serde(default)]
    pub effective_end: Option<String>,
    /// Further named details (dose, route, reaction, note text...).
    #[serde(default)]
    pub details: Vec<Detail>,
}

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, utoipa::ToSchema)]
pub struct Provenance {
    /// The document it was parsed from; null when posted directly.
    pub document_id: Option<Uuid>,
    /// The source's own id for it (a FHIR resource id, an HL7 set id).
    pub source_id: Option<String>,
    /// First byte of the span in the document it came from.
    pub span_start: Option<i64>,
    /// End of that span (exclusive).
    pub span_end: Option<i64>,
    /// The 1-based page, for paged formats.
    pub page: Option<i64>,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Record {
    /// The record's id.
    pub id: Uuid,
    /// The patient.
    pub patient_id: Uuid,
    /// What it says.
    #[serde(flatten)]
    pub fields: RecordFields,
    /// `effective` as an instant (start of the day for dates), when it parses.
    pub effective_at: Option<DateTime<Utc>>,
    /// Where it came from.
    pub provenance: Provenance,
    /// When MedMemory stored it.
    pub created_at: DateTime<Utc>,
}

/// A record to store: its content and provenance; ids are chosen by the caller
/// so that chunks can point at it in the same transaction.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// The id to store it under.
    pub id: Uuid,
    /// What it says.
    pub fields: RecordFields,
    /// Where it came from.
    pub provenance: Provenance,
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Only this kind.
    pub kind: Option<RecordKind>,
    /// Only records with this code in any of their codings.
    pub code: Option<String>,
    /// Only records effective at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only records effective before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// Reads a clinical time as an instant: RFC 3339, a local date-time (taken as
/// UTC), a date, a month or a year (their first instant), or the compact HL7
/// forms `YYYYMMDD[HHMM[SS]]`.
pub fn effective_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y%m%d%H%M%S",
        "%Y%m%d%H%M",
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Some(at.and_utc());
        }
    }
    let date = match text.len() {
        10 => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok(),
        8 => NaiveDate::parse_from_str(text, "%Y%m%d").ok(),
        7 => NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok(),
        4 => NaiveDate::parse_from_str(&format!("{text}-01-01"), "%Y-%m-%d").ok(),
        _ => None,
    }?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}
