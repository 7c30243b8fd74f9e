//! Vectors: one LanceDB table per clinic, derived from the chunks in SQL.
//!
//! LanceDB is an index, not a source of truth: `medmemory reindex` can rebuild
//! it from SQL. Every search goes through [`VectorStore::search_patient`], which
//! takes typed ids and prefilters by patient inside the clinic's table, so no
//! caller ever builds a filter string and no hit can come from elsewhere.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::types::Float32Type;
use arrow_array::{Array, FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase};
use lancedb::{Connection, DistanceType, Table};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::ml::{DIM, MODEL_ID};

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

/// One vector to index: a chunk's embedding with the ids that scope it.
#[derive(Debug, Clone)]
pub struct VectorRow {
    /// The chunk's id (the key back into SQL).
    pub chunk_id: Uuid,
    /// The patient the chunk belongs to.
    pub patient_id: Uuid,
    /// The document it came from.
    pub document_id: Uuid,
    /// The embedding.
    pub vector: Vec<f32>,
}

/// A nearest neighbour.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    /// The chunk's id.
    pub chunk_id: Uuid,
    /// Cosine similarity, 1 is identical.
    pub score: f32,
}

/// The embedded (or object-storage) LanceDB database.
pub struct VectorStore {
    connection: Connection,
    tables: Mutex<HashMap<Uuid, Table>>,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("chunk_id", DataType::Utf8, false),
        Field::new("patient_id", DataType::Utf8, false),
        Field::new("document_id", DataType::Utf8, false),
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

fn table_name(clinic: Uuid) -> String {
    format!("clinic_{}", clinic.simple())
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

    async fn table(&self, clinic: Uuid) -> Result<Table, VectorError> {
        let mut tables = self.tables.lock().await;
        if let Some(table) = tables.get(&clinic) {
            return Ok(table.clone());
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
        tables.insert(clinic, table.clone());
        Ok(table)
    }

    /// Replaces the vectors of `document` in `clinic` with `rows`.
    pub async fn replace_document(
        &self,
        clinic: Uuid,
        document: Uuid,
        rows: &[VectorRow],
    ) -> Result<(), VectorError> {
        let table = self.table(clinic).await?;
        // `document` is a typed UUID: its text form has no quotes to escape.
        table.delete(&format!("document_id = '{document}'")).await?;
        if rows.is_empty() {
            return Ok(());
        }
        for row in rows {
            if row.vector.len() != DIM {
                return Err(VectorError::Dimension(row.vector.len()));
            }
        }
        let strings = |f: fn(&VectorRow) -> Uuid| {
            StringArray::from_iter_values(rows.iter().map(|r| f(r).to_string()))
        };
        let vectors = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
            rows.iter()
                .map(|r| Some(r.vector.iter().map(|v| Some(*v)).collect::<Vec<_>>())),
            DIM as i32,
        );
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(strings(|r| r.chunk_id)),
                Arc::new(strings(|r| r.patient_id)),
                Arc::new(strings(|r| r.document_id)),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|_| MODEL_ID))),
                Arc::new(vectors),
            ],
        )?;
        table.add(batch).execute().await?;
        Ok(())
    }

    /// The `limit` nearest chunks of one patient, best first.
    ///
    /// The patient filter is applied before the vector search (prefilter), so a
    /// patient with few chunks in a large clinic still gets `limit` hits and no
    /// other patient's chunk is ever considered.
    pub async fn search_patient(
        &self,
        clinic: Uuid,
        patient: Uuid,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<VectorHit>, VectorError> {
        if query.len() != DIM {
            return Err(VectorError::Dimension(query.len()));
        }
        let table = self.table(clinic).await?;
        // `patient` is a typed UUID: its text form has no quotes to escape.
        let batches: Vec<RecordBatch> = table
            .query()
            .nearest_to(query)?
            .distance_type(DistanceType::Cosine)
            .only_if(format!("patient_id = '{patient}'"))
            .limit(limit)
            .execute()
            .await?
            .try_collect()
            .await?;
        let mut hits = Vec::new();
        for batch in &batches {
            let ids = batch
                .column_by_name("chunk_id")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>());
            let distances = batch
                .column_by_name("_distance")
                .and_then(|c| c.as_any().downcast_ref::<Float32Array>());
            let (Some(ids), Some(distances)) = (ids, distances) else {
                continue;
            };
            for i in 0..batch.num_rows() {
                if ids.is_null(i) {
                    continue;
                }
                if let Ok(chunk_id) = ids.value(i).parse() {
                    hits.push(VectorHit {
                        chunk_id,
                        score: 1.0 - distances.value(i),
                    });
                }
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(hits)
    }
}
