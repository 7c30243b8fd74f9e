//! Content-addressed blob storage, in a local folder (the default) or an
//! S3-compatible bucket. A document's bytes live at
//! `<root>/<clinic>/<patient>/<sha[0..2]>/<sha>`, written atomically (a
//! temporary file then a rename locally; one PUT in a bucket).
//!
//! Addresses are scoped to the patient: the same bytes uploaded for two
//! patients are two blobs, so de-duplication never links patients, and erasing
//! a patient removes one folder.
//!
//! A store: uses nothing of MedMemory's own. `memory::Forget` and `ingest`
//! coordinate it with SQL and the vector index.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures::{StreamExt as _, TryStreamExt as _};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Where blobs live: a local folder (the embedded default) or an
/// S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct BlobStore {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Local(PathBuf),
    Object {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
    },
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn invalid() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a sha256")
}

fn io_error(e: object_store::Error) -> std::io::Error {
    match e {
        object_store::Error::NotFound { .. } => {
            std::io::Error::new(std::io::ErrorKind::NotFound, "blob not found")
        }
        other => std::io::Error::other(other),
    }
}

impl BlobStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> BlobStore {
        BlobStore {
            backend: Backend::Local(root.into()),
        }
    }

    /// A store at `url`: `s3://bucket[/prefix]` for S3-compatible object
    /// storage, configured like LanceDB by the standard `AWS_*` variables
    /// (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, ...); a plain path or
    /// `file://` URL for a local folder.
    pub fn open(url: &str) -> anyhow::Result<BlobStore> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(!bucket.is_empty(), "the blob URL {url:?} names no bucket");
            // reqwest's rustls takes the process-wide crypto provider; ring is
            // the one the rest of the tree already uses.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| anyhow::anyhow!("blob store {url:?}: {e}"))?;
            return Ok(BlobStore {
                backend: Backend::Object {
                    store: Arc::new(store),
                    prefix: ObjectPath::from(prefix.trim_matches('/')),
                },
            });
        }
        anyhow::ensure!(
            !url.contains("://") || url.starts_with("file://"),
            "unsupported blob URL {url:?}: use a folder, file:// or s3://"
        );
        Ok(BlobStore::new(url.strip_prefix("file://").unwrap_or(url)))
    }

    fn key(prefix: &ObjectPath, parts: &[&str]) -> ObjectPath {
        parts
            .iter()
            .fold(prefix.clone(), |key, part| key.join(*part))
    }

    fn patient_dir(root: &Path, clinic: Uuid, patient: Uuid) -> PathBuf {
        root.join(clinic.simple().to_string())
            .join(patient.simple().to_string())
    }

    fn patient_key(prefix: &ObjectPath, clinic: Uuid, patient: Uuid) -> ObjectPath {
        Self::key(
            prefix,
            &[&clinic.simple().to_string(), &patient.simple().to_string()],
        )
    }

    fn path(root: &Path, clinic: Uuid, patient: Uuid, sha256: &str) -> PathBuf {
        Self::patient_dir(root, clinic, patient)
            .join(&sha256[..2])
            .join(sha256)
    }

    fn object_key(prefix: &ObjectPath, clinic: Uuid, patient: Uuid, sha256: &str) -> ObjectPath {
        Self::key(
            &Self::patient_key(prefix, clinic, patient),
            &[&sha256[..2], sha256],
        )
    }

    /// The SHA-256 of `bytes`, hex.
    pub fn digest(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Stores `bytes` for a patient; returns their SHA-256, hex.
    pub async fn put(&self, clinic: Uuid, patient: Uuid, bytes: &[u8]) -> std::io::Result<String> {
        let sha = Self::digest(bytes);
        match &self.backend {
            Backend::Local(root) => {
                let path = Self::path(root, clinic, patient, &sha);
                if tokio::fs::try_exists(&path).await? {
                    return Ok(sha);
                }
                let dir = path.parent().unwrap_or(Path::new("."));
                tokio::fs::create_dir_all(dir).await?;
                let tmp = dir.join(format!(".{sha}.{}", Uuid::new_v4().simple()));
                tokio::fs::write(&tmp, bytes).await?;
                tokio::fs::rename(&tmp, &path).await?;
            }
            Backend::Object { store, prefix } => {
                let key = Self::object_key(prefix, clinic, patient, &sha);
                match store.head(&key).await {
                    Ok(_) => return Ok(sha),
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(io_error(e)),
                }
                let payload = bytes::Bytes::copy_from_slice(bytes);
                store.put(&key, payload.into()).await.map_err(io_error)?;
            }
        }
        Ok(sha)
    }

    /// The bytes with this SHA-256 of a patient.
    pub async fn get(&self, clinic: Uuid, patient: Uuid, sha256: &str) -> std::io::Result<Vec<u8>> {
        if !is_sha256(sha256) {
            return Err(invalid());
        }
        match &self.backend {
            Backend::Local(root) => {
                tokio::fs::read(Self::path(root, clinic, patient, sha256)).await
            }
            Backend::Object { store, prefix } => {
                let key = Self::object_key(prefix, clinic, patient, sha256);
                let found = store.get(&key).await.map_err(io_error)?;
                Ok(found.bytes().await.map_err(io_error)?.to_vec())
            }
        }
    }

    /// Removes one blob of a patient; a missing blob is not an error.
    pub async fn delete(&self, clinic: Uuid, patient: Uuid, sha256: &str) -> std::io::Result<()> {
        if !is_sha256(sha256) {
            return Err(invalid());
        }
        let result = match &self.backend {
            Backend::Local(root) => {
                tokio::fs::remove_file(Self::path(root, clinic, patient, sha256)).await
            }
            Backend::Object { store, prefix } => store
                .delete(&Self::object_key(prefix, clinic, patient, sha256))
                .await
                .map_err(io_error),
        };
        match result {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes every blob of a patient.
    pub async fn erase_patient(&self, clinic: Uuid, patient: Uuid) -> std::io::Result<()> {
        match &self.backend {
            Backend::Local(root) => {
                match tokio::fs::remove_dir_all(Self::patient_dir(root, clinic, patient)).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            }
            Backend::Object { store, prefix } => {
                let dir = Self::patient_key(prefix, clinic, patient);
                let keys = store.list(Some(&dir)).map_ok(|meta| meta.location).boxed();
                store
                    .delete_stream(keys)
                    .try_for_each(|_| async { Ok(()) })
                    .await
                    .map_err(io_error)
            }
        }
    }

    /// The hashes of every blob stored for a patient, and leftover temporary
    /// files from interrupted writes (only a local folder has those), each
    /// with when it was last written.
    pub async fn list_patient(
        &self,
        clinic: Uuid,
        patient: Uuid,
    ) -> std::io::Result<(Vec<(String, SystemTime)>, Vec<(PathBuf, SystemTime)>)> {
        let mut blobs = Vec::new();
        let mut partial = Vec::new();
        let root = match &self.backend {
            Backend::Local(root) => root,
            Backend::Object { store, prefix } => {
                let dir = Self::patient_key(prefix, clinic, patient);
                let mut listing = store.list(Some(&dir));
                while let Some(meta) = listing.try_next().await.map_err(io_error)? {
                    if let Some(name) = meta.location.filename().filter(|n| is_sha256(n)) {
                        blobs.push((name.to_owned(), SystemTime::from(meta.last_modified)));
                    }
                }
                return Ok((blobs, partial));
            }
        };
        let dir = Self::patient_dir(root, clinic, patient);
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
                let modified = file
                    .metadata()
                    .await
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                if is_sha256(&name) {
                    blobs.push((name, modified));
                } else if name.starts_with('.') {
                    partial.push((file.path(), modified));
                }
            }
        }
        Ok((blobs, partial))
    }

    /// Blobs in the first releases' shared layout, `<root>/<sha[..2]>/<sha>`
    /// (only a local folder has those): the start-up sweep moves each into
    /// the folders of the patients whose documents name it, or removes it.
    pub async fn legacy_blobs(&self) -> std::io::Result<Vec<String>> {
        let Backend::Local(root) = &self.backend else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        let mut entries = match tokio::fs::read_dir(root).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(e),
        };
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_prefix = name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if !is_prefix || !entry.file_type().await?.is_dir() {
                continue;
            }
            let mut files = tokio::fs::read_dir(entry.path()).await?;
            while let Some(file) = files.next_entry().await? {
                let sha = file.file_name().to_string_lossy().into_owned();
                if is_sha256(&sha) && sha.starts_with(&name) {
                    found.push(sha);
                }
            }
        }
        Ok(found)
    }

    /// Moves a blob of the shared layout into each owner's folder (checking
    /// its hash on the way), then removes it; with no owners it is removed.
    pub async fn adopt_legacy(&self, sha256: &str, owners: &[(Uuid, Uuid)]) -> std::io::Result<()> {
        let Backend::Local(root) = &self.backend else {
            return Ok(());
        };
        if !is_sha256(sha256) {
            return Err(invalid());
        }
        let path = root.join(&sha256[..2]).join(sha256);
        if !owners.is_empty() {
            let bytes = tokio::fs::read(&path).await?;
            if Self::digest(&bytes) != sha256 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a legacy blob does not match its name",
                ));
            }
            for (clinic, patient) in owners {
                self.put(*clinic, *patient, &bytes).await?;
            }
        }
        tokio::fs::remove_file(&path).await?;
        // The prefix folder goes too once empty; a non-empty one stays.
        let _ = tokio::fs::remove_dir(root.join(&sha256[..2])).await;
        Ok(())
    }

    /// The clinic and patient folders present (for reconciliation).
    pub async fn patients(&self) -> std::io::Result<Vec<(Uuid, Uuid)>> {
        let mut out = Vec::new();
        let root = match &self.backend {
            Backend::Local(root) => root,
            Backend::Object { store, prefix } => {
                let prefix = Some(prefix).filter(|p| !p.as_ref().is_empty());
                let clinics = store.list_with_delimiter(prefix).await.map_err(io_error)?;
                for clinic in clinics.common_prefixes {
                    let Some(clinic_id) = clinic.filename().and_then(|n| Uuid::try_parse(n).ok())
                    else {
                        continue;
                    };
                    let patients = store
                        .list_with_delimiter(Some(&clinic))
                        .await
                        .map_err(io_error)?;
                    for patient in patients.common_prefixes {
                        if let Some(patient_id) =
                            patient.filename().and_then(|n| Uuid::try_parse(n).ok())
                        {
                            out.push((clinic_id, patient_id));
                        }
                    }
                }
                return Ok(out);
            }
        };
        let mut clinics = match tokio::fs::read_dir(root).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_urls_name_a_folder_or_a_bucket() {
        assert!(matches!(
            BlobStore::open("/srv/blobs").unwrap().backend,
            Backend::Local(ref p) if p == Path::new("/srv/blobs")
        ));
        assert!(matches!(
            BlobStore::open("file:///srv/blobs").unwrap().backend,
            Backend::Local(ref p) if p == Path::new("/srv/blobs")
        ));
        let Backend::Object { prefix, .. } = BlobStore::open("s3://bucket/a/b/").unwrap().backend
        else {
            panic!("an s3:// URL is a bucket");
        };
        assert_eq!(prefix.as_ref(), "a/b");
        assert!(BlobStore::open("s3://").is_err(), "no bucket");
        assert!(
            BlobStore::open("gs://bucket").is_err(),
            "unsupported scheme"
        );
    }

    #[test]
    fn object_keys_are_scoped_to_the_patient() {
        let (clinic, patient) = (Uuid::now_v7(), Uuid::now_v7());
        let sha = "ab".repeat(32);
        let key = BlobStore::object_key(&ObjectPath::from("p"), clinic, patient, &sha);
        assert_eq!(
            key.as_ref(),
            format!("p/{}/{}/ab/{sha}", clinic.simple(), patient.simple())
        );
        let bare = BlobStore::object_key(&ObjectPath::from(""), clinic, patient, &sha);
        assert_eq!(
            bare.as_ref(),
            format!("{}/{}/ab/{sha}", clinic.simple(), patient.simple())
        );
    }
}
