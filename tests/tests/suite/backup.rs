//! Backups that restore: fill a clinic, back it up while the server runs,
//! change, delete and erase things, restore, and find what the backup held:
//! the same documents and their bytes, search results, records and audit
//! trail (whose chain still verifies), on SQLite and on PostgreSQL. A backup
//! with a changed file does not verify and is not restored.

use reqwest::Method;
use serde_json::Value;

use medmemory_tests::{TestServer, sample, start_on_postgres};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_restore_on_sqlite() {
    backup_and_restore(TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_restore_on_postgres() {
    let Some((server, db)) = start_on_postgres(Vec::new()).await else {
        return;
    };
    backup_and_restore(server).await;
    db.drop_db().await;
}

/// What a clinic's memory shows for one patient: documents (id and bytes),
/// search hits and records, by id.
#[derive(Debug, PartialEq)]
struct Seen {
    documents: Vec<(String, Vec<u8>)>,
    hits: Vec<String>,
    records: Vec<String>,
}

async fn get(server: &TestServer, path: &str) -> Value {
    let (status, body) = server
        .call(Method::GET, path, Some(&server.admin), None)
        .await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn seen(server: &TestServer, clinic: &str, patient: &str, query: &str) -> Seen {
    let base = format!("/clinics/{clinic}/patients/{patient}");
    let mut documents = Vec::new();
    for id in ids(&get(server, &format!("{base}/documents")).await) {
        let response = server
            .http
            .get(server.api(&format!("{base}/documents/{id}/content")))
            .bearer_auth(&server.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        documents.push((id, response.bytes().await.unwrap().to_vec()));
    }
    documents.sort();
    let hits = server
        .search(&server.admin, clinic, patient, query)
        .await
        .iter()
        .map(|h| h["chunk_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let records = ids(&get(server, &format!("{base}/records?limit=500")).await);
    Seen {
        documents,
        hits,
        records,
    }
}

/// The clinic's trail, oldest first.
async fn trail(server: &TestServer, clinic: &str) -> Vec<Value> {
    let body = get(server, &format!("/clinics/{clinic}/audit?limit=500")).await;
    let mut items = body["items"].as_array().cloned().unwrap_or_default();
    items.sort_by_key(|i| i["seq"].as_i64());
    items
}

async fn verified(server: &TestServer) -> bool {
    get(server, "/audit/verify").await["ok"] == true
}

async fn backup_and_restore(mut server: TestServer) {
    let admin = server.admin.clone();
    let clinic = server.create_clinic("Backups").await;
    let ada = server.create_patient(&admin, &clinic, "Ada", "Kept").await;
    let bob = server
        .create_patient(&admin, &clinic, "Bob", "Erased")
        .await;
    let (status, body) = server
        .upload(
            &admin,
            &clinic,
            &ada,
            "application/fhir+json",
            sample("fhir/bundle.json"),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let job = server
        .wait_job(&admin, &clinic, body["job"]["id"].as_str().unwrap())
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let note = server
        .ingest_text(
            &admin,
            &clinic,
            &ada,
            "Clinic note: knee pain after cycling, ibuprofen helps.",
        )
        .await;
    server
        .ingest_text(
            &admin,
            &clinic,
            &bob,
            "Clinic note: Bob reports migraines twice a week.",
        )
        .await;

    let ada_before = seen(&server, &clinic, &ada, "knee pain").await;
    let bob_before = seen(&server, &clinic, &bob, "migraines").await;
    assert!(ada_before.documents.len() == 2 && !ada_before.records.is_empty());
    assert!(!ada_before.hits.is_empty() && !bob_before.hits.is_empty());
    let trail_before = trail(&server, &clinic).await;
    assert!(verified(&server).await);

    // Taken while the server runs.
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path().join("nightly");
    let dir_text = dir.to_str().unwrap();
    let output = server.cli(&["backup", dir_text]);
    assert!(output.status.success(), "{output:?}");
    let output = server.cli(&["backup", "verify", dir_text]);
    assert!(output.status.success(), "{output:?}");
    let refused = server.cli(&["backup", dir_text]);
    assert!(
        !refused.status.success(),
        "a backup never overwrites a folder"
    );

    // Afterwards: a new document, a deleted one, an erased patient.
    server
        .ingest_text(
            &admin,
            &clinic,
            &ada,
            "Clinic note written after the backup: new rash on the arm.",
        )
        .await;
    let (status, body) = server
        .call(
            Method::DELETE,
            &format!("/clinics/{clinic}/patients/{ada}/documents/{note}"),
            Some(&admin),
            None,
        )
        .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    let (status, body) = server.erase(&admin, &clinic, &bob).await;
    assert!(status == 200 || status == 202, "{status} {body}");
    assert_ne!(seen(&server, &clinic, &ada, "knee pain").await, ada_before);

    // A changed file: the backup does not verify, and is not restored.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let blob = manifest["files"]
        .as_object()
        .unwrap()
        .keys()
        .find(|name| name.starts_with("blobs/"))
        .expect("a blob in the backup")
        .clone();
    let original = std::fs::read(dir.join(&blob)).unwrap();
    std::fs::write(dir.join(&blob), b"tampered").unwrap();
    let output = server.cli(&["backup", "verify", dir_text]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(&blob),
        "{output:?}"
    );
    server.stop();
    let output = server.cli(&["restore", dir_text]);
    assert!(!output.status.success(), "{output:?}");
    std::fs::write(dir.join(&blob), original).unwrap();

    // Restored with every server stopped.
    let output = server.cli(&["restore", dir_text]);
    assert!(output.status.success(), "{output:?}");
    let erased = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        erased.contains(&bob),
        "restore lists the erasures to repeat: {erased}"
    );
    let server = server.restart().await;
    assert_eq!(seen(&server, &clinic, &ada, "knee pain").await, ada_before);
    assert_eq!(seen(&server, &clinic, &bob, "migraines").await, bob_before);
    assert!(verified(&server).await, "the restored chain verifies");
    let trail_after = trail(&server, &clinic).await;
    assert_eq!(
        &trail_after[..trail_before.len()],
        &trail_before[..],
        "the trail as it was at backup time"
    );
    assert!(
        !trail_after.iter().any(|e| e["action"] == "erase"),
        "nothing after the backup is in the restored trail"
    );
}
