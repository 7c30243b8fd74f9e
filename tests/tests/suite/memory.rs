//! Patient memory against the real binary: records from parsed documents and
//! posted directly, their filters, pagination and FHIR export; hybrid search
//! with its modes and filters; de-duplication within a patient; document
//! deletion; erasure down to older LanceDB versions; reindexing after a model
//! change; job progress over SSE.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use medmemory::db::Db;
use medmemory::memory::VectorStore;
use medmemory_tests::{TestServer, sample, start_on_postgres};

/// Uploads bytes and waits for the job; returns (document, settled job).
pub async fn ingest(
    server: &TestServer,
    token: &str,
    clinic: &str,
    patient: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> (Value, Value) {
    let (status, body) = server
        .upload(token, clinic, patient, content_type, bytes)
        .await;
    assert_eq!(status, 202, "{body}");
    let job = server
        .wait_job(token, clinic, body["job"]["id"].as_str().unwrap())
        .await;
    (body["document"].clone(), job)
}

async fn get(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    server.call(Method::GET, path, Some(token), None).await
}

async fn search(server: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    server
        .call(Method::POST, path, Some(token), Some(body))
        .await
}

fn items(body: &Value) -> Vec<Value> {
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Every file under `dir` (recursively).
pub fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_search_and_fhir_on_sqlite() {
    let server = TestServer::start().await;
    records_search_and_fhir(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_search_and_fhir_on_postgres() {
    let Some((server, db)) = start_on_postgres(Vec::new()).await else {
        return;
    };
    records_search_and_fhir(&server).await;
    drop(server);
    db.drop_db().await;
}

async fn records_search_and_fhir(server: &TestServer) {
    let clinic = server.create_clinic("Memory").await;
    let token = server.clinic_token(&clinic, "clinician").await;
    let patient = server
        .create_patient(&token, &clinic, "Ada", "Example")
        .await;
    let base = format!("/clinics/{clinic}/patients/{patient}");

    // An HL7 ORU message becomes six observations with provenance.
    let hl7 = sample("hl7/oru_r01.hl7");
    let (document, job) =
        ingest(server, &token, &clinic, &patient, "text/plain", hl7.clone()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let document_id = document["id"].as_str().unwrap().to_owned();
    let (status, body) = get(server, &token, &format!("{base}/records?kind=observation")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(items(&body).len(), 6, "{body}");

    let (_, body) = get(server, &token, &format!("{base}/records?code=4548-4")).await;
    let found = items(&body);
    assert_eq!(found.len(), 1, "{body}");
    let a1c = &found[0];
    assert_eq!(a1c["kind"], "observation");
    assert_eq!(a1c["codes"][0]["system"], "http://loinc.org");
    assert_eq!(a1c["value"]["value"], 7.2);
    assert_eq!(a1c["value"]["unit"], "%");
    assert_eq!(a1c["reference_range"]["high"], 5.6);
    assert_eq!(a1c["interpretation"], "H");
    assert_eq!(a1c["provenance"]["document_id"], document_id.as_str());
    let (start, end) = (
        a1c["provenance"]["span_start"].as_u64().unwrap() as usize,
        a1c["provenance"]["span_end"].as_u64().unwrap() as usize,
    );
    assert!(
        hl7[start..end].starts_with(b"OBX|1|NM|4548-4^"),
        "the span points at the OBX segment"
    );
    let a1c_id = a1c["id"].as_str().unwrap().to_owned();
    let (status, one) = get(server, &token, &format!("{base}/records/{a1c_id}")).await;
    assert_eq!((status, &one["id"]), (200, &a1c["id"]));
    let (status, body) = get(
        server,
        &token,
        &format!("{base}/records/{}", Uuid::now_v7()),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("record_not_found"))
    );

    // Time filters and pagination.
    let (_, body) = get(server, &token, &format!("{base}/records?since=2024-03-06")).await;
    assert!(items(&body).is_empty(), "{body}");
    let (_, body) = get(
        server,
        &token,
        &format!("{base}/records?since=2024-03-05&until=2024-03-06"),
    )
    .await;
    assert_eq!(items(&body).len(), 6, "{body}");
    let (_, first) = get(server, &token, &format!("{base}/records?limit=4")).await;
    assert_eq!(items(&first).len(), 4);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, second) = get(
        server,
        &token,
        &format!("{base}/records?limit=4&cursor={cursor}"),
    )
    .await;
    assert_eq!(items(&second).len(), 2);
    assert!(second["next_cursor"].is_null());
    for bad in ["kind=bogus", "since=yesterday", "code="] {
        let (status, body) = get(server, &token, &format!("{base}/records?{bad}")).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["code"], "invalid_filter");
    }

    // Search finds the lab value through its record, in every mode.
    for mode in ["keyword", "hybrid", "vector"] {
        let (status, body) = search(
            server,
            &token,
            &format!("{base}/search"),
            json!({ "query": "hemoglobin A1c", "mode": mode, "limit": 5 }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let hits = items(&body);
        assert!(
            hits.iter().any(|h| h["record_id"] == a1c_id.as_str()
                && h["kind"] == "observation"
                && h["document_id"] == document_id.as_str()),
            "{mode}: {body}"
        );
    }
    let (_, body) = search(
        server,
        &token,
        &format!("{base}/search"),
        json!({ "query": "cholesterol", "kinds": ["medication"] }),
    )
    .await;
    assert!(items(&body).is_empty(), "no medication chunks yet: {body}");
    let (_, body) = search(
        server,
        &token,
        &format!("{base}/search"),
        json!({ "query": "cholesterol", "kinds": ["observation"], "since": "2024-03-01", "until": "2024-04-01" }),
    )
    .await;
    let hits = items(&body);
    assert!(!hits.is_empty(), "{body}");
    assert!(hits.iter().all(|h| h["kind"] == "observation"), "{body}");
    let (_, body) = search(
        server,
        &token,
        &format!("{base}/search"),
        json!({ "query": "cholesterol", "kinds": ["observation"], "since": "2025-01-01" }),
    )
    .await;
    assert!(items(&body).is_empty(), "no result after 2025: {body}");
    let (status, body) = search(
        server,
        &token,
        &format!("{base}/search"),
        json!({ "query": "cholesterol", "kinds": ["labs"] }),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_filter"))
    );

    // Records posted directly: validated as a batch, searchable at once.
    let posted = json!({ "records": [
        { "kind": "medication", "display": "Metformin 500 mg tablet",
          "codes": [{ "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975" }],
          "status": "active", "effective": "2015-06-01",
          "details": [{ "name": "dosage", "value": "500 mg twice daily" }] },
        { "kind": "allergy", "display": "Penicillin", "status": "active",
          "details": [{ "name": "reaction", "value": "Hives" }, { "name": "criticality", "value": "high" }] },
        { "kind": "note", "display": "Phone call", "effective": "2024-04-02T10:00:00Z",
          "details": [{ "name": "text", "value": "Patient reports dizziness after the new dose." }] }
    ]});
    let (status, body) = server
        .call(
            Method::POST,
            &format!("{base}/records"),
            Some(&token),
            Some(posted),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let created = items(&body);
    assert_eq!(created.len(), 3);
    assert!(created[0]["provenance"]["document_id"].is_null());
    let metformin_id = created[0]["id"].as_str().unwrap().to_owned();
    let invalid = json!({ "records": [
        { "kind": "medication", "display": "Lisinopril" },
        { "kind": "surgery", "display": "Appendectomy" }
    ]});
    let (status, body) = server
        .call(
            Method::POST,
            &format!("{base}/records"),
            Some(&token),
            Some(invalid),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_record")),
        "{body}"
    );
    let bad_date =
        json!({ "records": [{ "kind": "note", "display": "x", "effective": "someday" }] });
    let (status, _) = server
        .call(
            Method::POST,
            &format!("{base}/records"),
            Some(&token),
            Some(bad_date),
        )
        .await;
    assert_eq!(status, 422);
    let (_, body) = get(server, &token, &format!("{base}/records?limit=500")).await;
    assert_eq!(items(&body).len(), 9, "a refused batch stores nothing");
    let (_, body) = search(
        server,
        &token,
        &format!("{base}/search"),
        json!({ "query": "metformin", "mode": "keyword" }),
    )
    .await;
    assert_eq!(
        items(&body)[0]["record_id"],
        metformin_id.as_str(),
        "{body}"
    );

    // The FHIR export is a Bundle our own FHIR parser reads back.
    let response = server
        .http
        .get(server.api(&format!("{base}/fhir")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/fhir+json");
    let bundle_bytes = response.bytes().await.unwrap().to_vec();
    let bundle: Value = serde_json::from_slice(&bundle_bytes).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 10, "the patient and nine records");
    assert_eq!(entries[0]["resource"]["resourceType"], "Patient");
    assert_eq!(entries[0]["resource"]["birthDate"], "1961-04-12");
    for entry in entries {
        let resource = &entry["resource"];
        assert!(entry["fullUrl"].as_str().unwrap().starts_with("urn:uuid:"));
        match resource["resourceType"].as_str().unwrap() {
            "Observation" | "MedicationStatement" | "Encounter" => {
                assert!(resource["status"].is_string(), "{resource}")
            }
            "AllergyIntolerance" => assert!(resource["patient"]["reference"].is_string()),
            "DocumentReference" => {
                assert_eq!(resource["status"], "current");
                assert!(resource["content"][0]["attachment"]["data"].is_string());
            }
            "Patient" => {}
            other => panic!("unexpected resource {other}"),
        }
    }
    let copy = server.create_patient(&token, &clinic, "Ada", "Copy").await;
    let (_, job) = ingest(
        server,
        &token,
        &clinic,
        &copy,
        "application/json",
        bundle_bytes,
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let copy_base = format!("/clinics/{clinic}/patients/{copy}");
    let (_, body) = get(server, &token, &format!("{copy_base}/records?code=4548-4")).await;
    let read_back = items(&body);
    assert_eq!(read_back.len(), 1, "{body}");
    assert_eq!(read_back[0]["value"]["value"], 7.2);
    assert_eq!(read_back[0]["value"]["unit"], "%");
    let (_, body) = get(server, &token, &format!("{copy_base}/records?code=860975")).await;
    assert_eq!(items(&body)[0]["kind"], "medication", "{body}");
    let (_, body) = get(server, &token, &format!("{copy_base}/records?kind=allergy")).await;
    assert_eq!(items(&body)[0]["display"], "Penicillin", "{body}");

    // The same bytes for the same patient are one document; for another
    // patient they are that patient's own document.
    let (status, again) = server
        .upload(&token, &clinic, &patient, "text/plain", hl7.clone())
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["document"]["id"], document_id.as_str());
    let (status, other) = server
        .upload(&token, &clinic, &copy, "text/plain", hl7)
        .await;
    assert_eq!(status, 202, "{other}");
    assert_ne!(other["document"]["id"], document_id.as_str());

    // Deleting the document takes its records, chunks, vectors and bytes.
    let sha = document["sha256"].as_str().unwrap().to_owned();
    let blob_files = |sha: &str| {
        files(&server.data.path().join("blobs"))
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == sha))
            .count()
    };
    assert_eq!(blob_files(&sha), 2, "one blob per patient");
    // Clinicians add documents; deleting one is a clinic admin's call.
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("{base}/documents/{document_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let clinic_admin = server.clinic_token(&clinic, "clinic-admin").await;
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("{base}/documents/{document_id}"),
            Some(&clinic_admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, body) = get(server, &token, &format!("{base}/records?kind=observation")).await;
    assert!(items(&body).is_empty(), "{body}");
    let (status, _) = get(server, &token, &format!("{base}/documents/{document_id}")).await;
    assert_eq!(status, 404);
    let (_, body) = search(
        server,
        &token,
        &format!("{base}/search"),
        json!({ "query": "hemoglobin A1c cholesterol" }),
    )
    .await;
    assert!(
        items(&body)
            .iter()
            .all(|h| h["document_id"] != document_id.as_str()),
        "{body}"
    );
    assert_eq!(blob_files(&sha), 1, "the other patient's copy stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_reaches_every_version_of_the_index() {
    let server = TestServer::start().await;
    let clinic = server.create_clinic("Erasure").await;
    let token = server.clinic_token(&clinic, "clinic-admin").await;
    let patient = server
        .create_patient(&token, &clinic, "Zelda", "Erased")
        .await;
    let other = server.create_patient(&token, &clinic, "Otto", "Kept").await;
    let marker = "Quetzalcoatlusrex";
    for i in 0..3 {
        let text = format!("Visit {i}. {marker} syndrome suspected; referred to neurology.");
        let (_, job) = ingest(
            &server,
            &token,
            &clinic,
            &patient,
            "text/plain",
            text.into_bytes(),
        )
        .await;
        assert_eq!(job["status"], "succeeded");
    }
    let (_, job) = ingest(
        &server,
        &token,
        &clinic,
        &patient,
        "text/plain",
        sample("hl7/oru_r01.hl7"),
    )
    .await;
    assert_eq!(job["status"], "succeeded");
    server
        .ingest_text(&token, &clinic, &other, "Otto has seasonal asthma.")
        .await;

    let clinic_id: Uuid = clinic.parse().unwrap();
    let patient_id: Uuid = patient.parse().unwrap();
    let vectors = VectorStore::open(server.data.path().join("vectors").to_str().unwrap())
        .await
        .unwrap();
    let before = vectors.versions(clinic_id).await.unwrap();
    assert!(before.len() > 3, "{before:?}");
    let latest = *before.last().unwrap();
    assert!(
        vectors
            .patient_rows_at(clinic_id, patient_id, latest)
            .await
            .unwrap()
            > 0
    );

    // The scan below can only prove erasure if the text is there to find.
    let holding_marker = files(&server.data.path().join("vectors"))
        .into_iter()
        .filter(|file| contains_marker(file, marker))
        .count();
    assert!(
        holding_marker > 0,
        "before erasure no Lance file contains the marker: the scan would prove nothing"
    );

    let (status, body) = server.erase(&token, &clinic, &patient).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["documents"], 4);
    assert_eq!(body["records"], 6);
    assert!(body["completed_at"].is_string());

    let (status, _) = get(
        &server,
        &token,
        &format!("/clinics/{clinic}/patients/{patient}"),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = server.erase(&token, &clinic, &patient).await;
    assert_eq!(status, 404, "erasing twice finds nothing");
    // The erasure is in the hash-chained trail, under the patient's id, with
    // its outcome: requested by the caller, completed by the system.
    let (status, trail) = get(
        &server,
        &token,
        &format!("/clinics/{clinic}/audit?patient={patient}&action=erase&limit=500"),
    )
    .await;
    assert_eq!(status, 200, "{trail}");
    let steps: Vec<(&str, &str)> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"] == "patient" && e["patient_id"] == patient.as_str())
        .map(|e| (e["outcome"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert!(
        steps
            .iter()
            .any(|(o, a)| *o == "requested" && a.starts_with("token:")),
        "{trail}"
    );
    assert!(steps.contains(&("completed", "system")), "{trail}");

    // Every version that held the patient is gone (pruned: it cannot be opened
    // any more) or, if still listed, holds nothing of them.
    let after = vectors.versions(clinic_id).await.unwrap();
    for version in &before {
        let rows = vectors
            .patient_rows_at(clinic_id, patient_id, *version)
            .await;
        if after.contains(version) {
            assert_eq!(
                rows.expect("a listed version opens"),
                0,
                "version {version} still holds the patient"
            );
        } else {
            assert!(
                rows.is_err(),
                "version {version} was pruned but still opens: {rows:?}"
            );
        }
    }
    assert!(
        after
            .iter()
            .all(|v| !before[..before.len() - 1].contains(v)),
        "old versions pruned: before {before:?}, after {after:?}"
    );
    for file in files(&server.data.path().join("vectors")) {
        assert!(
            !contains_marker(&file, marker),
            "{} still contains the erased text",
            file.display()
        );
    }
    let blobs = server
        .data
        .path()
        .join("blobs")
        .join(clinic_id.simple().to_string())
        .join(patient_id.simple().to_string());
    assert!(!blobs.exists(), "the patient's blobs are gone");

    // SQL: nothing of the patient but the trails.
    let db = Db::connect(&server.database_url()).await.unwrap();
    assert!(!db.clinic_chunk_ids(clinic_id).await.unwrap().is_empty());
    assert!(
        db.clinic_chunks(clinic_id, Some(patient_id), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        db.all_records(clinic_id, patient_id)
            .await
            .unwrap()
            .is_empty()
    );
    let calls = db
        .plugin_calls_of_patient(clinic_id, patient_id)
        .await
        .unwrap();
    assert!(
        calls >= 4,
        "the audit of the plugin calls survives: {calls}"
    );

    // The other patient is untouched.
    let hits = server.search(&token, &clinic, &other, "asthma").await;
    assert!(!hits.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_after_a_model_change() {
    let server = TestServer::start().await;
    let clinic = server.create_clinic("Reindex").await;
    let token = server.clinic_token(&clinic, "clinician").await;
    let patient = server.create_patient(&token, &clinic, "Rei", "Index").await;
    server
        .ingest_text(
            &token,
            &clinic,
            &patient,
            "Chronic kidney disease stage 3a.",
        )
        .await;
    let clinic_id: Uuid = clinic.parse().unwrap();
    let db = Db::connect(&server.database_url()).await.unwrap();
    // The first start recorded how the table was built; pretend another
    // model built it.
    let mut server = server.restart().await;
    db.record_vector_table(clinic_id, "all-mpnet-base-v2", 768, 2)
        .await
        .unwrap();
    server = server.restart_unready().await;
    let mut ready = (0, Value::Null);
    for _ in 0..300 {
        ready = server.ready_status().await;
        if ready.1["checks"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["name"] == "model" && c["ok"] == true))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.0, 503, "{}", ready.1);
    assert!(
        ready.1["failed"]
            .as_array()
            .unwrap()
            .contains(&json!("vector_index")),
        "{}",
        ready.1
    );
    assert!(
        ready.1.to_string().contains("medmemory reindex"),
        "{}",
        ready.1
    );
    // The public report names the fix, not the clinic or the data folder.
    let public = ready.1.to_string();
    assert!(!public.contains(&clinic), "{public}");
    assert!(
        !public.contains(&server.data.path().display().to_string()),
        "{public}"
    );

    server.stop();
    let output = server.cli(&["reindex"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("reindexed 1 chunks (1 from the cache)"),
        "{stderr}"
    );
    let server = server.restart().await;
    let hits = server
        .search(&token, &clinic, &patient, "kidney function")
        .await;
    assert!(!hits.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_progress_streams_as_server_sent_events() {
    let server = TestServer::start().await;
    let clinic = server.create_clinic("Events").await;
    let token = server.clinic_token(&clinic, "clinician").await;
    let patient = server.create_patient(&token, &clinic, "Eve", "Vent").await;
    // A multipart upload, as a browser form sends it.
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"note.txt\"\r\n\
                Content-Type: text/markdown\r\n\r\nFollow-up in six weeks.\r\n--XyZ--\r\n";
    let (status, body) = server
        .upload(
            &token,
            &clinic,
            &patient,
            "multipart/form-data; boundary=XyZ",
            body.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["document"]["declared_media_type"], "text/markdown");
    assert_eq!(body["document"]["size_bytes"], 23, "only the file's bytes");
    let (status, empty) = server
        .upload(
            &token,
            &clinic,
            &patient,
            "multipart/form-data; boundary=XyZ",
            b"--XyZ--\r\n".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{empty}");
    let job = body["job"]["id"].as_str().unwrap();
    let response = server
        .http
        .get(server.api(&format!("/clinics/{clinic}/jobs/{job}/events")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = tokio::time::timeout(Duration::from_secs(60), response.text())
        .await
        .expect("the stream ends when the job settles")
        .unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.last(), Some(&"done"), "{text}");
    let last = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back()
        .unwrap();
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["status"], "succeeded");
    assert_eq!(last["progress"], 1.0);
    let (status, _) = get(
        &server,
        &token,
        &format!("/clinics/{clinic}/jobs/{}/events", Uuid::now_v7()),
    )
    .await;
    assert_eq!(status, 404);
}

/// Whether a file holds `marker`, in any letter case (the full-text index
/// keeps lower-cased tokens).
fn contains_marker(file: &std::path::Path, marker: &str) -> bool {
    let bytes = std::fs::read(file).unwrap_or_default().to_ascii_lowercase();
    let marker = marker.to_ascii_lowercase();
    bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
}
