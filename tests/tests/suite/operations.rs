//! Operations endpoints, request ids, metrics and the OpenAPI document.

use medmemory_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_metrics_and_request_ids() {
    let server = TestServer::start().await;

    let health = server.http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let ready: serde_json::Value = server
        .http
        .get(server.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true);
    let names: Vec<&str> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "database",
            "identity_provider",
            "migrations",
            "vector_store",
            "vector_index",
            "model",
            "plugins"
        ]
    );

    let echoed = server
        .http
        .get(server.api("/clinics"))
        .bearer_auth(&server.admin)
        .header("x-request-id", "test-req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "test-req-42");
    let generated = server
        .http
        .get(server.api("/clinics/nope"))
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let problem: serde_json::Value = generated.json().await.unwrap();
    assert_eq!(problem["request_id"], id.as_str());

    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_request_duration_seconds")
                && l.contains("route=\"/api/v1/clinics\"")),
        "no route-labelled histogram in:\n{metrics}"
    );

    let openapi: serde_json::Value = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/clinics",
        "/api/v1/clinics/{clinic}/patients/{patient}/search",
        "/ready",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}
