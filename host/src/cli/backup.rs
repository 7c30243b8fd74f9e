//! `medmemory backup DIR`, `medmemory backup verify DIR` and
//! `medmemory restore DIR`.
//!
//! A backup folder holds the database (an SQLite copy or a PostgreSQL dump,
//! one snapshot), each clinic's vector table at one version (tagged in the
//! copy), the document blobs that snapshot names, the installed plugin
//! components, and `manifest.json` with the size and SHA-256 of every other
//! file. A backup is taken while the servers run; a restore needs every
//! server on that database stopped, verifies the folder first, replaces the
//! database, the vectors and the blobs, and records itself in the audit
//! trail, whose chain continues from the restored one.
//!
//! Erasure and backups: a backup holds what the database held when it was
//! taken, including patients erased since. Restoring it brings them back, so
//! after a restore the erasures recorded after the backup's `created_at`
//! must be repeated; `restore` lists them (ids only) from the database it
//! replaces, when it can read it.

use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::blobs::BlobStore;
use crate::config::Settings;
use crate::db::Db;
use crate::db::audit::AuditEvent;
use crate::db::backup::BlobRef;
use crate::memory::{TableCopy, VectorStore};

use super::manifest::{FORMAT, MANIFEST, Manifest, VectorTable, files, sums, verify};

const VECTORS: &str = "vectors";
const BLOBS: &str = "blobs";
const PLUGIN_STORE: &str = "plugin-store";

