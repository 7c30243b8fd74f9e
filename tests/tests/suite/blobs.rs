//! Document blobs in an S3-compatible bucket (moto's server on loopback)
//! instead of the local folder: upload, download, de-duplication within the
//! patient, the start-up sweep of orphan objects, and erasure.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use medmemory_tests::s3::S3;
use medmemory_tests::{Options, TestServer};

fn simple(id: &str) -> String {
    id.parse::<Uuid>().unwrap().simple().to_string()
}

#[tokio::test]
async fn blobs_live_in_an_s3_bucket() {
    let s3 = S3::start("medmemory").await;
    let server = TestServer::start_with(Options {
        env: s3.server_env("clinics/blobs"),
        ..Options::default()
    })
    .await;
    let clinic = server.create_clinic("Harbour").await;
    let token = server.clinic_token(&clinic, "clinic-admin").await;
    let patient = server
        .create_patient(&token, &clinic, "Ines", "Moreau")
        .await;
    let other = server
        .create_patient(&token, &clinic, "Jonas", "Berg")
        .await;
    let note = "Discharge note.\n\nAllergies:\nCotrimoxazole caused a widespread rash in 2019.\n";
    let sha: String = Sha256::digest(note.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let document = server.ingest_text(&token, &clinic, &patient, note).await;

    let patient_prefix = format!("clinics/blobs/{}/{}/", simple(&clinic), simple(&patient));
    let expected = format!("{patient_prefix}{}/{sha}", &sha[..2]);
    assert_eq!(s3.keys("").await, vec![expected.clone()]);
    assert!(
        !server.data.path().join("blobs").exists(),
        "nothing is written to the local blob folder"
    );

    // The bytes come back from the bucket; the text was parsed and indexed.
    let download = server
        .http
        .get(server.api(&format!(
            "/clinics/{clinic}/patients/{patient}/documents/{document}/content"
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), note.as_bytes());
    let hits = server
        .search(&token, &clinic, &patient, "Which antibiotic caused a rash?")
        .await;
    assert_eq!(hits[0]["document_id"], document.as_str());

    // The same bytes again for the same patient: one object; for another
    // patient: an object of their own.
    let (status, body) = server
        .upload(&token, &clinic, &patient, "text/plain", note.into())
        .await;
    assert!(status == 200 || status == 202, "{status} {body}");
    server.ingest_text(&token, &clinic, &other, note).await;
    let keys = s3.keys("clinics/blobs/").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&expected));

    // Objects that no committed document names are swept at start: a stray
    // blob of a known patient and a whole folder of an unknown one.
    let stray = format!("{patient_prefix}ab/{}", "ab".repeat(32));
    s3.put(&stray, b"half an upload").await;
    let ghost = format!(
        "clinics/blobs/{}/{}/cd/{}",
        simple(&clinic),
        Uuid::now_v7().simple(),
        "cd".repeat(32)
    );
    s3.put(&ghost, b"a patient that was never committed").await;
    s3.put("elsewhere/keep-me", b"not ours").await;
    let server = server.restart().await;
    let keys = s3.keys("").await;
    assert!(!keys.contains(&stray), "{keys:?}");
    assert!(!keys.contains(&ghost), "{keys:?}");
    assert!(keys.contains(&expected), "{keys:?}");
    assert!(
        keys.contains(&"elsewhere/keep-me".to_owned()),
        "objects outside the prefix are not ours to sweep"
    );

    // Erasure removes every object of the patient and nothing else.
    let (status, body) = server.erase(&token, &clinic, &patient).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s3.keys(&patient_prefix).await, Vec::<String>::new());
    assert_eq!(
        s3.keys(&format!(
            "clinics/blobs/{}/{}/",
            simple(&clinic),
            simple(&other)
        ))
        .await
        .len(),
        1,
        "the other patient's blob stays"
    );
}

/// Blobs of the first releases' shared layout (`blobs/<sha[..2]>/<sha>`) are
/// moved into their patients' folders at start, so document delete and
/// erasure reach them; one that no document names is removed.
#[tokio::test]
async fn legacy_blobs_move_into_their_patients_folders() {
    let server = TestServer::start().await;
    let clinic = server.create_clinic("Legacy").await;
    let token = server.clinic_token(&clinic, "clinic-admin").await;
    let patient = server.create_patient(&token, &clinic, "Olga", "Lind").await;
    let note = "Clinic letter.\n\nPlan:\nStop ibuprofen; start paracetamol as needed.\n";
    let sha = hex(note.as_bytes());
    let document = server.ingest_text(&token, &clinic, &patient, note).await;

    // Put the document's blob where the first releases kept it, beside a
    // stray blob no document names.
    let blobs = server.data.path().join("blobs");
    let current = blobs
        .join(simple(&clinic))
        .join(simple(&patient))
        .join(&sha[..2])
        .join(&sha);
    let legacy = blobs.join(&sha[..2]).join(&sha);
    std::fs::create_dir_all(legacy.parent().unwrap()).unwrap();
    std::fs::rename(&current, &legacy).unwrap();
    let stray_bytes = b"a blob from an old release that no document names";
    let stray_sha = hex(stray_bytes);
    let stray = blobs.join(&stray_sha[..2]).join(&stray_sha);
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, stray_bytes).unwrap();

    let server = server.restart().await;
    assert!(current.exists(), "the blob is back in the patient's folder");
    assert!(!legacy.exists(), "the legacy copy is gone");
    assert!(!stray.exists(), "an unnamed legacy blob is removed");
    let content = format!("/clinics/{clinic}/patients/{patient}/documents/{document}");
    let download = server
        .http
        .get(server.api(&format!("{content}/content")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), note.as_bytes());

    // Deleting the document now removes its bytes.
    let (status, body) = server
        .call(reqwest::Method::DELETE, &content, Some(&token), None)
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    assert!(!current.exists(), "the blob went with its document");
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
