//! Bad input gets a 4xx problem document with a stable code and changes nothing.

use medmemory_tests::{Options, TestServer};
use reqwest::Method;
use serde_json::Value;
use sqlx::Connection;

/// Rows in the tables an upload or a create would touch, read straight from
/// the server's SQLite file.
async fn row_counts(server: &TestServer) -> Vec<(String, i64)> {
    let url = format!(
        "sqlite://{}?mode=ro",
        server.data.path().join("medmemory.db").display()
    );
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the server's database");
    let mut counts = Vec::new();
    for table in ["clinics", "patients", "documents", "jobs", "chunks"] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut conn)
                .await
                .expect("count");
        counts.push((table.to_owned(), n));
    }
    counts
}

fn blob_files(server: &TestServer) -> usize {
    crate::memory::files(&server.data.path().join("blobs")).len()
}

fn assert_problem(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], expected_status, "{body}");
    assert!(
        body["type"].as_str().is_some_and(|t| t.ends_with(code)),
        "{body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    assert!(body["request_id"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_and_bodies_change_nothing() {
    let server = TestServer::start_with(Options {
        env: vec![("MEDMEMORY_MAX_UPLOAD_BYTES".into(), "4096".into())],
        ..Options::default()
    })
    .await;
    let clinic = server.create_clinic("Harbor Clinic").await;
    let patient = server
        .create_patient(&server.admin, &clinic, "Ola", "Nordmann")
        .await;
    let before = row_counts(&server).await;

    let (status, body) = server
        .upload(&server.admin, &clinic, &patient, "text/plain", Vec::new())
        .await;
    assert_problem(status, &body, 400, "empty_document");

    let big = "a line of clinical text\n".repeat(400).into_bytes();
    assert!(big.len() > 4096);
    let (status, body) = server
        .upload(&server.admin, &clinic, &patient, "text/plain", big)
        .await;
    assert_problem(status, &body, 413, "payload_too_large");

    let binary: Vec<u8> = (0..2048u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (status, body) = server
        .upload(&server.admin, &clinic, &patient, "text/plain", binary)
        .await;
    assert_problem(status, &body, 415, "unsupported_media_type");

    let response = server
        .http
        .post(server.api(&format!("/clinics/{clinic}/patients")))
        .bearer_auth(&server.admin)
        .header("content-type", "application/json")
        .body("{\"given_name\": \"Kari\", \"family_name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let status = response.status().as_u16();
    assert_problem(
        status,
        &response.json().await.unwrap(),
        400,
        "malformed_json",
    );

    let (status, body) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic}/patients"),
            Some(&server.admin),
            Some(serde_json::json!({"given_name": "Kari", "family_name": "N", "birth_date": "2999-01-01", "sex": "female"})),
        )
        .await;
    assert_problem(status, &body, 422, "invalid_patient");

    let (status, body) = server
        .call(
            Method::POST,
            "/clinics",
            Some(&server.admin),
            Some(serde_json::json!({"name": 42})),
        )
        .await;
    assert_problem(status, &body, 422, "invalid_body");

    // serde reads a struct from an array of its fields too: `[]` would be an
    // empty policy (every custom role and grant gone) if it were accepted.
    for (method, path, body) in [
        (
            Method::PUT,
            format!("/clinics/{clinic}/policies"),
            serde_json::json!([]),
        ),
        (
            Method::POST,
            format!("/clinics/{clinic}/patients"),
            serde_json::json!(["Kari", "N", "1990-01-01", "female", null]),
        ),
        (
            Method::POST,
            "/clinics".to_owned(),
            serde_json::json!("Clinic"),
        ),
    ] {
        let (status, body) = server
            .call(method, &path, Some(&server.admin), Some(body))
            .await;
        assert_problem(status, &body, 422, "invalid_body");
    }

    assert_eq!(
        row_counts(&server).await,
        before,
        "a rejected request left rows behind"
    );
    assert_eq!(
        blob_files(&server),
        0,
        "a rejected upload left a blob behind"
    );
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} for {pid}"))
}

/// An upload that looks like JSON is judged from its first bytes: a 22 MB
/// array is refused (no parser handles plain JSON) without the server
/// building it as a tree (which once cost it 815 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_json_upload_is_sniffed_without_parsing_it() {
    let server = TestServer::start().await;
    let clinic = server.create_clinic("Sniff Clinic").await;
    let patient = server
        .create_patient(&server.admin, &clinic, "Ada", "Byte")
        .await;
    let body = format!("[{}0]", "0,".repeat(11_000_000)).into_bytes();
    let pid = server.pid();
    let before = status_kib(pid, "VmRSS");
    // Reset the peak so that VmHWM shows this request's peak only.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let (status, problem) = server
        .upload(&server.admin, &clinic, &patient, "application/json", body)
        .await;
    assert_eq!(status, 415, "{problem}");
    assert_eq!(problem["code"], "unsupported_media_type", "{problem}");
    let peak = status_kib(pid, "VmHWM");
    let growth_mib = peak.saturating_sub(before) / 1024;
    println!("22 MB JSON upload: server RSS {before} KiB before, peak {peak} KiB");
    assert!(
        growth_mib < 160,
        "the server grew by {growth_mib} MiB to refuse a 22 MB upload"
    );
}

/// Sends the head of a request announcing a large body, and a few bytes of
/// it; returns the status line the server answers with, if it answers
/// within two seconds without waiting for the rest.
async fn answer_before_body(server: &TestServer, path: &str, token: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1{path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 20000000\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&[0u8; 4096]).await.unwrap();
    let mut answer = vec![0u8; 64];
    let read = tokio::time::timeout(std::time::Duration::from_secs(2), socket.read(&mut answer))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&answer[..read])
        .lines()
        .next()
        .map(str::to_owned)
}

/// A caller without the permission is refused before the server reads a
/// large body: installs (64 MiB) and uploads (25 MiB) authorize first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_refused_before_they_are_read() {
    let server = TestServer::start().await;
    let clinic = server.create_clinic("Refusals").await;
    let auditor = server.clinic_token(&clinic, "auditor").await;
    let clinician = server.clinic_token(&clinic, "clinician").await;
    let patient = server
        .create_patient(&clinician, &clinic, "Noor", "Haddad")
        .await;

    let status = answer_before_body(&server, "/plugins", &auditor).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 403 Forbidden"));
    let upload = format!("/clinics/{clinic}/patients/{patient}/documents");
    let status = answer_before_body(&server, &upload, &auditor).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 403 Forbidden"));
    let status = answer_before_body(&server, &upload, "mm_not-a-token").await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 401 Unauthorized"));
}