/// Copies the files of a local folder that `to` lacks.
fn copy_missing(from: &Path, to: &Path) -> std::io::Result<usize> {
    if !from.is_dir() {
        return Ok(0);
    }
    let mut copied = 0;
    for name in files(from)? {
        let target = to.join(&name);
        if !target.exists() {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(from.join(&name), &target)?;
            copied += 1;
        }
    }
    Ok(copied)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

/// What [`backup`] wrote.
#[derive(Debug)]
pub struct Written {
    /// The manifest.
    pub manifest: Manifest,
}

/// Takes a backup into `dir`, which must be missing or empty.
pub async fn backup(settings: &Settings, dir: &Path) -> anyhow::Result<Written> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        anyhow::ensure!(empty, "{} is not empty", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let created_at = Utc::now();
    let url = settings.database_url();
    let db = Db::connect(&url).await?;
    // Recorded first, so the backup's own trail says it was taken.
    let mut event = AuditEvent::now("cli", "backup", "create", "succeeded");
    event.detail = Some(serde_json::json!({ "created_at": created_at }).to_string());
    db.append_audit(&event).await?;
    let dump = db.dump(&url, dir).await?;
    db.close().await;

    let live = VectorStore::open(&settings.vector_uri()).await?;
    let copies = VectorStore::open(&dir.join(VECTORS).to_string_lossy()).await?;
    let mut vector_tables = Vec::new();
    for clinic in live.clinics().await? {
        let TableCopy {
            clinic,
            version,
            rows,
        } = live.copy_to(clinic, &copies).await?;
        vector_tables.push(VectorTable {
            clinic,
            version,
            rows,
        });
    }

    let blobs = BlobStore::open(&settings.blob_url())?;
    let copied = BlobStore::new(dir.join(BLOBS));
    let mut missing_blobs = Vec::new();
    for BlobRef {
        clinic,
        patient,
        sha256,
    } in &dump.blobs
    {
        match blobs.get(*clinic, *patient, sha256).await {
            Ok(bytes) => {
                let sha = copied.put(*clinic, *patient, &bytes).await?;
                anyhow::ensure!(&sha == sha256, "the blob {sha256} does not match its name");
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing_blobs.push(sha256.clone());
            }
            Err(e) => return Err(e).context("reading a blob"),
        }
    }
    let plugin_store = settings.plugin_store_dir();
    let plugin_copy = dir.join(PLUGIN_STORE);
    blocking(move || copy_missing(&plugin_store, &plugin_copy)).await?;

    let root = dir.to_path_buf();
    let files = blocking(move || sums(&root)).await?;
    let manifest = Manifest {
        format: FORMAT,
        created_at,
        medmemory_version: env!("CARGO_PKG_VERSION").to_owned(),
        database: dump.file.to_owned(),
        vector_tables,
        blobs: dump.blobs.len() - missing_blobs.len(),
        missing_blobs,
        files,
    };
    let staged = dir.join(".manifest.json.tmp");
    std::fs::write(&staged, serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::rename(&staged, dir.join(MANIFEST))?;
    Ok(Written { manifest })
}

/// What [`restore`] did.
#[derive(Debug)]
pub struct Restored {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// Vector rows restored.
    pub vector_rows: usize,
    /// Patients erased in the replaced database after the backup was taken
    /// (clinic, patient): their erasure must be repeated.
    pub erased_since: Vec<(Uuid, Uuid)>,
}

/// Restores the backup in `dir` over the configured database, vector store
/// and blob store. Every server using them must be stopped.
pub async fn restore(settings: &Settings, dir: &Path) -> anyhow::Result<Restored> {
    let (manifest, problems) = verify(dir).await?;
    anyhow::ensure!(
        problems.is_empty(),
        "the backup does not verify:\n{}",
        problems.join("\n")
    );
    let url = settings.database_url();
    let erased_since = erased_since(&url, manifest.created_at).await;
    crate::db::backup::restore(&url, &dir.join(&manifest.database)).await?;

    let live = VectorStore::open(&settings.vector_uri()).await?;
    let copies = VectorStore::open(&dir.join(VECTORS).to_string_lossy()).await?;
    let kept: Vec<Uuid> = manifest.vector_tables.iter().map(|t| t.clinic).collect();
    for clinic in live.clinics().await? {
        if !kept.contains(&clinic) {
            live.drop_clinic(clinic).await?;
        }
    }
    let mut vector_rows = 0;
    for table in &manifest.vector_tables {
        vector_rows += live.restore_from(table.clinic, &copies).await?;
    }

    let blobs = BlobStore::open(&settings.blob_url())?;
    for (clinic, patient) in blobs.patients().await? {
        blobs.erase_patient(clinic, patient).await?;
    }
    let copied = BlobStore::new(dir.join(BLOBS));
    for (clinic, patient) in copied.patients().await? {
        for (sha, _) in copied.list_patient(clinic, patient).await?.0 {
            let bytes = copied.get(clinic, patient, &sha).await?;
            blobs.put(clinic, patient, &bytes).await?;
        }
    }
    let plugin_copy = dir.join(PLUGIN_STORE);
    let plugin_store = settings.plugin_store_dir();
    blocking(move || copy_missing(&plugin_copy, &plugin_store)).await?;

    // The restored database is brought to this build's schema, and its
    // trail says it was restored.
    let db = Db::connect(&url).await?;
    db.migrate().await?;
    let mut event = AuditEvent::now("cli", "backup", "restore", "succeeded");
    event.detail = Some(
        serde_json::json!({
            "created_at": manifest.created_at,
            "erased_since": erased_since.len(),
        })
        .to_string(),
    );
    db.append_audit(&event).await?;
    db.close().await;
    Ok(Restored {
        manifest,
        vector_rows,
        erased_since,
    })
}

/// The erasures the database at `url` recorded after `since`, if it can be
/// read (a missing or broken database has none to tell).
async fn erased_since(url: &str, since: DateTime<Utc>) -> Vec<(Uuid, Uuid)> {
    let Ok(db) = Db::connect(url).await else {
        return Vec::new();
    };
    let erased = db.erasures_since(since).await.unwrap_or_default();
    db.close().await;
    erased
}

/// `medmemory backup DIR`: takes the backup and reports it on stderr.
pub async fn backup_command(settings: &Settings, dir: &Path) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let written = backup(settings, dir).await?;
    let m = &written.manifest;
    let rows: usize = m.vector_tables.iter().map(|t| t.rows).sum();
    let bytes: u64 = m.files.values().map(|f| f.bytes).sum();
    eprintln!(
        "backed up {} ({} vector tables, {rows} rows; {} blobs; {} files, {bytes} bytes) into {} in {:.1} s",
        m.database,
        m.vector_tables.len(),
        m.blobs,
        m.files.len(),
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    if !m.missing_blobs.is_empty() {
        eprintln!(
            "{} blobs were gone when copied (deleted or erased during the backup)",
            m.missing_blobs.len()
        );
    }
    Ok(())
}

/// `medmemory backup verify DIR`: prints each problem on stdout; fails if
/// there is one.
pub async fn verify_command(dir: &Path) -> anyhow::Result<()> {
    let (manifest, problems) = verify(dir).await?;
    for problem in &problems {
        println!("{problem}");
    }
    anyhow::ensure!(
        problems.is_empty(),
        "the backup in {} does not verify ({} problems)",
        dir.display(),
        problems.len()
    );
    eprintln!(
        "the backup of {} verifies: {} files",
        manifest.created_at.to_rfc3339(),
        manifest.files.len()
    );
    Ok(())
}

/// `medmemory restore DIR`: restores, and prints the erasures to repeat
/// (clinic and patient ids) on stdout.
pub async fn restore_command(settings: &Settings, dir: &Path) -> anyhow::Result<()> {
    let restored = restore(settings, dir).await?;
    eprintln!(
        "restored the backup of {} ({} vector rows)",
        restored.manifest.created_at.to_rfc3339(),
        restored.vector_rows
    );
    if !restored.erased_since.is_empty() {
        eprintln!(
            "{} patients were erased after this backup was taken; erase them again (clinic and patient ids on stdout)",
            restored.erased_since.len()
        );
        for (clinic, patient) in &restored.erased_since {
            println!("{clinic}\t{patient}");
        }
    }
    Ok(())
}
