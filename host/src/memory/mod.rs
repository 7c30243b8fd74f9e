//! Vectors and full text: one LanceDB table per clinic, derived from the
//! chunks in SQL.
//!
//! LanceDB is an index, not a source of truth: `medmemory reindex` rebuilds it
//! from SQL, and the store holds only copies keyed by chunk id. Every search
//! goes through [`VectorStore::vector_search`] or [`VectorStore::keyword_search`],
//! which take typed ids and prefilter by patient inside the clinic's table, so
//! no caller ever builds a filter string and no hit can come from elsewhere.
//! For one patient the search is exact over the prefiltered rows; no ANN index
//! is built (it would only pay off for clinic-wide search on large tables).
//!
//! Writes to one clinic's table are serialised in this process, so that the
//! version pruning done by [`VectorStore::erase_patient`] never races a write.

pub mod fusion;

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::types::Float32Type;
use arrow_array::{Array, FixedSizeListArray, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use lancedb::index::Index;
use lancedb::index::scalar::{BTreeIndexBuilder, FtsIndexBuilder, FullTextSearchQuery};
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancedb::table::{
    CompactionOptions, Duration as LanceDuration, OptimizeAction, OptimizeOptions,
};
use lancedb::{Connection, DistanceType, Table};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::db::records::KINDS;
use crate::ml::{DIM, MODEL_ID};

/// The layout of the tables this build writes. A table recorded with another
/// version (or model, or dimension) must be rebuilt with `medmemory reindex`.
pub const SCHEMA_VERSION: i64 = 2;

/// Errors of the vector store.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// LanceDB failed.
    #[error(transparent)]
    Lance(#[from] lancedb::Error),
    /// Arrow failed building a batch.
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A vector has the wrong dimension.
    #[error("expected vectors of dimension {DIM}, got {0}")]
    Dimension(usize),
}

/// One chunk to index: its embedding, its text for full-text search, and the
/// ids and attributes that scope and filter it.
#[derive(Debug, Clone)]
pub struct VectorRow {
    /// The chunk's id (the key back into SQL).
    pub chunk_id: Uuid,
    /// The patient the chunk belongs to.
    pub patient_id: Uuid,
    /// The document it came from, if any.
    pub document_id: Option<Uuid>,
    /// The record it states, if any.
    pub record_id: Option<Uuid>,
    /// Record kind, or `note` for document text.
    pub kind: String,
    /// When what it states happened.
    pub effective_at: Option<DateTime<Utc>>,
    /// The text, indexed for BM25.
    pub text: String,
    /// The embedding.
    pub vector: Vec<f32>,
}

/// Which of a patient's chunks a search may return.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only these record kinds (all when empty). Each must be one of
    /// [`KINDS`]; others are ignored.
    pub kinds: Vec<String>,
    /// Only chunks effective at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only chunks effective before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// A ranked chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// The chunk's id.
    pub chunk_id: Uuid,
    /// Cosine similarity (vector search) or BM25 score (keyword search);
    /// higher is better.
    pub score: f32,
}

struct Handle {
    table: Table,
    /// Serialises writes (and pruning) on this table within the process.
    writes: Arc<Mutex<()>>,
    fts: bool,
}

/// The embedded (or object-storage) LanceDB database.
pub struct VectorStore {
    connection: Connection,
    tables: Mutex<HashMap<Uuid, Handle>>,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("chunk_id", DataType::Utf8, false),
        Field::new("patient_id", DataType::Utf8, false),
        Field::new("document_id", DataType::Utf8, true),
        Field::new("record_id", DataType::Utf8, true),
        Field::new("kind", DataType::Utf8, false),
        Field::new("effective_us", DataType::Int64, true),
        Field::new("text", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, true)),
                DIM as i32,
            ),
            false,
        ),
    ]))
}

/// The table name of a clinic.
pub fn table_name(clinic: Uuid) -> String {
    format!("clinic_{}", clinic.simple())
}

