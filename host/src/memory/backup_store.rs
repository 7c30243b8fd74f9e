//! Copying clinics' tables into a backup's vector store and back.
//!
//! A copy holds one version of the table, read through a handle pinned to
//! it, and nothing of its history: rows erased before the backup are in no
//! version of the copy. In the backup the copy's version is tagged, and a
//! restore reads that tag, so rows added to a backup folder later are never
//! restored.

use lancedb::Table;
use lancedb::query::ExecutableQuery;
use uuid::Uuid;

use super::VectorError;
use super::schema::table_name;
use super::store::VectorStore;

/// The tag of the version a backup holds.
pub const BACKUP_TAG: &str = "backup";

/// A clinic's table as copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableCopy {
    /// The clinic.
    pub clinic: Uuid,
    /// The version of the source table that was copied.
    pub version: u64,
    /// Its rows.
    pub rows: usize,
}

impl VectorStore {
    /// The clinics that have a table.
    pub async fn clinics(&self) -> Result<Vec<Uuid>, VectorError> {
        let names = self.connection.table_names().execute().await?;
        Ok(names
            .iter()
            .filter_map(|n| n.strip_prefix("clinic_"))
            .filter_map(|id| Uuid::try_parse(id).ok())
            .filter(|clinic| names.contains(&table_name(*clinic)))
            .collect())
    }

    /// Copies the clinic's table as it is now into `to` (replacing a table of
    /// the same name there) and tags the copy [`BACKUP_TAG`].
    pub async fn copy_to(&self, clinic: Uuid, to: &VectorStore) -> Result<TableCopy, VectorError> {
        let source = self
            .connection
            .open_table(table_name(clinic))
            .execute()
            .await?;
        let version = source.version().await?;
        // Pinned: writes by this or another instance during the copy are
        // not seen, so the copy is that one version.
        source.checkout(version).await?;
        let copy = copy_rows(&source, to, clinic).await?;
        let rows = copy.count_rows(None).await?;
        let copied = copy.version().await?;
        copy.tags().await?.create(BACKUP_TAG, copied).await?;
        Ok(TableCopy {
            clinic,
            version,
            rows,
        })
    }

    /// Replaces the clinic's table by the version of `from` tagged
    /// [`BACKUP_TAG`], and builds its indexes.
    pub async fn restore_from(
        &self,
        clinic: Uuid,
        from: &VectorStore,
    ) -> Result<usize, VectorError> {
        let source = from
            .connection
            .open_table(table_name(clinic))
            .execute()
            .await?;
        source.checkout_tag(BACKUP_TAG).await?;
        self.drop_clinic(clinic).await?;
        let table = copy_rows(&source, self, clinic).await?;
        let rows = table.count_rows(None).await?;
        if rows > 0 {
            self.ensure_fts(clinic, &table).await?;
        }
        Ok(rows)
    }
}

/// Writes every row `source` shows into a new table of `to`, streamed.
async fn copy_rows(source: &Table, to: &VectorStore, clinic: Uuid) -> Result<Table, VectorError> {
    let rows = source.query().execute().await?;
    Ok(to
        .connection
        .create_table(table_name(clinic), rows)
        .mode(lancedb::database::CreateTableMode::Overwrite)
        .execute()
        .await?)
}
