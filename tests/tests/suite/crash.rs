//! Crash safety of ingestion: the server is killed with SIGKILL at pseudo-random
//! moments while documents are uploaded and ingested, twenty times over. After
//! the last restart every document ends `succeeded` or `failed` with a reason,
//! and SQL, the blobs and the vector index agree: no orphan or duplicate
//! vectors, no orphan blobs, no duplicated records from re-run jobs.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use uuid::Uuid;

use medmemory::db::Db;
use medmemory::db::jobs::Job;
use medmemory::memory::VectorStore;
use medmemory_tests::{TestServer, sample, start_on_postgres};

use crate::memory::files;

const TRIALS: u64 = 20;

/// Asserts that SQL and the vector index at `vectors` hold the same chunks of
/// `clinic`, each once.
pub async fn assert_index_matches_sql(db: &Db, vectors: &str, clinic: Uuid) {
    let committed: HashSet<Uuid> = db
        .clinic_chunk_ids(clinic)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let indexed = VectorStore::open(vectors)
        .await
        .unwrap()
        .chunk_ids(clinic)
        .await
        .unwrap();
    let duplicated: Vec<_> = indexed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "duplicate vectors: {duplicated:?}");
    let indexed: HashSet<Uuid> = indexed.into_keys().collect();
    assert_eq!(
        committed.difference(&indexed).count(),
        0,
        "chunks without vectors"
    );
    assert_eq!(
        indexed.difference(&committed).count(),
        0,
        "vectors without chunks"
    );
}