/// The prefilter of a patient's scope. Every value in it is a typed UUID, a
/// kind from the fixed list or an integer: nothing a caller types reaches it.
fn scope_filter(patient: Uuid, scope: &Scope) -> String {
    let mut filter = format!("patient_id = '{patient}'");
    let kinds: Vec<&str> = KINDS
        .iter()
        .copied()
        .filter(|k| scope.kinds.iter().any(|s| s == k))
        .collect();
    if !scope.kinds.is_empty() {
        let list: Vec<String> = kinds.iter().map(|k| format!("'{k}'")).collect();
        // An empty list means none of the requested kinds exist: match nothing.
        if list.is_empty() {
            filter.push_str(" AND kind = ''");
        } else {
            filter.push_str(&format!(" AND kind IN ({})", list.join(", ")));
        }
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

fn batch(rows: &[VectorRow]) -> Result<RecordBatch, VectorError> {
    for row in rows {
        if row.vector.len() != DIM {
            return Err(VectorError::Dimension(row.vector.len()));
        }
    }
    let ids = |f: fn(&VectorRow) -> Option<Uuid>| {
        StringArray::from_iter(rows.iter().map(|r| f(r).map(|id| id.to_string())))
    };
    let vectors = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
        rows.iter()
            .map(|r| Some(r.vector.iter().map(|v| Some(*v)).collect::<Vec<_>>())),
        DIM as i32,
    );
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(ids(|r| Some(r.chunk_id))),
            Arc::new(ids(|r| Some(r.patient_id))),
            Arc::new(ids(|r| r.document_id)),
            Arc::new(ids(|r| r.record_id)),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.kind.as_str()),
            )),
            Arc::new(Int64Array::from_iter(
                rows.iter()
                    .map(|r| r.effective_at.map(|t| t.timestamp_micros())),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.text.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|_| MODEL_ID))),
            Arc::new(vectors),
        ],
    )?)
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

/// Deletes rows by chunk id, a bounded list at a time. Every id is a typed
/// UUID, so the filter holds nothing a caller typed.
async fn delete_ids(table: &Table, ids: &[Uuid]) -> Result<(), VectorError> {
    for part in ids.chunks(500) {
        let quoted: Vec<String> = part.iter().map(|id| format!("'{id}'")).collect();
        table
            .delete(&format!("chunk_id IN ({})", quoted.join(", ")))
            .await?;
    }
    Ok(())
}

impl VectorStore {
    /// Opens (creating if needed) the database at `uri`.
    pub async fn open(uri: &str) -> Result<VectorStore, VectorError> {
        let connection = lancedb::connect(uri).execute().await?;
        Ok(VectorStore {
            connection,
            tables: Mutex::new(HashMap::new()),
        })
    }

    /// A cheap round trip (for `/ready`).
    pub async fn ping(&self) -> Result<(), VectorError> {
        self.connection.table_names().execute().await?;
        Ok(())
    }

    /// Whether the clinic's table exists.
    pub async fn has_table(&self, clinic: Uuid) -> Result<bool, VectorError> {
        let names = self.connection.table_names().execute().await?;
        Ok(names.contains(&table_name(clinic)))
    }

