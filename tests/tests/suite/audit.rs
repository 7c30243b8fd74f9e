//! The audit trail: every access to a clinic's or patient's data leaves an
//! entry (allowed or denied, with the request id), auditors read it with
//! filters, and `GET /audit/verify` catches a row edited directly in the
//! database.

use reqwest::Method;
use serde_json::Value;

use medmemory::db::Db;
use medmemory_tests::{TestServer, start_on_postgres};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_trail_on_sqlite() {
    let server = TestServer::start().await;
    audit_trail(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_trail_on_postgres() {
    let Some((server, db)) = start_on_postgres(Vec::new()).await else {
        return;
    };
    audit_trail(&server).await;
    drop(server);
    db.drop_db().await;
}

async fn audit_trail(server: &TestServer) {
    let clinic = server.create_clinic("Audited").await;
    let clinician = server.clinic_token(&clinic, "clinician").await;
    let auditor = server.clinic_token(&clinic, "auditor").await;
    let patient = server
        .create_patient(&clinician, &clinic, "Aud", "Itee")
        .await;
    server
        .ingest_text(&clinician, &clinic, &patient, "Seen for a sprained ankle.")
        .await;
    let hits = server.search(&clinician, &clinic, &patient, "ankle").await;
    assert!(!hits.is_empty());
    // A denied attempt is recorded too.
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/patients/{patient}"),
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(status, 403);

    let request_id = "audit-test-request-1";
    let response = server
        .http
        .get(server.api(&format!("/clinics/{clinic}/patients/{patient}/records")))
        .bearer_auth(&clinician)
        .header("x-request-id", request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A request id that is too long or not plain text never reaches the
    // append-only trail: a fresh one replaces it.
    let hostile = [
        "x".repeat(5000),
        "id with spaces".to_owned(),
        "<b>id</b>".to_owned(),
    ];
    for id in &hostile {
        let response = server
            .http
            .get(server.api(&format!("/clinics/{clinic}/patients/{patient}/documents")))
            .bearer_auth(&clinician)
            .header("x-request-id", id.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(&echoed, id);
        assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{echoed}");
    }

    let (status, body) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/audit?patient={patient}&limit=500"),
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    let has = |resource: &str, action: &str, outcome: &str| {
        items
            .iter()
            .any(|e| e["resource"] == resource && e["action"] == action && e["outcome"] == outcome)
    };
    assert!(has("document", "create", "allowed"), "{body}");
    assert!(has("memory", "search", "allowed"), "{body}");
    assert!(has("patient", "read", "denied"), "{body}");
    assert!(
        items
            .iter()
            .any(|e| e["request_id"] == request_id && e["resource"] == "record"),
        "{body}"
    );
    assert!(items.iter().all(|e| e["patient_id"] == patient.as_str()));
    assert!(
        items.iter().all(|e| e["request_id"]
            .as_str()
            .is_none_or(|id| id.len() <= 64 && !hostile.iter().any(|h| h == id))),
        "a hostile request id reached the trail"
    );
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/audit?action=search"),
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] == "search")
    );
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/audit"),
            Some(&clinician),
            None,
        )
        .await;
    assert_eq!(status, 403, "clinicians do not read the trail");

    // Admin changes are recorded as changes, with what changed and never a
    // setting's value: the clinic's creation, and a plugin's choice and
    // settings for the clinic.
    let text = server.plugin_id("text").await;
    let choice = format!("/clinics/{clinic}/plugins/{text}");
    for path in [format!("{choice}/disable"), format!("{choice}/enable")] {
        let (status, body) = server
            .call(Method::POST, &path, Some(&server.admin), None)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = server
        .call(
            Method::PUT,
            &format!("{choice}/config"),
            Some(&server.admin),
            Some(serde_json::json!({ "settings": { "api-key": "s3cret-value" } })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let auditor_token = auditor.clone();
    let changes = |action: &'static str| {
        let auditor = auditor_token.clone();
        let clinic = clinic.clone();
        async move {
            let (status, body) = server
                .call(
                    Method::GET,
                    &format!("/clinics/{clinic}/audit?action={action}&limit=500"),
                    Some(&auditor),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["outcome"] == "succeeded")
                .cloned()
                .collect::<Vec<_>>()
        }
    };
    let created = changes("create").await;
    assert!(
        created.iter().any(|e| e["resource"] == "clinic"),
        "{created:?}"
    );
    let updated = changes("update").await;
    let plugin_changes: Vec<_> = updated
        .iter()
        .filter(|e| e["resource"] == "plugin")
        .collect();
    assert_eq!(plugin_changes.len(), 3, "{updated:?}");
    let trail = serde_json::to_string(&updated).unwrap();
    assert!(trail.contains("api-key"), "{trail}");
    assert!(
        !trail.contains("s3cret-value"),
        "a setting's value reached the trail"
    );

    // The chain holds...
    let verify = || async {
        let (status, body) = server
            .call(Method::GET, "/audit/verify", Some(&server.admin), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let body: Value = verify().await;
    assert_eq!(body["ok"], true, "{body}");
    assert!(body["checked"].as_i64().unwrap() >= items.len() as i64);
    let (status, _) = server
        .call(Method::GET, "/audit/verify", Some(&auditor), None)
        .await;
    assert_eq!(status, 403);

    // ...until someone edits a row behind the API's back.
    let victim = items[1]["seq"].as_i64().unwrap();
    let db = Db::connect(&server.database_url()).await.unwrap();
    match &db {
        Db::Sqlite(pool) => {
            let refused = sqlx::query("UPDATE audit_events SET outcome = 'denied' WHERE seq = $1")
                .bind(victim)
                .execute(pool)
                .await;
            assert!(refused.is_err(), "the trigger refuses edits");
            sqlx::query("DROP TRIGGER audit_events_no_update")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("UPDATE audit_events SET outcome = 'denied' WHERE seq = $1")
                .bind(victim)
                .execute(pool)
                .await
                .unwrap();
        }
        Db::Postgres(pool) => {
            let refused = sqlx::query("UPDATE audit_events SET outcome = 'denied' WHERE seq = $1")
                .bind(victim)
                .execute(pool)
                .await;
            assert!(refused.is_err(), "the trigger refuses edits");
            sqlx::query("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("UPDATE audit_events SET outcome = 'denied' WHERE seq = $1")
                .bind(victim)
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let body = verify().await;
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["first_broken"]["seq"], victim, "{body}");
    assert_eq!(body["first_broken"]["reason"], "altered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_list_expire_and_revoke() {
    let server = TestServer::start().await;
    let clinic = server.create_clinic("Tokens").await;
    let admin = server.clinic_token(&clinic, "clinic-admin").await;
    let soon = (chrono::Utc::now() + chrono::TimeDelta::seconds(2)).to_rfc3339();
    let (status, body) = server
        .call(
            Method::POST,
            "/tokens",
            Some(&admin),
            Some(serde_json::json!({ "name": "short-lived", "clinic": clinic, "role": "clinician", "expires_at": soon })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let short = body["secret"].as_str().unwrap().to_owned();
    let (status, body) = server
        .call(
            Method::POST,
            "/tokens",
            Some(&admin),
            Some(serde_json::json!({ "name": "past", "clinic": clinic, "role": "clinician", "expires_at": "2020-01-01T00:00:00Z" })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_expiry"))
    );
    let clinician = server.clinic_token(&clinic, "clinician").await;
    let patients = format!("/clinics/{clinic}/patients");
    let (status, _) = server
        .call(Method::GET, &patients, Some(&short), None)
        .await;
    assert_eq!(status, 200);

    // Listing shows tokens without secrets; the clinic admin sees its clinic's.
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/tokens?clinic={clinic}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert!(items.len() >= 3);
    assert!(
        !body.to_string().contains("mm_"),
        "no secret is ever listed"
    );
    let (status, _) = server
        .call(Method::GET, "/tokens", Some(&admin), None)
        .await;
    assert_eq!(status, 403, "only platform admins list every token");

    // Revocation takes effect on the next request.
    let (_, me) = server
        .call(
            Method::GET,
            &format!("/tokens?clinic={clinic}"),
            Some(&admin),
            None,
        )
        .await;
    let clinician_id = me["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["role"] == "clinician" && t["expires_at"].is_null())
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .next_back()
        .unwrap();
    let (status, _) = server
        .call(Method::GET, &patients, Some(&clinician), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/tokens/{clinician_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .call(Method::GET, &patients, Some(&clinician), None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/tokens/{clinician_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 404, "already revoked");

    // A clinic admin cannot see or revoke platform tokens.
    let (_, all) = server
        .call(Method::GET, "/tokens", Some(&server.admin), None)
        .await;
    let platform = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "platform-admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/tokens/{platform}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // The short-lived token has expired by now.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (status, _) = server
        .call(Method::GET, &patients, Some(&short), None)
        .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let server = TestServer::start_with(medmemory_tests::Options {
        database_url: None,
        env: vec![
            ("MEDMEMORY_RATE_LIMIT_PER_MINUTE".into(), "30".into()),
            (
                "MEDMEMORY_RATE_LIMIT_ADDRESS_PER_MINUTE".into(),
                "100".into(),
            ),
        ],
    })
    .await;
    let clinic = server.create_clinic("Limited").await;
    let token = server.clinic_token(&clinic, "clinician").await;
    let patient = server
        .create_patient(&token, &clinic, "Rate", "Limit")
        .await;
    // Searches cost five: the clinician's bucket of 30 empties after six
    // (the patient creation took one).
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let response = server
            .http
            .post(server.api(&format!("/clinics/{clinic}/patients/{patient}/search")))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "query": "anything", "mode": "keyword" }))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "rate_limited");
        }
    }
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert_eq!(statuses[7], 429, "{statuses:?}");
    let seconds: u64 = retry_after
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&seconds));
    // Another credential from the same address still gets through, and the
    // operations endpoints are never limited.
    let (status, _) = server
        .call(Method::GET, "/clinics", Some(&server.admin), None)
        .await;
    assert_eq!(status, 200);
    for _ in 0..120 {
        let response = server.http.get(server.url("/health")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_phi_reaches_the_logs() {
    let server = TestServer::start_with(medmemory_tests::Options {
        database_url: None,
        env: vec![("MEDMEMORY_LOG".into(), "debug".into())],
    })
    .await;
    let clinic = server.create_clinic("Private").await;
    let token = server.clinic_token(&clinic, "clinician").await;
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic}/patients"),
            Some(&token),
            Some(serde_json::json!({
                "given_name": "Zenobia", "family_name": "Quackenbush",
                "birth_date": "1955-07-19", "sex": "female", "mrn": "MRN-7731-PHI"
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let patient = body["id"].as_str().unwrap().to_owned();
    server
        .ingest_text(
            &token,
            &clinic,
            &patient,
            "Zenobia Quackenbush reports Xylophagous dermatitis since 2019.",
        )
        .await;
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/patients?q=Quacken"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let hits = server
        .search(
            &token,
            &clinic,
            &patient,
            "Xylophagous dermatitis Quackenbush",
        )
        .await;
    assert!(!hits.is_empty());
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/patients/{patient}/fhir"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let logs = server.logs();
    assert!(logs.len() > 20, "debug logs were captured");
    for phi in [
        "Zenobia",
        "Quackenbush",
        "Quacken",
        "1955-07-19",
        "MRN-7731-PHI",
        "Xylophagous",
    ] {
        let leaks: Vec<&String> = logs.iter().filter(|l| l.contains(phi)).collect();
        assert!(leaks.is_empty(), "{phi} leaked into the logs: {leaks:?}");
    }
}
