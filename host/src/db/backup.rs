//! Backups of the database: one consistent copy of it, taken while the
//! servers run, and its restore over the configured database while they are
//! stopped.
//!
//! SQLite is copied with `VACUUM INTO` (one read transaction, so a snapshot);
//! PostgreSQL with `pg_dump` in the custom format, inside a repeatable-read
//! transaction whose exported snapshot the dump shares, so that the list of
//! document blobs read here is exactly the dump's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;

use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use uuid::Uuid;

use super::Db;

/// The file name of an SQLite copy inside a backup folder.
pub const SQLITE_FILE: &str = "database.sqlite";
/// The file name of a PostgreSQL dump inside a backup folder.
pub const POSTGRES_FILE: &str = "database.pgdump";

/// A document blob that the copied database names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlobRef {
    /// The clinic.
    pub clinic: Uuid,
    /// The patient.
    pub patient: Uuid,
    /// The blob's SHA-256, hex.
    pub sha256: String,
}

/// What [`Db::dump`] wrote.
#[derive(Debug)]
pub struct Dump {
    /// The file, relative to the backup folder.
    pub file: &'static str,
    /// The blobs that the copy's documents name.
    pub blobs: Vec<BlobRef>,
}

const BLOB_REFS: &str = "SELECT DISTINCT clinic_id, patient_id, sha256 FROM documents";

/// The database file an `sqlite://` URL names.
fn sqlite_file(url: &str) -> anyhow::Result<PathBuf> {
    let options = SqliteConnectOptions::from_str(url).context("the SQLite URL")?;
    Ok(options.get_filename().to_path_buf())
}

/// Runs a PostgreSQL client tool; its error output is the error.
async fn run_tool(tool: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {tool} (install PostgreSQL's client tools)"))?;
    anyhow::ensure!(
        output.status.success(),
        "{tool} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

impl Db {
    /// Copies the whole database into `dir` as one consistent snapshot;
    /// `url` is the URL this handle was opened with (the PostgreSQL tools
    /// connect themselves).
    pub async fn dump(&self, url: &str, dir: &Path) -> anyhow::Result<Dump> {
        match self {
            Db::Sqlite(pool) => {
                let target = dir.join(SQLITE_FILE);
                let target_text = target.to_str().context("a backup path must be UTF-8")?;
                sqlx::query("VACUUM INTO $1")
                    .bind(target_text)
                    .execute(pool)
                    .await
                    .context("VACUUM INTO")?;
                // The copy is one self-contained file (no WAL beside it); the
                // blob list is read from the copy itself.
                let copy = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(
                        SqliteConnectOptions::new()
                            .filename(&target)
                            .journal_mode(SqliteJournalMode::Delete),
                    )
                    .await?;
                let rows: Vec<(Uuid, Uuid, String)> =
                    sqlx::query_as(BLOB_REFS).fetch_all(&copy).await?;
                copy.close().await;
                Ok(Dump {
                    file: SQLITE_FILE,
                    blobs: blob_refs(rows),
                })
            }
            Db::Postgres(pool) => {
                let target = dir.join(POSTGRES_FILE);
                let target_text = target.to_str().context("a backup path must be UTF-8")?;
                let mut tx = pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
                let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
                    .fetch_one(&mut *tx)
                    .await?;
                run_tool(
                    "pg_dump",
                    &[
                        "--format=custom",
                        "--no-owner",
                        "--no-privileges",
                        "--snapshot",
                        &snapshot,
                        "--file",
                        target_text,
                        "--dbname",
                        url,
                    ],
                )
                .await?;
                let rows: Vec<(Uuid, Uuid, String)> =
                    sqlx::query_as(BLOB_REFS).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                Ok(Dump {
                    file: POSTGRES_FILE,
                    blobs: blob_refs(rows),
                })
            }
        }
    }

    /// The patients erased after `since` (clinic, patient), oldest first.
    pub async fn erasures_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
        crate::on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT clinic_id, patient_id FROM erasures WHERE requested_at > $1
                 ORDER BY requested_at",
            )
            .bind(since)
            .fetch_all(pool)
            .await
        })
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        crate::on_pool!(self, pool => pool.close().await)
    }
}

fn blob_refs(rows: Vec<(Uuid, Uuid, String)>) -> Vec<BlobRef> {
    let mut refs: Vec<BlobRef> = rows
        .into_iter()
        .map(|(clinic, patient, sha256)| BlobRef {
            clinic,
            patient,
            sha256,
        })
        .collect();
    refs.sort();
    refs
}

/// Replaces the database at `url` by the copy `file` of a backup. Every
/// server on that database must be stopped.
pub async fn restore(url: &str, file: &Path) -> anyhow::Result<()> {
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let dumped_postgres = file.file_name().is_some_and(|n| n == POSTGRES_FILE);
    anyhow::ensure!(
        postgres == dumped_postgres,
        "this backup holds a {} database and the configured one is {}",
        if dumped_postgres {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        if postgres { "PostgreSQL" } else { "SQLite" },
    );
    let file_text = file.to_str().context("a backup path must be UTF-8")?;
    if postgres {
        // Drops what the dump holds and recreates it, all or nothing.
        return run_tool(
            "pg_restore",
            &[
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                "--dbname",
                url,
                file_text,
            ],
        )
        .await;
    }
    let target = sqlite_file(url)?;
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let staged = target.with_extension("db.restoring");
    tokio::fs::copy(file, &staged)
        .await
        .with_context(|| format!("copying the backup to {}", staged.display()))?;
    // The old database's write-ahead log must not be replayed over the copy.
    for suffix in ["-wal", "-shm"] {
        let mut side = target.clone().into_os_string();
        side.push(suffix);
        match tokio::fs::remove_file(&side).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    tokio::fs::rename(&staged, &target).await?;
    Ok(())
}
