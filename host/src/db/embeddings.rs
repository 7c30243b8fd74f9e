//! The embedding cache: vectors already computed for a text of a patient, by
//! model. Re-processing a document, a retry after a crash or a reindex reuses
//! them instead of running the model again. Keyed by the text's SHA-256 and
//! scoped to the patient, so erasing the patient erases them too.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Db, WritePool, now};
use crate::on_pool;

/// The SHA-256 of a text, hex: the cache key.
pub fn text_key(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn to_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

impl Db {
    /// The cached vectors of these text keys for this patient and model.
    pub async fn cached_embeddings(
        &self,
        clinic: Uuid,
        patient: Uuid,
        model: &str,
        keys: &[String],
    ) -> sqlx::Result<HashMap<String, Vec<f32>>> {
        let mut found = HashMap::new();
        for batch in keys.chunks(64) {
            let marks: Vec<String> = (0..batch.len()).map(|i| format!("${}", i + 4)).collect();
            let sql = format!(
                "SELECT text_sha256, vector FROM embeddings
                 WHERE clinic_id = $1 AND patient_id = $2 AND model = $3 AND text_sha256 IN ({})",
                marks.join(", ")
            );
            let rows: Vec<(String, Vec<u8>)> = on_pool!(self, pool => {
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(clinic)
                    .bind(patient)
                    .bind(model);
                for key in batch {
                    query = query.bind(key);
                }
                query.fetch_all(pool).await?
            });
            found.extend(rows.into_iter().map(|(k, v)| (k, from_bytes(&v))));
        }
        Ok(found)
    }

    /// Remembers vectors by text key; keys already cached are left alone.
    pub async fn cache_embeddings(
        &self,
        clinic: Uuid,
        patient: Uuid,
        model: &str,
        items: &[(String, Vec<f32>)],
    ) -> sqlx::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let at = now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for (key, vector) in items {
                sqlx::query(
                    "INSERT INTO embeddings (clinic_id, patient_id, model, text_sha256, vector, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(clinic)
                .bind(patient)
                .bind(model)
                .bind(key)
                .bind(to_bytes(vector))
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// What a clinic's vector table was built with.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct VectorTable {
    /// The embedding model id.
    pub model: String,
    /// The vector dimension.
    pub dimension: i64,
    /// The table layout version.
    pub schema_version: i64,
}

impl Db {
    /// What the clinic's vector table was recorded as built with.
    pub async fn vector_table(&self, clinic: Uuid) -> sqlx::Result<Option<VectorTable>> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT model, dimension, schema_version FROM vector_tables WHERE clinic_id = $1",
            )
            .bind(clinic)
            .fetch_optional(pool)
            .await
        })
    }

    /// Records what the clinic's vector table was built with.
    pub async fn record_vector_table(
        &self,
        clinic: Uuid,
        model: &str,
        dimension: i64,
        schema_version: i64,
    ) -> sqlx::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO vector_tables (clinic_id, model, dimension, schema_version, built_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (clinic_id) DO UPDATE SET model = excluded.model,
                   dimension = excluded.dimension, schema_version = excluded.schema_version,
                   built_at = excluded.built_at",
            )
            .bind(clinic)
            .bind(model)
            .bind(dimension)
            .bind(schema_version)
            .bind(now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_through_bytes() {
        let v = vec![0.25f32, -1.5, 3.0e-8, f32::MAX];
        assert_eq!(from_bytes(&to_bytes(&v)), v);
        assert_eq!(text_key("a").len(), 64);
        assert_ne!(text_key("a"), text_key("b"));
    }
}
