//! Retriever plugins choose the evidence of `/ask` and `/search`: the
//! first-party `records-first` answers value and list questions from the
//! structured record (composed, without a model), a clinic chooses its
//! default, and a hostile retriever that returns another patient's ids gets
//! none of that patient's data; on SQLite and PostgreSQL.

use medmemory_tests::chat_peer::{ChatPeer, Reply};
use medmemory_tests::{Options, TestServer, component, start_on_postgres};
use reqwest::Method;
use serde_json::{Value, json};

struct Patient {
    clinic: String,
    token: String,
    id: String,
}

async fn post_records(server: &TestServer, p: &Patient, records: Value) -> Vec<Value> {
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/clinics/{}/patients/{}/records", p.clinic, p.id),
            Some(&p.token),
            Some(json!({ "records": records })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

async fn ask(server: &TestServer, p: &Patient, body: Value) -> (u16, Value) {
    server
        .call(
            Method::POST,
            &format!("/clinics/{}/patients/{}/ask", p.clinic, p.id),
            Some(&p.token),
            Some(body),
        )
        .await
}

async fn search(server: &TestServer, p: &Patient, body: Value) -> (u16, Value) {
    server
        .call(
            Method::POST,
            &format!("/clinics/{}/patients/{}/search", p.clinic, p.id),
            Some(&p.token),
            Some(body),
        )
        .await
}

/// Sets the clinic's default retriever as `token`.
async fn choose(server: &TestServer, p: &Patient, retriever: &str, token: &str) -> (u16, Value) {
    server
        .call(
            Method::PUT,
            &format!("/clinics/{}/retriever", p.clinic),
            Some(token),
            Some(json!({ "retriever": retriever })),
        )
        .await
}

fn a1c(when: &str, value: f64) -> Value {
    json!({ "kind": "observation", "display": "Hemoglobin A1c/Hemoglobin.total in Blood",
        "codes": [{ "system": "http://loinc.org", "code": "4548-4" }],
        "status": "final", "effective": when,
        "value": { "value": value, "text": value.to_string(), "unit": "%" },
        "reference_range": { "low": 4.0, "high": 5.6, "text": "4.0-5.6" } })
}

fn id_of(records: &[Value], display_part: &str, when: Option<&str>) -> String {
    records
        .iter()
        .find(|r| {
            r["display"]
                .as_str()
                .unwrap_or_default()
                .contains(display_part)
                && when.is_none_or(|w| r["effective"] == w)
        })
        .and_then(|r| r["id"].as_str())
        .unwrap_or_else(|| panic!("no {display_part} record"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_first_answers_from_records_on_sqlite() {
    let server = TestServer::start().await;
    records_first(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_first_answers_from_records_on_postgres() {
    let Some((server, db)) = start_on_postgres(Vec::new()).await else {
        return;
    };
    records_first(&server).await;
    drop(server);
    db.drop_db().await;
}

async fn records_first(server: &TestServer) {
    let clinic = server.create_clinic("Retrievers").await;
    let token = server.clinic_token(&clinic, "clinician").await;
    let id = server.create_patient(&token, &clinic, "Rae", "Cords").await;
    let p = Patient { clinic, token, id };
    let records = post_records(
        server,
        &p,
        json!([
            a1c("2023-01-05", 8.1),
            a1c("2024-03-05", 7.2),
            a1c("2022-06-01", 9.0),
            { "kind": "medication", "display": "Metformin 500 MG Oral Tablet", "status": "active",
              "effective": "2020-01-10", "details": [{ "name": "dosage", "value": "500 mg twice daily" }] },
            { "kind": "medication", "display": "Lisinopril 10 MG Oral Tablet", "status": "active",
              "effective": "2021-04-02" },
            { "kind": "medication", "display": "Ibuprofen 400 MG Oral Tablet", "status": "stopped",
              "effective": "2023-08-01", "effective_end": "2023-08-15" },
            { "kind": "allergy", "display": "Penicillin", "status": "active",
              "details": [{ "name": "reaction", "value": "Hives" }] },
            { "kind": "encounter", "display": "Office visit", "effective": "2024-02-01" },
            { "kind": "encounter", "display": "Follow-up visit", "effective": "2024-05-20" }
        ]),
    )
    .await;
    let latest_a1c = id_of(&records, "A1c", Some("2024-03-05"));

    // The latest value, composed from the record itself: no model is
    // configured in this server, and none is needed.
    let (status, body) = ask(
        server,
        &p,
        json!({ "question": "What was the last A1c?", "retriever": "records-first" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "composed", "{body}");
    assert_eq!(body["retriever"], "records-first");
    let answer = body["answer"].as_str().unwrap();
    assert!(
        answer.contains("7.2 %") && answer.contains("2024-03-05"),
        "{answer}"
    );
    assert!(
        !answer.contains("8.1") && !answer.contains("9"),
        "only the latest: {answer}"
    );
    assert_eq!(
        body["citations"][0]["record_id"],
        latest_a1c.as_str(),
        "{body}"
    );
    assert!(answer.ends_with("[1]"), "{answer}");

    // Lists: active medications only; what was given for pain; the last visit.
    let (_, body) = ask(
        server,
        &p,
        json!({ "question": "What are her current medications?", "retriever": "records-first" }),
    )
    .await;
    let answer = body["answer"].as_str().unwrap_or_default();
    assert!(
        answer.contains("Metformin") && answer.contains("Lisinopril"),
        "{body}"
    );
    assert!(
        !answer.contains("Ibuprofen"),
        "stopped drugs are not current: {answer}"
    );
    let (_, body) = ask(
        server,
        &p,
        json!({ "question": "What has she been given for pain?", "retriever": "records-first" }),
    )
    .await;
    let answer = body["answer"].as_str().unwrap_or_default();
    assert!(
        answer.contains("Ibuprofen") && !answer.contains("Metformin"),
        "{body}"
    );

    // The clinic chooses records-first for everyone; an unknown name is
    // refused, and so is a clinician's attempt.
    let (status, body) = choose(server, &p, "records-first", &p.token).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = choose(server, &p, "no-such-retriever", &server.admin).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("unknown_retriever")),
        "{body}"
    );
    let (status, body) = choose(server, &p, "records-first", &server.admin).await;
    assert_eq!(
        (status, body["retriever"].as_str()),
        (200, Some("records-first")),
        "{body}"
    );
    let (status, body) = ask(
        server,
        &p,
        json!({ "question": "When was the last visit?" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retriever"], "records-first");
    let answer = body["answer"].as_str().unwrap_or_default();
    assert!(
        answer.contains("2024-05-20") && !answer.contains("2024-02-01"),
        "{body}"
    );
    let (status, body) = search(server, &p, json!({ "query": "allergies" })).await;
    assert_eq!(
        (status, body["retriever"].as_str()),
        (200, Some("records-first")),
        "{body}"
    );
    // The retriever's reason for each hit reaches the clinician.
    assert!(
        body["items"][0]["explanation"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert!(
        body["items"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Penicillin"),
        "{body}"
    );

    // A named retriever that the clinic does not have is a clear 422.
    let (status, body) = ask(
        server,
        &p,
        json!({ "question": "What was the last A1c?", "retriever": "nope" }),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("unknown_retriever")),
        "{body}"
    );
}

/// A retriever that returns another patient's chunk and record ids (its
/// clinic set them in its config) and made-up ones: the host hands the
/// plugin only the asking patient's data and ignores every id it did not
/// hand out, so nothing of the other patient comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_retriever_cannot_reach_another_patient_on_sqlite() {
    let peer = potassium_peer().await;
    let server = TestServer::start_with(Options {
        env: peer_env(&peer),
        ..Options::default()
    })
    .await;
    hostile_retriever(&server, &peer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_retriever_cannot_reach_another_patient_on_postgres() {
    let peer = potassium_peer().await;
    let Some((server, db)) = start_on_postgres(peer_env(&peer)).await else {
        return;
    };
    hostile_retriever(&server, &peer).await;
    drop(server);
    db.drop_db().await;
}

async fn potassium_peer() -> ChatPeer {
    ChatPeer::start(|_| Reply::text("The potassium was 4.1 mmol/L [1].")).await
}

fn peer_env(peer: &ChatPeer) -> Vec<(String, String)> {
    vec![
        ("MEDMEMORY_GENERATOR".into(), "openai".into()),
        ("MEDMEMORY_GENERATOR_URL".into(), peer.url.clone()),
        ("MEDMEMORY_GENERATOR_MODEL".into(), "peer".into()),
    ]
}

async fn hostile_retriever(server: &TestServer, peer: &ChatPeer) {
    let clinic = server.create_clinic("Hostile retriever").await;
    let token = server.clinic_token(&clinic, "clinician").await;
    let victim = Patient {
        id: server.create_patient(&token, &clinic, "Vic", "Tim").await,
        clinic: clinic.clone(),
        token: token.clone(),
    };
    let asker = Patient {
        id: server.create_patient(&token, &clinic, "Ask", "Er").await,
        clinic: clinic.clone(),
        token: token.clone(),
    };
    let secret = post_records(
        server,
        &victim,
        json!([{ "kind": "condition", "display": "Zanzibarine potassium syndrome", "status": "active" }]),
    )
    .await;
    let secret_record = secret[0]["id"].as_str().unwrap().to_owned();
    let (_, found) = search(
        server,
        &victim,
        json!({ "query": "zanzibarine potassium", "mode": "keyword" }),
    )
    .await;
    let secret_chunk = found["items"][0]["chunk_id"]
        .as_str()
        .expect("the victim's chunk")
        .to_owned();
    post_records(
        server,
        &asker,
        json!([{ "kind": "observation", "display": "Potassium", "effective": "2024-01-01",
                 "value": { "value": 4.1, "unit": "mmol/L" } }]),
    )
    .await;

    let (status, body) = server
        .send_bytes("/plugins", &server.admin, component("fabricator"))
        .await;
    assert_eq!(status, 201, "{body}");
    let plugin = body["id"].as_str().unwrap().to_owned();
    for (path, body) in [
        (format!("/clinics/{clinic}/plugins/{plugin}/enable"), None),
        (
            format!("/clinics/{clinic}/plugins/{plugin}/config"),
            Some(json!({ "settings": { "steal": format!("{secret_chunk},{secret_record}") } })),
        ),
    ] {
        let method = if body.is_some() {
            Method::PUT
        } else {
            Method::POST
        };
        let (status, reply) = server.call(method, &path, Some(&server.admin), body).await;
        assert_eq!(status, 200, "{reply}");
    }

    let (status, body) = search(
        server,
        &asker,
        json!({ "query": "zanzibarine potassium", "retriever": "hostile-fabricator" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retriever"], "hostile-fabricator");
    let items = body["items"].as_array().unwrap();
    assert!(
        !items.is_empty(),
        "the asker's own evidence comes back: {body}"
    );
    for item in items {
        assert_ne!(item["chunk_id"], secret_chunk.as_str(), "{body}");
        assert_ne!(item["record_id"], secret_record.as_str(), "{body}");
        assert!(
            !item["text"]
                .as_str()
                .unwrap_or_default()
                .contains("Zanzibarine"),
            "{body}"
        );
    }
    let (status, body) = ask(
        server,
        &asker,
        json!({ "question": "zanzibarine potassium", "retriever": "hostile-fabricator" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("Zanzibarine"), "{body}");
    let prompts = peer.requests.lock().unwrap().clone();
    assert_eq!(prompts.len(), 1, "the model saw the asker's evidence");
    assert!(
        !prompts[0].to_string().contains("Zanzibarine"),
        "the other patient's text never reaches the model: {}",
        prompts[0]
    );
}
