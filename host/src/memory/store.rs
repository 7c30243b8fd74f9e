//! The LanceDB side: one table per clinic, opened (or created) on first use,
//! with writes to one table serialised in this process so that the version
//! pruning of an erasure never races a write. Reads and deletes never create
//! a table.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use lancedb::index::Index;
use lancedb::index::scalar::{BTreeIndexBuilder, FtsIndexBuilder};
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancedb::table::OptimizeAction;
use lancedb::table::OptimizeOptions;
use lancedb::{Connection, Table};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::VectorError;
use super::schema::{VectorRow, batch, schema, table_name};

pub(super) struct Handle {
    table: Table,
    /// Serialises writes (and pruning) on this table within the process.
    writes: Arc<Mutex<()>>,
    fts: bool,
}

/// How stale a read may be with respect to other instances' writes.
const READ_CONSISTENCY: std::time::Duration = std::time::Duration::from_secs(1);

/// The embedded (or object-storage) LanceDB database.
pub struct VectorStore {
    pub(super) connection: Connection,
    tables: Mutex<HashMap<Uuid, Handle>>,
}

/// Deletes rows by chunk id, a bounded list at a time. Every id is a typed
/// UUID, so the filter holds nothing a caller typed.
pub(super) async fn delete_ids(table: &Table, ids: &[Uuid]) -> Result<(), VectorError> {
    for part in ids.chunks(500) {
        let quoted: Vec<String> = part.iter().map(|id| format!("'{id}'")).collect();
        table
            .delete(&format!("chunk_id IN ({})", quoted.join(", ")))
            .await?;
    }
    Ok(())
}

impl VectorStore {
    /// Opens (creating if needed) the database at `uri`. Reads look for
    /// other instances' writes at most a second old: several hosts may share
    /// one store.
    pub async fn open(uri: &str) -> Result<VectorStore, VectorError> {
        let connection = lancedb::connect(uri)
            .read_consistency_interval(READ_CONSISTENCY)
            .execute()
            .await?;
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
    pub(super) async fn handle(
        &self,
        clinic: Uuid,
    ) -> Result<(Table, Arc<Mutex<()>>, bool), VectorError> {
        let mut tables = self.tables.lock().await;
        if let Some(h) = tables.get(&clinic) {
            return Ok((h.table.clone(), h.writes.clone(), h.fts));
        }
        let name = table_name(clinic);
        let table = match self.connection.open_table(&name).execute().await {
            Ok(table) => table,
            Err(lancedb::Error::TableNotFound { .. }) => {
                match self
                    .connection
                    .create_empty_table(&name, schema())
                    .execute()
                    .await
                {
                    Ok(table) => table,
                    // Another instance created it meanwhile.
                    Err(lancedb::Error::TableAlreadyExists { .. }) => {
                        self.connection.open_table(&name).execute().await?
                    }
                    Err(e) => return Err(e.into()),
                }
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
    pub(super) async fn existing(
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
    pub(super) async fn ensure_fts(&self, clinic: Uuid, table: &Table) -> Result<(), VectorError> {
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

    /// Adds rows without looking for earlier copies: for chunks with fresh
    /// ids, and for a rebuild into an empty table.
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

    /// Removes the rows of a document except `keep` (the chunks its
    /// committed job made): what an earlier or a superseded attempt left.
    pub async fn prune_document(
        &self,
        clinic: Uuid,
        document: Uuid,
        keep: &[Uuid],
    ) -> Result<(), VectorError> {
        let Some((table, writes, _)) = self.existing(clinic).await? else {
            return Ok(());
        };
        // Typed UUIDs only: the filter holds nothing a caller typed.
        let mut filter = format!("document_id = '{document}'");
        if !keep.is_empty() {
            let quoted: Vec<String> = keep.iter().map(|id| format!("'{id}'")).collect();
            filter.push_str(&format!(" AND chunk_id NOT IN ({})", quoted.join(", ")));
        }
        let _write = writes.lock().await;
        table.delete(&filter).await?;
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
