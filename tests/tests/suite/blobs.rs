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
