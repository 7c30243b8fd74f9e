//! Erasing a patient from a clinic's table, including from every older
//! version of it, and the checks that prove it.

use lancedb::index::Index;
use lancedb::index::scalar::FtsIndexBuilder;
use lancedb::table::{CompactionOptions, Duration as LanceDuration, OptimizeAction};
use uuid::Uuid;

use super::VectorError;
use super::schema::table_name;
use super::store::VectorStore;

impl VectorStore {
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
        // Every older version goes, with the files only they reference. Files
        // no version references yet are kept (`delete_unverified: false`):
        // another instance sharing the store may be about to commit them, and
        // deleting them would corrupt its write. They hold only what that
        // write adds, never the erased rows.
        table
            .optimize(OptimizeAction::Prune {
                older_than: Some(LanceDuration::zero()),
                delete_unverified: Some(false),
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
}
