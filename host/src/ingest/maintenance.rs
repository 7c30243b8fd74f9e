//! Keeping SQL, blobs and the vector index in agreement: finishing erasures,
//! the sweep at start after a crash, `medmemory reindex`, and the check that
//! each vector table was built with the loaded model.
//!
//! SQL is the source of truth. At start, before the server listens, vectors
//! without a committed chunk and blobs without a document are removed and
//! interrupted erasures are finished; once the model is loaded, committed
//! chunks missing from the index are embedded (from the cache when possible)
//! and added. Several instances may share the stores: the sweep leaves alone
//! what is younger than the grace period or than a live job, see
//! [`sweep_orphans`].

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::{Ingest, indexing};
use crate::memory::SCHEMA_VERSION;
use crate::ml::{DIM, MODEL_ID};

/// What a sweep changed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sweep {
    /// Vector rows removed because no committed chunk has their id (or
    /// because a chunk id appeared more than once).
    pub orphan_vectors: usize,
    /// Committed chunks (re-)added to the index.
    pub missing_vectors: usize,
    /// Blobs and partial writes removed because no document names them.
    pub orphan_blobs: usize,
    /// Blobs moved from the shared legacy layout into their patients' folders.
    pub legacy_blobs: usize,
    /// Erasures finished.
    pub erasures: usize,
}

async fn all_clinics(app: &Ingest) -> anyhow::Result<Vec<Uuid>> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = app.db.clinics(after, 500).await?;
        let done = page.len() < 500;
        after = page.last().map(|c| c.id);
        ids.extend(page.into_iter().map(|c| c.id));
        if done {
            return Ok(ids);
        }
    }
}

