//! Content-addressed blob storage on the local filesystem. A document's bytes
//! live at `<blobs>/<clinic>/<patient>/<sha[0..2]>/<sha>`, written atomically
//! (temporary file, then rename).
//!
//! Addresses are scoped to the patient: the same bytes uploaded for two
//! patients are two blobs, so de-duplication never links patients, and erasing
//! a patient removes one folder.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The local blob folder.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn invalid() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a sha256")
}

impl BlobStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> BlobStore {
        BlobStore { root: root.into() }
    }

    fn patient_dir(&self, clinic: Uuid, patient: Uuid) -> PathBuf {
        self.root
            .join(clinic.simple().to_string())
            .join(patient.simple().to_string())
    }

    fn path(&self, clinic: Uuid, patient: Uuid, sha256: &str) -> PathBuf {
        self.patient_dir(clinic, patient)
            .join(&sha256[..2])
            .join(sha256)
    }

    /// The SHA-256 of `bytes`, hex.
    pub fn digest(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Stores `bytes` for a patient; returns their SHA-256, hex.
    pub async fn put(&self, clinic: Uuid, patient: Uuid, bytes: &[u8]) -> std::io::Result<String> {
        let sha = Self::digest(bytes);
        let path = self.path(clinic, patient, &sha);
        if tokio::fs::try_exists(&path).await? {
            return Ok(sha);
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(dir).await?;
        let tmp = dir.join(format!(".{sha}.{}", Uuid::new_v4().simple()));
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(sha)
    }

    /// The bytes with this SHA-256 of a patient.
    pub async fn get(&self, clinic: Uuid, patient: Uuid, sha256: &str) -> std::io::Result<Vec<u8>> {
        if !is_sha256(sha256) {
            return Err(invalid());
        }
        match tokio::fs::read(self.path(clinic, patient, sha256)).await {
            // Blobs stored by the first releases sat in one shared folder.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tokio::fs::read(self.root.join(&sha256[..2]).join(sha256)).await
            }
            other => other,
        }
    }

    /// Removes one blob of a patient; a missing blob is not an error.
    pub async fn delete(&self, clinic: Uuid, patient: Uuid, sha256: &str) -> std::io::Result<()> {
        if !is_sha256(sha256) {
            return Err(invalid());
        }
        match tokio::fs::remove_file(self.path(clinic, patient, sha256)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes every blob of a patient.
    pub async fn erase_patient(&self, clinic: Uuid, patient: Uuid) -> std::io::Result<()> {
        match tokio::fs::remove_dir_all(self.patient_dir(clinic, patient)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The hashes of every blob stored for a patient, and leftover temporary
    /// files from interrupted writes.
    pub async fn list_patient(
        &self,
        clinic: Uuid,
        patient: Uuid,
    ) -> std::io::Result<(Vec<String>, Vec<PathBuf>)> {
        let mut blobs = Vec::new();
        let mut partial = Vec::new();
        let dir = self.patient_dir(clinic, patient);
        let mut prefixes = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((blobs, partial)),
            Err(e) => return Err(e),
        };
        while let Some(prefix) = prefixes.next_entry().await? {
            if !prefix.file_type().await?.is_dir() {
                continue;
            }
            let mut files = tokio::fs::read_dir(prefix.path()).await?;
            while let Some(file) = files.next_entry().await? {
                let name = file.file_name().to_string_lossy().into_owned();
                if is_sha256(&name) {
                    blobs.push(name);
                } else if name.starts_with('.') {
                    partial.push(file.path());
                }
            }
        }
        Ok((blobs, partial))
    }

    /// The clinic and patient folders present (for reconciliation).
    pub async fn patients(&self) -> std::io::Result<Vec<(Uuid, Uuid)>> {
        let mut out = Vec::new();
        let mut clinics = match tokio::fs::read_dir(&self.root).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        while let Some(clinic) = clinics.next_entry().await? {
            let Ok(clinic_id) = Uuid::try_parse(&clinic.file_name().to_string_lossy()) else {
                continue;
            };
            let mut patients = tokio::fs::read_dir(clinic.path()).await?;
            while let Some(patient) = patients.next_entry().await? {
                if let Ok(patient_id) = Uuid::try_parse(&patient.file_name().to_string_lossy()) {
                    out.push((clinic_id, patient_id));
                }
            }
        }
        Ok(out)
    }
}