    /// The clinic's table and its write lock, created on first use.
    async fn handle(&self, clinic: Uuid) -> Result<(Table, Arc<Mutex<()>>, bool), VectorError> {
        let mut tables = self.tables.lock().await;
        if let Some(h) = tables.get(&clinic) {
            return Ok((h.table.clone(), h.writes.clone(), h.fts));
        }
        let name = table_name(clinic);
        let table = match self.connection.open_table(&name).execute().await {
            Ok(table) => table,
            Err(lancedb::Error::TableNotFound { .. }) => {
                self.connection
                    .create_empty_table(&name, schema())
                    .execute()
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        let fts = table
            .list_indices()
            .await?
            .iter()
            .any(|i| i.columns.iter().any(|c| c == "text"));
        let writes = Arc::new(Mutex::new(()));
        tables.insert(
            clinic,
            Handle {
                table: table.clone(),
                writes: writes.clone(),
                fts,
            },
        );
        Ok((table, writes, fts))
    }

    /// The clinic's table if it exists (reads and deletes never create one).
    async fn existing(
        &self,
        clinic: Uuid,
    ) -> Result<Option<(Table, Arc<Mutex<()>>, bool)>, VectorError> {
        if let Some(h) = self.tables.lock().await.get(&clinic) {
            return Ok(Some((h.table.clone(), h.writes.clone(), h.fts)));
        }
        if !self.has_table(clinic).await? {
            return Ok(None);
        }
        self.handle(clinic).await.map(Some)
    }

    /// Builds the full-text index and the patient index once the table has
    /// rows. Rows added later are searched unindexed until
    /// [`Self::refresh_indexes`], so results are always complete.
    async fn ensure_fts(&self, clinic: Uuid, table: &Table) -> Result<(), VectorError> {
        table
            .create_index(&["text"], Index::FTS(FtsIndexBuilder::default()))
            .replace(true)
            .execute()
            .await?;
        table
            .create_index(&["patient_id"], Index::BTree(BTreeIndexBuilder::default()))
            .replace(true)
            .execute()
            .await?;
        if let Some(h) = self.tables.lock().await.get_mut(&clinic) {
            h.fts = true;
        }
        Ok(())
    }

    /// Replaces the rows of `document` in `clinic` with `rows`. Idempotent:
    /// running it again after a crash gives the same rows.
    pub async fn replace_document(
        &self,
        clinic: Uuid,
        document: Uuid,
        rows: &[VectorRow],
    ) -> Result<(), VectorError> {
        let (table, writes, fts) = self.handle(clinic).await?;
        let data = if rows.is_empty() {
            None
        } else {
            Some(batch(rows)?)
        };
        let _write = writes.lock().await;
        // `document` is a typed UUID: its text form has no quotes to escape.
        table.delete(&format!("document_id = '{document}'")).await?;
        if let Some(data) = data {
            table.add(data).execute().await?;
            if !fts {
                self.ensure_fts(clinic, &table).await?;
            }
        }
        Ok(())
    }

    /// Adds or replaces rows by chunk id (for records posted directly and for
    /// reconciliation).
    pub async fn upsert(&self, clinic: Uuid, rows: &[VectorRow]) -> Result<(), VectorError> {
        if rows.is_empty() {
            return Ok(());
        }
        let (table, writes, fts) = self.handle(clinic).await?;
        let data = batch(rows)?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.chunk_id).collect();
        let _write = writes.lock().await;
        delete_ids(&table, &ids).await?;
        table.add(data).execute().await?;
        if !fts {
            self.ensure_fts(clinic, &table).await?;
        }
        Ok(())
    }

    /// Adds rows without looking for earlier copies (for a rebuild into an
    /// empty table).
    pub async fn append(&self, clinic: Uuid, rows: &[VectorRow]) -> Result<(), VectorError> {
        let (table, writes, fts) = self.handle(clinic).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let data = batch(rows)?;
        let _write = writes.lock().await;
        table.add(data).execute().await?;
        if !fts {
            self.ensure_fts(clinic, &table).await?;
        }
        Ok(())
    }

    /// Folds rows added since the indexes were built into them (run after
    /// bulk loads, and from time to time).
    pub async fn refresh_indexes(&self, clinic: Uuid) -> Result<(), VectorError> {
        let Some((table, writes, _)) = self.existing(clinic).await? else {
            return Ok(());
        };
        let _write = writes.lock().await;
        table
            .optimize(OptimizeAction::Index(OptimizeOptions::default()))
            .await?;
        Ok(())
    }

    /// Removes the rows of a document.
    pub async fn delete_document(&self, clinic: Uuid, document: Uuid) -> Result<(), VectorError> {
        let Some((table, writes, _)) = self.existing(clinic).await? else {
            return Ok(());
        };
        let _write = writes.lock().await;
        table.delete(&format!("document_id = '{document}'")).await?;
        Ok(())
    }

    /// Removes rows by chunk id.
    pub async fn delete_chunks(&self, clinic: Uuid, ids: &[Uuid]) -> Result<(), VectorError> {
        if ids.is_empty() || !self.has_table(clinic).await? {
            return Ok(());
        }
        let (table, writes, _) = self.handle(clinic).await?;
        let _write = writes.lock().await;
        delete_ids(&table, ids).await
    }

    /// Every chunk id in a clinic's table with how many rows carry it (more
    /// than one would be a duplicate).
    pub async fn chunk_ids(&self, clinic: Uuid) -> Result<HashMap<Uuid, usize>, VectorError> {
        let mut ids = HashMap::new();
        let Some((table, _, _)) = self.existing(clinic).await? else {
            return Ok(ids);
        };
        let batches: Vec<RecordBatch> = table
            .query()
            .select(Select::columns(&["chunk_id"]))
            .execute()
            .await?
            .try_collect()
            .await?;
        for batch in &batches {
            let Some(column) = batch
                .column_by_name("chunk_id")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            else {
                continue;
            };
            for i in 0..column.len() {
                if let Ok(id) = column.value(i).parse() {
                    *ids.entry(id).or_insert(0) += 1;
                }
            }
        }
        Ok(ids)
    }

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

    /// Erases a patient from the clinic's table, including from every older
    /// version of it: deletes the rows, compacts with the deletions
    /// materialised, rebuilds the full-text index, and prunes every version
    /// but the new one.
    pub async fn erase_patient(&self, clinic: Uuid, patient: Uuid) -> Result<(), VectorError> {
        let Some((table, writes, fts)) = self.existing(clinic).await? else {
            return Ok(());
        };
        let _write = writes.lock().await;
        table.delete(&format!("patient_id = '{patient}'")).await?;
        table
            .optimize(OptimizeAction::Compact {
                options: CompactionOptions {
                    materialize_deletions: true,
                    materialize_deletions_threshold: 0.0,
                    ..CompactionOptions::default()
                },
                remap_options: None,
            })
            .await?;
        if fts {
            table
                .create_index(&["text"], Index::FTS(FtsIndexBuilder::default()))
                .replace(true)
                .execute()
                .await?;
        }
        // Safe: every writer of this table in this process waits on `writes`.
        table
            .optimize(OptimizeAction::Prune {
                older_than: Some(LanceDuration::zero()),
                delete_unverified: Some(true),
                error_if_tagged_old_versions: Some(false),
            })
            .await?;
        Ok(())
    }

    /// The versions of a clinic's table that can still be opened.
    pub async fn versions(&self, clinic: Uuid) -> Result<Vec<u64>, VectorError> {
        let Some((table, _, _)) = self.existing(clinic).await? else {
            return Ok(Vec::new());
        };
        Ok(table
            .list_versions()
            .await?
            .into_iter()
            .map(|v| v.version)
            .collect())
    }

    /// How many rows of a patient an older version of the table holds, read
    /// through a separate handle (for erasure checks).
    pub async fn patient_rows_at(
        &self,
        clinic: Uuid,
        patient: Uuid,
        version: u64,
    ) -> Result<usize, VectorError> {
        let table = self
            .connection
            .open_table(table_name(clinic))
            .execute()
            .await?;
        table.checkout(version).await?;
        Ok(table
            .count_rows(Some(format!("patient_id = '{patient}'")))
            .await?)
    }

    /// Drops a clinic's table (for `medmemory reindex`).
    pub async fn drop_clinic(&self, clinic: Uuid) -> Result<(), VectorError> {
        let mut tables = self.tables.lock().await;
        tables.remove(&clinic);
        if self
            .connection
            .table_names()
            .execute()
            .await?
            .contains(&table_name(clinic))
        {
            self.connection.drop_table(table_name(clinic), &[]).await?;
        }
        Ok(())
    }

    /// The column names of a clinic's table, if it exists (to detect tables
    /// written by an older build).
    pub async fn columns(&self, clinic: Uuid) -> Result<Option<Vec<String>>, VectorError> {
        if !self.has_table(clinic).await? {
            return Ok(None);
        }
        let table = self
            .connection
            .open_table(table_name(clinic))
            .execute()
            .await?;
        let schema = table.schema().await?;
        Ok(Some(
            schema.fields().iter().map(|f| f.name().clone()).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_filters_are_built_from_typed_values_only() {
        let patient = Uuid::nil();
        let scope = Scope {
            kinds: vec!["observation".into(), "x') OR 1=1 --".into()],
            since: DateTime::from_timestamp(1_700_000_000, 0),
            until: None,
        };
        assert_eq!(
            scope_filter(patient, &scope),
            format!(
                "patient_id = '{patient}' AND kind IN ('observation') AND effective_us >= 1700000000000000"
            )
        );
        let unknown = Scope {
            kinds: vec!["bogus".into()],
            ..Scope::default()
        };
        assert!(scope_filter(patient, &unknown).ends_with("AND kind = ''"));
    }
}
