//! A backup folder's manifest: what the folder holds and the size and
//! SHA-256 of every file in it, and the check of a folder against it.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::backup::{POSTGRES_FILE, SQLITE_FILE};

/// The manifest's file name in a backup folder.
pub const MANIFEST: &str = "manifest.json";
/// The layout this build writes and reads.
pub const FORMAT: u32 = 1;

/// What a backup folder holds, written last.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The layout of the folder (1).
    pub format: u32,
    /// When the backup was taken.
    pub created_at: DateTime<Utc>,
    /// The `medmemory` version that took it.
    pub medmemory_version: String,
    /// The database file: `database.sqlite` or `database.pgdump`.
    pub database: String,
    /// Each clinic's vector table: the version copied and its rows.
    pub vector_tables: Vec<VectorTable>,
    /// Document blobs copied.
    pub blobs: usize,
    /// Blobs the database named that were gone when copied (a document
    /// deleted or a patient erased during the backup).
    pub missing_blobs: Vec<String>,
    /// Every other file of the folder, by path relative to it.
    pub files: BTreeMap<String, FileSum>,
}

/// A clinic's vector table in a backup.
#[derive(Debug, Serialize, Deserialize)]
pub struct VectorTable {
    /// The clinic.
    pub clinic: Uuid,
    /// The version of the live table that was copied.
    pub version: u64,
    /// Its rows.
    pub rows: usize,
}

/// A file's size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    /// Bytes.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// Every file under `root`, by path relative to it, but the manifest.
pub(super) fn files(root: &Path) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                folders.push(entry.path());
            } else if kind.is_file() {
                let relative = entry.path().strip_prefix(root).map(Path::to_path_buf);
                let relative = relative.map_err(std::io::Error::other)?;
                let name = relative.to_string_lossy().replace('\\', "/");
                if name != MANIFEST {
                    found.push(name);
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// A file's size and SHA-256, read in 1 MiB pieces.
pub fn sum(path: &Path) -> std::io::Result<FileSum> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok(FileSum {
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

pub fn sums(root: &Path) -> std::io::Result<BTreeMap<String, FileSum>> {
    files(root)?
        .into_iter()
        .map(|name| Ok((name.clone(), sum(&root.join(&name))?)))
        .collect()
}

/// Reads a backup's manifest and checks every file against it; returns the
/// manifest and the problems found (none: the backup is intact).
pub async fn verify(dir: &Path) -> anyhow::Result<(Manifest, Vec<String>)> {
    let text = std::fs::read(dir.join(MANIFEST))
        .with_context(|| format!("reading {}", dir.join(MANIFEST).display()))?;
    let manifest: Manifest = serde_json::from_slice(&text).context("the manifest")?;
    anyhow::ensure!(
        manifest.format == FORMAT,
        "this backup has format {} and this build reads {FORMAT}",
        manifest.format
    );
    let root = dir.to_path_buf();
    let found = tokio::task::spawn_blocking(move || sums(&root)).await??;
    let mut problems = Vec::new();
    for (name, expected) in &manifest.files {
        match found.get(name) {
            None => problems.push(format!("{name}: missing")),
            Some(actual) if actual != expected => problems.push(format!(
                "{name}: {} bytes with SHA-256 {}, the manifest says {} bytes with {}",
                actual.bytes, actual.sha256, expected.bytes, expected.sha256
            )),
            Some(_) => {}
        }
    }
    for name in found.keys() {
        if !manifest.files.contains_key(name) {
            problems.push(format!("{name}: not in the manifest"));
        }
    }
    if ![SQLITE_FILE, POSTGRES_FILE].contains(&manifest.database.as_str())
        || !manifest.files.contains_key(&manifest.database)
    {
        problems.push(format!("{}: not a database file", manifest.database));
    }
    Ok((manifest, problems))
}