/// Waits until every job of `clinic` has succeeded or failed (at most
/// `limit`); returns them.
pub async fn settled_jobs(db: &Db, clinic: Uuid, limit: Duration) -> Vec<Job> {
    let deadline = Instant::now() + limit;
    loop {
        let jobs = db.clinic_jobs(clinic).await.expect("jobs");
        if jobs
            .iter()
            .all(|j| j.status == "succeeded" || j.status == "failed")
        {
            return jobs;
        }
        assert!(Instant::now() < deadline, "jobs never settled: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
const DOCUMENTS_PER_TRIAL: usize = 6;

/// A small deterministic generator (the kill moments must be reproducible).
fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

/// The i-th document of a trial: text, HL7 or FHIR, every one distinct.
fn document(trial: u64, i: usize) -> (&'static str, Vec<u8>) {
    match i % 3 {
        0 => (
            "text/plain",
            format!(
                "Visit {trial}-{i}.\n\nHistory:\nType 2 diabetes, on metformin.\n\n\
                 Plan:\nRepeat HbA1c in three months; retinal screening due."
            )
            .into_bytes(),
        ),
        1 => {
            let hl7 = String::from_utf8(sample("hl7/oru_r01.hl7")).unwrap();
            (
                "text/plain",
                hl7.replace("MSG00001", &format!("MSG{trial:03}{i:02}"))
                    .into_bytes(),
            )
        }
        _ => {
            let fhir = String::from_utf8(sample("fhir/bundle.json")).unwrap();
            (
                "application/json",
                fhir.replace("example-summary", &format!("crash-{trial}-{i}"))
                    .into_bytes(),
            )
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_survives_sigkill_on_sqlite() {
    let server = TestServer::start().await;
    sigkill_trials(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_survives_sigkill_on_postgres() {
    let Some((server, db)) = start_on_postgres(Vec::new()).await else {
        return;
    };
    sigkill_trials(server).await;
    db.drop_db().await;
}

async fn sigkill_trials(mut server: TestServer) {
    let clinic = server.create_clinic("Crash").await;
    let patient = server
        .create_patient(&server.admin.clone(), &clinic, "Ada", "Crash")
        .await;
    let mut seed = 0x5eed_u64;
    for trial in 0..TRIALS {
        // Uploads run concurrently with the kill: some are cut off mid-request.
        let mut uploads = Vec::new();
        for i in 0..DOCUMENTS_PER_TRIAL {
            let (content_type, bytes) = document(trial, i);
            let url = server.api(&format!("/clinics/{clinic}/patients/{patient}/documents"));
            let request = server
                .http
                .post(url)
                .bearer_auth(&server.admin)
                .header("content-type", content_type)
                .body(bytes);
            uploads.push(tokio::spawn(async move { request.send().await }));
            tokio::time::sleep(Duration::from_millis(next(&mut seed) % 60)).await;
        }
        tokio::time::sleep(Duration::from_millis(next(&mut seed) % 1500)).await;
        server.stop();
        for upload in uploads {
            let _ = upload.await;
        }
        server = server.restart().await;
    }

    // Let every job settle on the last start.
    let clinic_id: Uuid = clinic.parse().unwrap();
    let patient_id: Uuid = patient.parse().unwrap();
    let db = Db::connect(&server.database_url()).await.unwrap();
    let jobs = settled_jobs(&db, clinic_id, Duration::from_secs(600)).await;
    assert!(
        jobs.len() as u64 >= TRIALS,
        "most uploads got in: {}",
        jobs.len()
    );
    for job in &jobs {
        if job.status == "failed" {
            assert!(job.error_code.is_some(), "a failure has a reason: {job:?}");
        }
    }
    let succeeded = jobs.iter().filter(|j| j.status == "succeeded").count();
    assert!(succeeded * 10 >= jobs.len() * 9, "{jobs:?}");
    let per_document: HashMap<Uuid, usize> = jobs.iter().fold(HashMap::new(), |mut m, j| {
        *m.entry(j.document_id).or_default() += 1;
        m
    });
    assert!(
        per_document.values().all(|n| *n == 1),
        "one job per document"
    );

    let vectors = server.data.path().join("vectors");
    assert_index_matches_sql(&db, vectors.to_str().unwrap(), clinic_id).await;

    // Every succeeded document has its chunks; re-run jobs left no duplicate
    // records (each HL7 message gives exactly its six results).
    let records = db.all_records(clinic_id, patient_id).await.unwrap();
    let mut by_document: HashMap<Uuid, usize> = HashMap::new();
    for r in &records {
        *by_document
            .entry(r.provenance.document_id.unwrap())
            .or_default() += 1;
    }
    let chunks = db
        .clinic_chunks(clinic_id, Some(patient_id), None, 100_000)
        .await
        .unwrap();
    let with_chunks: HashSet<Uuid> = chunks.iter().filter_map(|c| c.document_id).collect();
    let mut documents = HashMap::new();
    let mut after = None;
    loop {
        let page = db
            .documents(clinic_id, patient_id, after, 500)
            .await
            .unwrap();
        after = page.last().map(|d| d.id);
        let done = page.len() < 500;
        documents.extend(page.into_iter().map(|d| (d.id, d)));
        if done {
            break;
        }
    }
    for job in jobs.iter().filter(|j| j.status == "succeeded") {
        assert!(with_chunks.contains(&job.document_id), "{job:?}");
        let document = &documents[&job.document_id];
        if document.media_type == "application/x-hl7-v2+er7" {
            assert_eq!(by_document.get(&document.id), Some(&6), "{document:?}");
        }
    }
    let fhir_counts: HashSet<usize> = documents
        .values()
        .filter(|d| d.media_type == "application/fhir+json")
        .filter_map(|d| by_document.get(&d.id).copied())
        .collect();
    assert!(
        fhir_counts.len() <= 1,
        "every bundle gives the same records: {fhir_counts:?}"
    );

    // Blobs: exactly the documents' bytes, no partial writes.
    let folder = server
        .data
        .path()
        .join("blobs")
        .join(clinic_id.simple().to_string())
        .join(patient_id.simple().to_string());
    let stored: HashSet<String> = files(&folder)
        .into_iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let named: HashSet<String> = documents.values().map(|d| d.sha256.clone()).collect();
    assert_eq!(stored, named, "blobs and documents agree");

    // And the memory answers.
    let hits = server
        .search(&server.admin, &clinic, &patient, "HbA1c")
        .await;
    assert!(!hits.is_empty());
}
