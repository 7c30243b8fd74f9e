//! Several instances, as a clinic network runs MedMemory: three `medmemory
//! serve` processes on one PostgreSQL database, one shared vector store and
//! one S3-compatible bucket. Uploads are spread over them, one is SIGKILLed in
//! the middle of ingestion and another started: every document ends settled,
//! every succeeded one is findable from every instance, SQL and the vector
//! index hold the same chunks (no job's second finisher deleted another's
//! vectors), a plugin change made on one instance holds on the others, and
//! the audit chain verifies.

use std::time::{Duration, Instant};

use reqwest::Method;
use uuid::Uuid;

use medmemory::db::Db;
use medmemory_tests::s3::S3;
use medmemory_tests::{Options, PgDatabase, TestServer, postgres_url};

use crate::crash::{assert_index_matches_sql, settled_jobs};

const WORDS: [&str; 18] = [
    "amberline",
    "bristlecone",
    "cobaltine",
    "driftwood",
    "emberlight",
    "foxglove",
    "gossamer",
    "hollyhock",
    "ironbark",
    "juniper",
    "kestrel",
    "lodestone",
    "marigold",
    "nightjar",
    "oriole",
    "periwinkle",
    "quillwort",
    "rosebay",
];

fn note(word: &str) -> Vec<u8> {
    format!(
        "Clinic letter.\n\nHistory:\nReviewed in clinic; the patient mentions {word} \
         when asked about her garden.\n\nPlan:\nRecheck blood pressure in four weeks."
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_database_store_and_bucket() {
    let Some(admin_url) = postgres_url() else {
        return;
    };
    let pg = PgDatabase::create(&admin_url).await;
    let s3 = S3::start("instances").await;
    let vectors = tempfile::tempdir().unwrap();
    let mut env = s3.server_env("blobs");
    env.push((
        "MEDMEMORY_VECTOR_URI".into(),
        vectors.path().display().to_string(),
    ));
    // Several writers: the sweep must leave young orphans alone.
    env.push(("MEDMEMORY_SWEEP_GRACE_SECS".into(), "600".into()));
    let first = TestServer::start_with(Options {
        database_url: Some(pg.url.clone()),
        env,
    })
    .await;
    let mut second = first.second_instance().await;
    let third = first.second_instance().await;

    let clinic = first.create_clinic("Network").await;
    let token = first.clinic_token(&clinic, "clinic-admin").await;
    let patient = first.create_patient(&token, &clinic, "Rhea", "Lund").await;

    // The new clinic's roles reach the other instances within seconds.
    let synced = Instant::now();
    for server in [&second, &third] {
        loop {
            let (status, _) = server
                .call(
                    Method::GET,
                    &format!("/clinics/{clinic}/patients/{patient}"),
                    Some(&token),
                    None,
                )
                .await;
            if status == 200 {
                break;
            }
            assert!(synced.elapsed() < Duration::from_secs(10), "{status}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Uploads spread over the three; the second dies half-way through.
    let mut jobs = Vec::new();
    for (i, word) in WORDS.iter().enumerate() {
        if i == WORDS.len() / 2 {
            second.stop();
        }
        let server = match i % 3 {
            0 => &first,
            1 if i < WORDS.len() / 2 => &second,
            _ => &third,
        };
        let (status, body) = server
            .upload(&token, &clinic, &patient, "text/plain", note(word))
            .await;
        assert_eq!(status, 202, "{body}");
        jobs.push(body["job"]["id"].as_str().unwrap().to_owned());
    }
    let fourth = first.second_instance().await;

    // Every job settles; the killed instance's jobs come back when their
    // leases expire.
    let clinic_id: Uuid = clinic.parse().unwrap();
    let db = Db::connect(&pg.url).await.unwrap();
    let settled = settled_jobs(&db, clinic_id, Duration::from_secs(300)).await;
    assert_eq!(settled.len(), WORDS.len(), "one job per document");
    for job in &settled {
        assert_eq!(job.status, "succeeded", "{job:?}");
    }

    // SQL and the shared vector index hold the same chunks, each once.
    assert_index_matches_sql(&db, &vectors.path().display().to_string(), clinic_id).await;

    // Every document is found from every live instance.
    for server in [&first, &third, &fourth] {
        for word in WORDS {
            let (status, body) = server
                .call(
                    Method::POST,
                    &format!("/clinics/{clinic}/patients/{patient}/search"),
                    Some(&token),
                    Some(serde_json::json!({ "query": word, "mode": "keyword", "limit": 3 })),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            let top = body["items"][0]["text"].as_str().unwrap_or_default();
            assert!(top.contains(word), "{word} not found first: {body}");
        }
    }

    // A plugin change on one instance holds on the others within seconds.
    let text = first.plugin_id("text").await;
    let (status, body) = first
        .call(
            Method::POST,
            &format!("/clinics/{clinic}/plugins/{text}/disable"),
            Some(&first.admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let changed = Instant::now();
    loop {
        let (status, _) = fourth
            .upload(&token, &clinic, &patient, "text/plain", note("afterwards"))
            .await;
        if status == 415 {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(10),
            "another instance still parses text with the plugin disabled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The audit chain, written by four processes, verifies.
    let (status, body) = third
        .call(Method::GET, "/audit/verify", Some(&first.admin), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");

    drop((first, second, third, fourth));
    pg.drop_db().await;
}
