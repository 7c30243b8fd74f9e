//! Searching a clinic's table for one patient: vector (cosine) and full-text
//! (BM25), both prefiltered by the patient's scope before ranking, returning
//! chunk ids and scores only.

use arrow_array::{Array, Float32Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use lancedb::DistanceType;
use lancedb::index::scalar::FullTextSearchQuery;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use uuid::Uuid;

use super::store::VectorStore;
use super::{Ranked, Scope, VectorError};
use crate::ml::DIM;

/// The prefilter of a patient's scope. Every value in it is a typed UUID, a
/// [`RecordKind`](crate::db::records::RecordKind) or an integer: nothing a
/// caller types reaches it.
pub(super) fn scope_filter(patient: Uuid, scope: &Scope) -> String {
    let mut filter = format!("patient_id = '{patient}'");
    if !scope.kinds.is_empty() {
        let list: Vec<String> = scope.kinds.iter().map(|k| format!("'{k}'")).collect();
        filter.push_str(&format!(" AND kind IN ({})", list.join(", ")));
    }
    if let Some(since) = scope.since {
        filter.push_str(&format!(
            " AND effective_us >= {}",
            since.timestamp_micros()
        ));
    }
    if let Some(until) = scope.until {
        filter.push_str(&format!(" AND effective_us < {}", until.timestamp_micros()));
    }
    filter
}

/// Reads `chunk_id` and a score column from result batches.
fn ranked(batches: &[RecordBatch], column: &str, score: fn(f32) -> f32) -> Vec<Ranked> {
    let mut hits = Vec::new();
    for batch in batches {
        let ids = batch
            .column_by_name("chunk_id")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let scores = batch
            .column_by_name(column)
            .and_then(|c| c.as_any().downcast_ref::<Float32Array>());
        let (Some(ids), Some(scores)) = (ids, scores) else {
            continue;
        };
        for i in 0..batch.num_rows() {
            if ids.is_null(i) {
                continue;
            }
            if let Ok(chunk_id) = ids.value(i).parse() {
                hits.push(Ranked {
                    chunk_id,
                    score: score(scores.value(i)),
                });
            }
        }
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    hits
}

impl VectorStore {
    /// The `limit` chunks of one patient nearest to `query`, best first.
    ///
    /// The scope filter is applied before the search (prefilter), so a patient
    /// with few chunks in a large clinic still gets `limit` hits and no other
    /// patient's chunk is ever considered.
    pub async fn vector_search(
        &self,
        clinic: Uuid,
        patient: Uuid,
        scope: &Scope,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<Ranked>, VectorError> {
        if query.len() != DIM {
            return Err(VectorError::Dimension(query.len()));
        }
        let Some((table, _, _)) = self.existing(clinic).await? else {
            return Ok(Vec::new());
        };
        let batches: Vec<RecordBatch> = table
            .query()
            .nearest_to(query)?
            .distance_type(DistanceType::Cosine)
            .only_if(scope_filter(patient, scope))
            .select(Select::columns(&["chunk_id", "_distance"]))
            .limit(limit)
            .execute()
            .await?
            .try_collect()
            .await?;
        Ok(ranked(&batches, "_distance", |d| 1.0 - d))
    }

    /// The `limit` chunks of one patient that best match `text` by BM25,
    /// best first, prefiltered like [`Self::vector_search`].
    pub async fn keyword_search(
        &self,
        clinic: Uuid,
        patient: Uuid,
        scope: &Scope,
        text: &str,
        limit: usize,
    ) -> Result<Vec<Ranked>, VectorError> {
        let Some((table, _, fts)) = self.existing(clinic).await? else {
            return Ok(Vec::new());
        };
        if !fts {
            // No row was ever added, so there is nothing to match.
            return Ok(Vec::new());
        }
        // The table has one full-text index, on `text`.
        let query = FullTextSearchQuery::new(text.to_owned());
        let batches: Vec<RecordBatch> = table
            .query()
            .full_text_search(query)
            .only_if(scope_filter(patient, scope))
            .select(Select::columns(&["chunk_id", "_score"]))
            .limit(limit)
            .execute()
            .await?
            .try_collect()
            .await?;
        Ok(ranked(&batches, "_score", |s| s))
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::db::records::RecordKind;

    #[test]
    fn scope_filters_are_built_from_typed_values_only() {
        let patient = Uuid::nil();
        let scope = Scope {
            kinds: vec![RecordKind::Observation, RecordKind::Note],
            since: DateTime::from_timestamp(1_700_000_000, 0),
            until: DateTime::from_timestamp(1_800_000_000, 0),
        };
        assert_eq!(
            scope_filter(patient, &scope),
            format!(
                "patient_id = '{patient}' AND kind IN ('observation', 'note') AND effective_us >= 1700000000000000 AND effective_us < 1800000000000000"
            )
        );
        assert_eq!(
            scope_filter(patient, &Scope::default()),
            format!("patient_id = '{patient}'")
        );
    }
}
