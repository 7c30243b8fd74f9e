//! The plugin registry over HTTP against the real binary: installs that are
//! vetted (422 and nothing changed), per-clinic enablement that decides which
//! parser ingests a clinic's documents, per-clinic limits, the circuit breaker,
//! the audit of every call behind `/stats`, and persistence across a restart.

use reqwest::Method;
use serde_json::{Value, json};

use medmemory_tests::{Options, PgDatabase, TestServer, component, postgres_url};

fn options(database_url: Option<String>) -> Options {
    Options {
        database_url,
        env: vec![
            ("MEDMEMORY_PLUGIN_BREAKER_THRESHOLD".into(), "2".into()),
            (
                "MEDMEMORY_PLUGIN_BREAKER_COOLDOWN_MS".into(),
                "600000".into(),
            ),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_on_sqlite() {
    let server = TestServer::start_with(options(None)).await;
    let (server, plugin, clinic, patient) = registry_lifecycle(server).await;
    audit_rows_on_sqlite(&server, &plugin, &patient).await;
    persists_across_restart(server, &plugin, &clinic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_on_postgres() {
    let Some(admin_url) = postgres_url() else {
        return;
    };
    let db = PgDatabase::create(&admin_url).await;
    let server = TestServer::start_with(options(Some(db.url.clone()))).await;
    let (server, plugin, clinic, _) = registry_lifecycle(server).await;
    persists_across_restart(server, &plugin, &clinic).await;
    db.drop_db().await;
}

fn items(body: &Value) -> Vec<Value> {
    body["items"].as_array().cloned().unwrap_or_default()
}

async fn stats(server: &TestServer, plugin: &str) -> Value {
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/plugins/{plugin}/stats"),
            Some(&server.admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn upload_and_wait(
    server: &TestServer,
    token: &str,
    clinic: &str,
    patient: &str,
    text: &str,
) -> Value {
    let (status, body) = server
        .upload(
            token,
            clinic,
            patient,
            "text/plain",
            text.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    server
        .wait_job(token, clinic, body["job"]["id"].as_str().unwrap())
        .await
}

/// Returns the server, the third-party plugin's id, clinic A and its patient.
async fn registry_lifecycle(server: TestServer) -> (TestServer, String, String, String) {
    // First-party plugins are installed at start.
    let (status, body) = server
        .call(Method::GET, "/plugins", Some(&server.admin), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let first_party = items(&body);
    for name in ["text", "fhir-r4", "hl7v2", "ccda", "pdf"] {
        let plugin = first_party
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} not installed: {body}"));
        assert_eq!(plugin["kind"], "parser");
        assert_eq!(plugin["wit_version"], "0.2.0");
        assert_eq!(plugin["first_party"], true);
    }
    let text_id = first_party.iter().find(|p| p["name"] == "text").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Refused uploads are 422 with a stable code and change nothing.
    for (bytes, code) in [
        (component("contract-major"), "plugin_incompatible_contract"),
        (component("filesystem"), "plugin_forbidden_import"),
        (b"\0asm\x01\x00\x00\x00".to_vec(), "plugin_not_a_component"),
        (b"MZ not wasm".to_vec(), "plugin_not_a_component"),
    ] {
        let (status, body) = server.send_bytes("/plugins", &server.admin, bytes).await;
        assert_eq!((status, body["code"].as_str()), (422, Some(code)), "{body}");
    }
    let (_, body) = server
        .call(Method::GET, "/plugins", Some(&server.admin), None)
        .await;
    assert_eq!(items(&body).len(), first_party.len());

    let clinic_a = server.create_clinic("Registry A").await;
    let clinic_b = server.create_clinic("Registry B").await;
    let admin_a = server.clinic_token(&clinic_a, "clinic-admin").await;
    let admin_b = server.clinic_token(&clinic_b, "clinic-admin").await;
    let clinician_a = server.clinic_token(&clinic_a, "clinician").await;
    let patient_a = server
        .create_patient(&clinician_a, &clinic_a, "Ada", "Registry")
        .await;
    let clinician_b = server.clinic_token(&clinic_b, "clinician").await;
    let patient_b = server
        .create_patient(&clinician_b, &clinic_b, "Bea", "Registry")
        .await;

    // Only platform admins install and see the platform list.
    let (status, _) = server
        .send_bytes("/plugins", &admin_a, component("scaffold-parser"))
        .await;
    assert_eq!(status, 403);
    let (status, _) = server
        .call(Method::GET, "/plugins", Some(&clinician_a), None)
        .await;
    assert_eq!(status, 403);

    let (status, plugin) = server
        .send_bytes("/plugins", &server.admin, component("scaffold-parser"))
        .await;
    assert_eq!(status, 201, "{plugin}");
    assert_eq!(plugin["name"], "scaffold-parser");
    assert_eq!(plugin["first_party"], false);
    let id = plugin["id"].as_str().unwrap().to_owned();

    // Third-party plugins start disabled in every clinic.
    let view = |body: &Value| -> Value {
        items(body)
            .into_iter()
            .find(|p| p["plugin"]["id"] == id.as_str())
            .expect("plugin in the clinic's list")
    };
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic_a}/plugins"),
            Some(&admin_a),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(view(&body)["enabled"], false);

    // A clinic's admin decides for that clinic only.
    let enable = format!("/clinics/{clinic_a}/plugins/{id}/enable");
    let (status, body) = server
        .call(Method::POST, &enable, Some(&admin_b), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("clinic_not_found"))
    );
    let (status, _) = server
        .call(Method::POST, &enable, Some(&clinician_a), None)
        .await;
    assert_eq!(status, 403);
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic_a}/plugins/{}/enable", "0".repeat(64)),
            Some(&admin_a),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("plugin_not_found"))
    );
    let (status, body) = server
        .call(Method::POST, &enable, Some(&admin_a), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enabled"], true);

    // Clinic A's text documents now go through the scaffold parser, whose lab
    // record is rendered into searchable text; clinic B still uses `text`.
    let job = upload_and_wait(
        &server,
        &clinician_a,
        &clinic_a,
        &patient_a,
        "Visit\nHbA1c: 7.2 %\n",
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let hits = server
        .search(&clinician_a, &clinic_a, &patient_a, "HbA1c result")
        .await;
    assert!(
        hits.iter().any(|h| h["text"]
            .as_str()
            .unwrap_or("")
            .contains("Hemoglobin A1c: 7.2 %")),
        "{hits:?}"
    );
    assert_eq!(stats(&server, &id).await["calls"], 1);
    let text_calls = stats(&server, &text_id).await["calls"].as_i64().unwrap();
    let job = upload_and_wait(
        &server,
        &clinician_b,
        &clinic_b,
        &patient_b,
        "Plan:\nWalk daily.\n",
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(stats(&server, &id).await["calls"], 1);
    assert_eq!(
        stats(&server, &text_id).await["calls"].as_i64().unwrap(),
        text_calls + 1
    );

    // Settings and limits are validated; the host's limits are the ceiling.
    let config = format!("/clinics/{clinic_a}/plugins/{id}/config");
    for (body, code) in [
        (
            json!({"settings": {"Bad Key": "x"}}),
            "invalid_plugin_settings",
        ),
        (
            json!({"limits": {"fuel": 10_000_000_000_000u64}}),
            "invalid_plugin_limits",
        ),
        (
            json!({"limits": {"deadline_ms": 0}}),
            "invalid_plugin_limits",
        ),
    ] {
        let (status, response) = server
            .call(Method::PUT, &config, Some(&admin_a), Some(body))
            .await;
        assert_eq!(
            (status, response["code"].as_str()),
            (422, Some(code)),
            "{response}"
        );
    }
    let (status, body) = server
        .call(
            Method::PUT,
            &config,
            Some(&admin_a),
            Some(json!({"settings": {"unit.system": "si"}, "limits": {"fuel": 1000}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["limits"]["fuel"], 1000);
    assert_eq!(body["settings"]["unit.system"], "si");

    // With 1000 units of fuel the plugin fails in clinic A; after two failures
    // A's breaker opens. A's next document is not failed for good: it waits
    // for the cool-down (queued, `plugin_circuit_open`) and is tried again.
    // Each upload is a new document (identical bytes would be de-duplicated).
    for n in 0..2 {
        let job = upload_and_wait(
            &server,
            &clinician_a,
            &clinic_a,
            &patient_a,
            &format!("HbA1c: 6.{n} %\n"),
        )
        .await;
        assert_eq!(
            (job["status"].as_str(), job["error_code"].as_str()),
            (Some("failed"), Some("plugin_fuel_exhausted")),
            "{job}"
        );
    }
    let (status, body) = server
        .upload(
            &clinician_a,
            &clinic_a,
            &patient_a,
            "text/plain",
            b"HbA1c: 6.2 %\n".to_vec(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let paused_job = body["job"]["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let paused = loop {
        let (_, job) = server
            .call(
                Method::GET,
                &format!("/clinics/{clinic_a}/jobs/{paused_job}"),
                Some(&clinician_a),
                None,
            )
            .await;
        if job["error_code"] == "plugin_circuit_open" {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        paused["status"], "queued",
        "retried after the cool-down: {paused}"
    );
    let (_, body) = server
        .call(
            Method::GET,
            &format!("/plugins/{id}"),
            Some(&server.admin),
            None,
        )
        .await;
    assert_eq!(body["circuit_open"], true, "{body}");
    let stats = stats(&server, &id).await;
    assert_eq!(stats["calls"], 4, "{stats}");
    assert_eq!(stats["failures"], 3, "{stats}");
    assert_eq!(stats["outcomes"]["plugin_fuel_exhausted"], 2, "{stats}");
    assert_eq!(stats["outcomes"]["plugin_circuit_open"], 1, "{stats}");
    assert_eq!(stats["outcomes"]["ok"], 1, "{stats}");

    // Clinic A's failures (under its own lowered limits) pause the plugin for
    // A only: clinic B enables the same plugin and it works there.
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic_b}/plugins/{id}/enable"),
            Some(&admin_b),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, listed) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic_b}/plugins"),
            Some(&admin_b),
            None,
        )
        .await;
    assert_eq!(view(&listed)["plugin"]["circuit_open"], false, "{listed}");
    let job = upload_and_wait(
        &server,
        &clinician_b,
        &clinic_b,
        &patient_b,
        "HbA1c: 5.9 %\n",
    )
    .await;
    assert_eq!(job["status"], "succeeded", "B is not paused by A: {job}");
    let (status, _) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic_b}/plugins/{id}/disable"),
            Some(&admin_b),
            None,
        )
        .await;
    assert_eq!(status, 200);

    // The rest of the platform is unaffected.
    let health = server.http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let job = upload_and_wait(
        &server,
        &clinician_b,
        &clinic_b,
        &patient_b,
        "Plan:\nSwim.\n",
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");

    // Disabling gives clinic A back to the first-party parser.
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic_a}/plugins/{id}/disable"),
            Some(&admin_a),
            None,
        )
        .await;
    assert_eq!(
        (status, body["enabled"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    let job = upload_and_wait(
        &server,
        &clinician_a,
        &clinic_a,
        &patient_a,
        "Plan:\nRest.\n",
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // Sending a failed document again queues it again (here it now goes
    // through the first-party parser and succeeds).
    let (status, body) = server
        .upload(
            &clinician_a,
            &clinic_a,
            &patient_a,
            "text/plain",
            b"HbA1c: 6.0 %\n".to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["duplicate"], true, "{body}");
    assert_eq!(body["job"]["status"], "queued", "{body}");
    let job = server
        .wait_job(&clinician_a, &clinic_a, body["job"]["id"].as_str().unwrap())
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // Re-enable for the restart check.
    let (status, _) = server
        .call(Method::POST, &enable, Some(&admin_a), None)
        .await;
    assert_eq!(status, 200);
    (server, id, clinic_a, patient_a)
}

/// Every call is in `plugin_calls`: clinic, patient, input digest, outcome.
async fn audit_rows_on_sqlite(server: &TestServer, plugin: &str, patient: &str) {
    let url = format!(
        "sqlite://{}",
        server.data.path().join("medmemory.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open the database");
    let patient: uuid::Uuid = patient.parse().unwrap();
    let rows: Vec<(String, String, Option<uuid::Uuid>)> = sqlx::query_as(
        "SELECT c.outcome, c.input_sha256, c.patient_id FROM plugin_calls c
         WHERE c.plugin_id = $1 AND c.patient_id = $2 ORDER BY c.created_at",
    )
    .bind(plugin)
    .bind(patient)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter()
            .all(|(_, digest, p)| digest.len() == 64 && *p == Some(patient))
    );
    let digests: Vec<String> =
        sqlx::query_scalar("SELECT d.sha256 FROM documents d WHERE d.patient_id = $1")
            .bind(patient)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(rows.iter().all(|(_, digest, _)| digests.contains(digest)));
    pool.close().await;
}

/// Installed plugins and clinic choices survive a restart; the component is
/// loaded from the compile cache rather than compiled again.
async fn persists_across_restart(server: TestServer, plugin: &str, clinic: &str) {
    let server = server.restart().await;
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/plugins/{plugin}"),
            Some(&server.admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "scaffold-parser");
    assert_eq!(body["circuit_open"], false, "breakers are per process");
    let enabled: Vec<Value> = body["enabled_clinics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(enabled.iter().any(|c| c == clinic), "{body}");
    let cached = std::fs::read_dir(server.data.path().join("cache/plugins"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "cwasm")
        })
        .count();
    assert!(
        cached >= 6,
        "one compiled artefact per plugin, found {cached}"
    );
}