/// When a chunk id was made (ids are UUIDv7).
fn made_at(id: &Uuid) -> Option<SystemTime> {
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

/// The part of the sweep that needs no model: erasures, orphan vectors,
/// orphan blobs. Run before the server listens.
///
/// Other instances may be writing meanwhile: vectors and blobs go in before
/// the SQL commit that names them. So an orphan is removed only if it is
/// older than the grace period and, for vectors, older than every job
/// running under a live lease; younger ones wait for the next sweep (or are
/// pruned by their own job's commit).
pub async fn sweep_orphans(app: &Ingest) -> anyhow::Result<Sweep> {
    // Never blocks start-up: what fails stays pending for the background retry.
    let mut sweep = Sweep {
        erasures: app.forget.finish_pending().await,
        ..Sweep::default()
    };
    let settled_before = SystemTime::now() - app.policy.sweep_grace;
    let vectors_before = match app.db.oldest_live_claim().await? {
        Some(claimed) => settled_before.min(SystemTime::from(claimed)),
        None => settled_before,
    };
    for clinic in all_clinics(app).await? {
        let committed: HashSet<Uuid> = app.db.clinic_chunk_ids(clinic).await?.into_iter().collect();
        let indexed = app.vectors.chunk_ids(clinic).await?;
        let stale: Vec<Uuid> = indexed
            .iter()
            .filter(|(id, count)| {
                let orphan = !committed.contains(*id)
                    && made_at(id).is_some_and(|made| made < vectors_before);
                orphan || **count > 1
            })
            .map(|(id, _)| *id)
            .collect();
        if !stale.is_empty() {
            app.vectors.delete_chunks(clinic, &stale).await?;
            sweep.orphan_vectors += stale.len();
        }
    }
    // Blobs of the first releases' shared layout move into their patients'
    // folders, so that delete, erasure and this sweep reach them.
    for sha in app.blobs.legacy_blobs().await? {
        let owners = app.db.document_owners(&sha).await?;
        app.blobs.adopt_legacy(&sha, &owners).await?;
        if owners.is_empty() {
            sweep.orphan_blobs += 1;
        } else {
            sweep.legacy_blobs += 1;
        }
    }
    for (clinic, patient) in app.blobs.patients().await? {
        let (blobs, partial) = app.blobs.list_patient(clinic, patient).await?;
        if !app.db.patient_exists(clinic, patient).await? {
            // A patient row is committed before any upload for it, so a
            // folder without one is an erased or never-created patient.
            app.blobs.erase_patient(clinic, patient).await?;
            sweep.orphan_blobs += blobs.len() + partial.len();
            continue;
        }
        let named: HashSet<String> = app
            .db
            .patient_document_hashes(clinic, patient)
            .await?
            .into_iter()
            .collect();
        for (sha, _) in blobs
            .iter()
            .filter(|(sha, written)| !named.contains(sha) && *written < settled_before)
        {
            app.blobs.delete(clinic, patient, sha).await?;
            sweep.orphan_blobs += 1;
        }
        for (path, _) in partial
            .iter()
            .filter(|(_, written)| *written < settled_before)
        {
            tokio::fs::remove_file(path).await?;
            sweep.orphan_blobs += 1;
        }
    }
    Ok(sweep)
}

/// How old a committed chunk must be before a missing vector counts as
/// missing: another instance writes a chunk's vector just before its SQL
/// commit, and this instance's view of the index may lag by the read
/// consistency interval, so a chunk committed in the last moments may look
/// missing while its vector is in place (re-adding it would duplicate it).
const MISSING_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// Embeds and indexes committed chunks missing from the index (after a
/// partial reindex, or an index restored from an older backup). Needs the
/// model. Chunks committed within [`MISSING_AFTER`] of the start are left
/// alone: their vectors may be in flight from another instance.
pub async fn index_missing(app: &Ingest) -> anyhow::Result<usize> {
    let Some(embedder) = app.models.embedder() else {
        anyhow::bail!("the embedding model is not loaded");
    };
    let settled_before = crate::db::now() - MISSING_AFTER;
    let mut added = 0;
    for clinic in all_clinics(app).await? {
        let indexed = app.vectors.chunk_ids(clinic).await?;
        let mut after = None;
        loop {
            let page = app.db.clinic_chunks(clinic, None, after, 500).await?;
            let done = page.len() < 500;
            after = page.last().map(|c| c.id);
            let missing: Vec<_> = page
                .into_iter()
                .filter(|c| !indexed.contains_key(&c.id) && c.created_at < settled_before)
                .collect();
            if !missing.is_empty() {
                let (rows, _) = indexing::vector_rows(&app.db, &embedder, &missing).await?;
                app.vectors.upsert(clinic, &rows).await?;
                added += rows.len();
            }
            if done {
                break;
            }
        }
    }
    Ok(added)
}

/// Rebuilds the vector tables of one clinic or of all from SQL, reusing
/// cached embeddings of the current model; records what each was built with.
/// Returns the number of chunks indexed and how many of their vectors came
/// from the cache.
pub async fn reindex(app: &Ingest, only: Option<Uuid>) -> anyhow::Result<(usize, usize)> {
    let Some(embedder) = app.models.embedder() else {
        anyhow::bail!("the embedding model is not loaded");
    };
    let clinics = match only {
        Some(c) => vec![c],
        None => all_clinics(app).await?,
    };
    let (mut total, mut reused) = (0, 0);
    for clinic in clinics {
        app.vectors.drop_clinic(clinic).await?;
        let mut after = None;
        loop {
            let page = app.db.clinic_chunks(clinic, None, after, 500).await?;
            let done = page.len() < 500;
            after = page.last().map(|c| c.id);
            let (rows, cached) = indexing::vector_rows(&app.db, &embedder, &page).await?;
            app.vectors.append(clinic, &rows).await?;
            total += rows.len();
            reused += cached;
            if done {
                break;
            }
        }
        app.db
            .record_vector_table(clinic, MODEL_ID, DIM as i64, SCHEMA_VERSION)
            .await?;
        tracing::info!(clinic = %clinic, "vector table rebuilt");
    }
    Ok((total, reused))
}

/// Compares every clinic's vector table with what this build writes; returns
/// the problems (empty when all agree). Tables written by this build before
/// their first check are recorded as such.
pub async fn index_problems(app: &Ingest) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for clinic in all_clinics(app).await? {
        let Some(columns) = app.vectors.columns(clinic).await? else {
            continue;
        };
        match app.db.vector_table(clinic).await? {
            Some(built)
                if built.model == MODEL_ID
                    && built.dimension == DIM as i64
                    && built.schema_version == SCHEMA_VERSION => {}
            Some(built) => problems.push(format!(
                "clinic {clinic}: vectors built with {} ({} dimensions, layout {}), this server uses {MODEL_ID} ({DIM}, layout {SCHEMA_VERSION}); run `medmemory reindex --clinic {clinic}`",
                built.model, built.dimension, built.schema_version
            )),
            None if columns.iter().any(|c| c == "text") => {
                app.db
                    .record_vector_table(clinic, MODEL_ID, DIM as i64, SCHEMA_VERSION)
                    .await?;
            }
            None => problems.push(format!(
                "clinic {clinic}: vectors written by an older release; run `medmemory reindex --clinic {clinic}`"
            )),
        }
    }
    Ok(problems)
}

impl Ingest {
    /// Brings SQL, blobs and vectors into agreement after whatever stopped the
    /// last process, and checks each vector table against the loaded model.
    /// Run before the server listens.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        let sweep = sweep_orphans(self).await?;
        if sweep != Sweep::default() {
            tracing::warn!(
                orphan_vectors = sweep.orphan_vectors,
                orphan_blobs = sweep.orphan_blobs,
                legacy_blobs = sweep.legacy_blobs,
                erasures = sweep.erasures,
                "repaired state left by an interrupted process"
            );
        }
        self.check_index().await
    }

    /// Re-checks the vector tables against the loaded model (for `/ready`).
    pub async fn check_index(&self) -> anyhow::Result<()> {
        let problems = index_problems(self).await?;
        for problem in &problems {
            tracing::error!(problem = %problem, "vector index does not match this server");
        }
        *self
            .index_problems
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = problems;
        Ok(())
    }

    /// After the model loaded: indexes committed chunks missing from the
    /// index, then works jobs until the process ends. Jobs a stopped process
    /// left running come back to the queue when their leases expire.
    pub async fn resume(self: std::sync::Arc<Self>) {
        if self.models.embedder().is_some() && self.index_problems().is_empty() {
            match index_missing(&self).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    chunks = n,
                    "indexed committed chunks missing from the vector index"
                ),
                Err(e) => tracing::error!(error = %e, "could not index missing chunks"),
            }
        }
        self.run().await;
    }
}
