//! The host side of a retriever's imports for one call: [`ScopedMemory`]
//! answers `search` and `records` for the one clinic and patient it was built
//! for (the plugin names neither), through the same [`Memory::search`] and
//! SQL reads as everything else.

use std::sync::Arc;

use tokio::runtime::Handle;
use uuid::Uuid;

use crate::db::Db;
use crate::db::records::{Record, RecordKind, RecordQuery, effective_instant};
use crate::ingest::render;
use crate::memory::{Evidence, Memory, Mode, Query, Scope};
use crate::plugins::{PatientMemory, records, search, types};

/// `search` and `records` for one clinic and patient. Runs on the plugin's
/// worker thread and blocks it on the async stores.
pub(super) struct ScopedMemory {
    pub db: Db,
    pub memory: Arc<Memory>,
    pub clinic: Uuid,
    pub patient: Uuid,
    pub runtime: Handle,
}

fn wit_kind(kind: RecordKind) -> types::RecordKind {
    match kind {
        RecordKind::Observation => types::RecordKind::Observation,
        RecordKind::Medication => types::RecordKind::Medication,
        RecordKind::Condition => types::RecordKind::Condition,
        RecordKind::Allergy => types::RecordKind::Allergy,
        RecordKind::Encounter => types::RecordKind::Encounter,
        RecordKind::Note => types::RecordKind::Note,
    }
}

/// A stored record as plugins see it.
pub fn wit_record(record: &Record) -> types::ClinicalRecord {
    let f = &record.fields;
    let p = &record.provenance;
    types::ClinicalRecord {
        kind: wit_kind(f.kind),
        codes: f
            .codes
            .iter()
            .map(|c| types::Coding {
                system: c.system.clone(),
                code: c.code.clone(),
                display: c.display.clone(),
            })
            .collect(),
        display: f.display.clone(),
        status: f.status.clone(),
        value: f.value.as_ref().map(|v| types::Quantity {
            value: v.value,
            text: v.text.clone(),
            unit: v.unit.clone(),
        }),
        reference_range: f.reference_range.as_ref().map(|r| types::ReferenceRange {
            low: r.low,
            high: r.high,
            text: r.text.clone(),
        }),
        interpretation: f.interpretation.clone(),
        effective: f.effective.clone(),
        effective_end: f.effective_end.clone(),
        details: f
            .details
            .iter()
            .map(|d| (d.name.clone(), d.value.clone()))
            .collect(),
        source_id: p.source_id.clone(),
        source: match (p.span_start, p.span_end) {
            (Some(start), Some(end)) => Some(types::Span {
                start: start.clamp(0, u32::MAX as i64) as u32,
                end: end.clamp(0, u32::MAX as i64) as u32,
                page: p.page.map(|n| n.clamp(0, u32::MAX as i64) as u32),
            }),
            _ => None,
        },
    }
}

fn hit(e: Evidence) -> search::Hit {
    search::Hit {
        chunk_id: e.chunk_id.to_string(),
        document_id: e.document_id.map(|d| d.to_string()),
        record_id: e.record_id.map(|r| r.to_string()),
        kind: RecordKind::parse(&e.kind).map_or(types::RecordKind::Note, wit_kind),
        score: e.score,
        similarity: e.similarity,
        text: e.text,
        section: e.section,
        effective: e.effective_at.map(|t| t.to_rfc3339()),
    }
}

/// A time bound a plugin gave, if it reads as one (an unreadable one is
/// ignored rather than failing the lookup).
fn bound(text: &Option<String>) -> Option<chrono::DateTime<chrono::Utc>> {
    text.as_deref().and_then(effective_instant)
}

impl PatientMemory for ScopedMemory {
    fn search(&mut self, request: &search::SearchRequest) -> Vec<search::Hit> {
        let query = Query {
            text: request.query.clone(),
            mode: match request.mode {
                search::SearchMode::Vector => Mode::Vector,
                search::SearchMode::Keyword => Mode::Keyword,
                search::SearchMode::Hybrid => Mode::Hybrid,
            },
            limit: request.limit as usize,
            scope: Scope {
                kinds: request.kinds.iter().map(|k| render::kind(*k)).collect(),
                since: bound(&request.since),
                until: bound(&request.until),
            },
        };
        let found = self
            .runtime
            .block_on(self.memory.search(self.clinic, self.patient, &query));
        match found {
            Ok(evidence) => evidence.into_iter().map(hit).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "a retriever's search failed");
                Vec::new()
            }
        }
    }

    fn records(&mut self, request: &records::RecordsRequest) -> Vec<records::StoredRecord> {
        let query = RecordQuery {
            kinds: request.kinds.iter().map(|k| render::kind(*k)).collect(),
            codes: request.codes.clone(),
            terms: request.terms.clone(),
            active_only: request.active_only,
            latest_per_code: request.latest_per_code,
            since: bound(&request.since),
            limit: request.limit as usize,
        };
        let found = self
            .runtime
            .block_on(self.db.query_records(self.clinic, self.patient, &query));
        match found {
            Ok(found) => found
                .iter()
                .map(|r| records::StoredRecord {
                    record_id: r.id.to_string(),
                    document_id: r.provenance.document_id.map(|d| d.to_string()),
                    record: wit_record(r),
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "a retriever's record read failed");
                Vec::new()
            }
        }
    }
}
