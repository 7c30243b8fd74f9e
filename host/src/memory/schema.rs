//! The layout of a clinic's vector table: one row per chunk with the ids
//! that scope it, its kind and time for filters, the chunk text for the BM25
//! index, the model, and the vector. The text is a derived copy: SQL holds the
//! chunk, and search reads results back from SQL.

use std::sync::Arc;

use arrow_array::types::Float32Type;
use arrow_array::{FixedSizeListArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::VectorError;
use crate::ml::{DIM, MODEL_ID};

/// The layout of the tables this build writes. A table recorded with another
/// version (or model, or dimension) must be rebuilt with `medmemory reindex`.
pub const SCHEMA_VERSION: i64 = 2;

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

pub(super) fn schema() -> SchemaRef {
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

pub(super) fn batch(rows: &[VectorRow]) -> Result<RecordBatch, VectorError> {
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
