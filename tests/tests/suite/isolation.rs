//! One clinic cannot hold ingestion for the others: a parser that sleeps is
//! stopped by its own limits, and while it runs, another clinic's documents
//! are ingested by another worker. Job-event streams are bounded per caller
//! and end when their credential is revoked.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use medmemory_tests::{Options, TestServer, component};

async fn job_of(server: &TestServer, token: &str, clinic: &str, job: &str) -> Value {
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/jobs/{job}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_parser_stalls_no_other_clinic() {
    let server = TestServer::start_with(Options {
        // Fuel to spare: the 30 s deadline is what stops the sleeper.
        env: vec![
            ("MEDMEMORY_PLUGIN_DEADLINE_MS".into(), "30000".into()),
            ("MEDMEMORY_PLUGIN_FUEL".into(), "1000000000000000".into()),
        ],
        ..Options::default()
    })
    .await;
    let (status, body) = server
        .send_bytes("/plugins", &server.admin, component("sleep"))
        .await;
    assert_eq!(status, 201, "{body}");
    let plugin = body["id"].as_str().expect("plugin id").to_owned();

    let clinic_a = server.create_clinic("Sleepy A").await;
    let clinic_b = server.create_clinic("Busy B").await;
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic_a}/plugins/{plugin}/enable"),
            Some(&server.admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token_a = server.clinic_token(&clinic_a, "clinician").await;
    let token_b = server.clinic_token(&clinic_b, "clinician").await;
    let patient_a = server.create_patient(&token_a, &clinic_a, "Ada", "A").await;
    let patient_b = server.create_patient(&token_b, &clinic_b, "Bea", "B").await;

    // Clinic A's note goes to the sleeping parser...
    let (status, body) = server
        .upload(
            &token_a,
            &clinic_a,
            &patient_a,
            "text/plain",
            b"Plan: rest.".to_vec(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let job_a = body["job"]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while job_of(&server, &token_a, &clinic_a, &job_a).await["status"] == "queued" {
        assert!(Instant::now() < deadline, "clinic A's job never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // ...and clinic B's is ingested meanwhile, well within A's deadline.
    let started = Instant::now();
    let (status, body) = server
        .upload(
            &token_b,
            &clinic_b,
            &patient_b,
            "text/plain",
            b"Plan: walk daily.".to_vec(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let job_b = server
        .wait_job(&token_b, &clinic_b, body["job"]["id"].as_str().unwrap())
        .await;
    let waited = started.elapsed();
    assert_eq!(job_b["status"], "succeeded", "{job_b}");
    assert!(
        waited < Duration::from_secs(7),
        "clinic B waited {waited:?} behind clinic A's plugin"
    );

    // While A's job runs: a caller holds at most four event streams, and a
    // freed slot can be taken again.
    let events = format!("/clinics/{clinic_a}/jobs/{job_a}/events");
    let open = |token: String| {
        let request = server.http.get(server.api(&events)).bearer_auth(token);
        async move { request.send().await.expect("stream") }
    };
    let mut streams = Vec::new();
    for _ in 0..4 {
        let stream = open(token_a.clone()).await;
        assert_eq!(stream.status(), 200);
        streams.push(stream);
    }
    let refused = open(token_a.clone()).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "too_many_streams", "{body}");
    drop(streams.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = open(token_a.clone()).await;
    assert_eq!(again.status(), 200, "a closed stream gives its slot back");
    drop(again);
    drop(streams);

    // A stream ends soon after its token is revoked, though the job runs on.
    let (status, issued) = server
        .call(
            Method::POST,
            "/tokens",
            Some(&server.admin),
            Some(serde_json::json!({ "name": "watcher", "clinic": clinic_a, "role": "clinician" })),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let watcher = issued["secret"].as_str().unwrap().to_owned();
    let mut stream = open(watcher).await;
    assert_eq!(stream.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("a first event at once")
        .unwrap()
        .expect("a first event");
    assert!(String::from_utf8_lossy(&first).contains("progress"));
    let (status, body) = server
        .call(
            Method::DELETE,
            &format!("/tokens/{}", issued["token"]["id"].as_str().unwrap()),
            Some(&server.admin),
            None,
        )
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let revoked = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        let mut seen = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        seen
    })
    .await
    .expect("the stream of a revoked token ends");
    assert!(
        !ended.contains("event: done"),
        "the job settled first: {ended}"
    );
    assert!(revoked.elapsed() < Duration::from_secs(15));

    // A's job fails on its own limits, not after the hour it asked to sleep.
    let job_a = server.wait_job(&token_a, &clinic_a, &job_a).await;
    assert_eq!(job_a["status"], "failed", "{job_a}");
    let code = job_a["error_code"].as_str().unwrap_or_default();
    assert!(
        code == "plugin_deadline_exceeded" || code == "plugin_fuel_exhausted",
        "{job_a}"
    );
}
