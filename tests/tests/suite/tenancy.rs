//! Tenancy: one patient's memory never shows another's; one clinic's token
//! cannot see another clinic; no token gets 401; a role without a permission
//! gets 403.

use medmemory_tests::TestServer;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_never_returns_another_patients_document() {
    let server = TestServer::start().await;
    let clinic = server.create_clinic("Northside Clinic").await;
    let clinician = server.clinic_token(&clinic, "clinician").await;
    let first = server
        .create_patient(&clinician, &clinic, "Ana", "Silva")
        .await;
    let second = server
        .create_patient(&clinician, &clinic, "Ben", "Okafor")
        .await;
    server
        .ingest_text(
            &clinician,
            &clinic,
            &first,
            "Knee:\nMild osteoarthritis of the left knee; physiotherapy twice weekly.\n",
        )
        .await;
    server
        .ingest_text(
            &clinician,
            &clinic,
            &second,
            "Oncology:\nStage II breast carcinoma, second cycle of chemotherapy completed.\n",
        )
        .await;

    let hits = server
        .search(&clinician, &clinic, &first, "cancer chemotherapy treatment")
        .await;
    assert!(
        !hits.is_empty(),
        "the first patient's own chunk is still found"
    );
    for hit in &hits {
        let text = hit["text"].as_str().unwrap();
        assert!(
            !text.contains("carcinoma"),
            "leaked another patient's chunk: {text}"
        );
    }
    let own = server
        .search(
            &clinician,
            &clinic,
            &second,
            "cancer chemotherapy treatment",
        )
        .await;
    assert!(own[0]["text"].as_str().unwrap().contains("carcinoma"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinics_cannot_see_each_other() {
    let server = TestServer::start().await;
    let a = server.create_clinic("Clinic A").await;
    let b = server.create_clinic("Clinic B").await;
    let token_a = server.clinic_token(&a, "clinician").await;
    let token_b = server.clinic_token(&b, "clinician").await;
    let patient_b = server.create_patient(&token_b, &b, "Chen", "Wei").await;

    let paths = [
        (Method::GET, format!("/clinics/{b}")),
        (Method::GET, format!("/clinics/{b}/patients")),
        (Method::GET, format!("/clinics/{b}/patients/{patient_b}")),
        (
            Method::GET,
            format!("/clinics/{b}/patients/{patient_b}/documents"),
        ),
        (Method::DELETE, format!("/clinics/{b}/patients/{patient_b}")),
    ];
    for (method, path) in paths {
        let (status, body) = server
            .call(method.clone(), &path, Some(&token_a), None)
            .await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["code"], "clinic_not_found", "{body}");
    }
    // Clinic A's token on its own clinic with B's patient id: still 404.
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/clinics/{a}/patients/{patient_b}"),
            Some(&token_a),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "patient_not_found");
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/clinics/{b}/patients/{patient_b}/search"),
            Some(&token_a),
            Some(json!({"query": "anything"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    // And the patient is untouched.
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/clinics/{b}/patients/{patient_b}"),
            Some(&token_b),
            None,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_required_and_roles_limit() {
    let server = TestServer::start().await;
    let clinic = server.create_clinic("Eastside").await;

    let response = server
        .http
        .get(server.api(&format!("/clinics/{clinic}/patients")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    let (status, body) = server
        .call(
            Method::GET,
            "/clinics",
            Some("mm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            None,
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "invalid_token");

    let auditor = server.clinic_token(&clinic, "auditor").await;
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic}/patients"),
            Some(&auditor),
            Some(json!({"given_name": "X", "family_name": "Y", "birth_date": "1990-01-01", "sex": "male"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "forbidden");

    let clinician = server.clinic_token(&clinic, "clinician").await;
    let (status, _) = server
        .call(
            Method::POST,
            "/clinics",
            Some(&clinician),
            Some(json!({"name": "Sneaky"})),
        )
        .await;
    assert_eq!(status, 403);
    // A clinician cannot mint a clinic admin.
    let (status, _) = server
        .call(
            Method::POST,
            "/tokens",
            Some(&clinician),
            Some(json!({"name": "x", "clinic": clinic, "role": "clinic-admin"})),
        )
        .await;
    assert_eq!(status, 403);
}
