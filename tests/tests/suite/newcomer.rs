//! The newcomer's path from the README: clinic, patient, upload, job, search,
//! with a question that shares no keyword with the paragraph it must find.

use medmemory_tests::{Options, PgDatabase, TestServer, postgres_url};

/// A visit note: four paragraphs on unrelated topics.
pub const NOTE: &str = "\
# Visit note

Cardiology:
Blood pressure 150/95 on two readings. Started lisinopril 10 mg daily and asked
her to log home readings for two weeks.

Allergies:
Developed hives and lip swelling after amoxicillin in 2019; avoid penicillins.

Social history:
Retired schoolteacher, lives with her husband, walks the dog every morning,
drinks one glass of wine on weekends, never smoked.

Endocrine:
Hemoglobin A1c 8.1 percent, up from 7.2 in March. Metformin increased to 1000 mg
twice daily; dietitian referral placed.
";

/// Each question shares no keyword with the paragraph that answers it.
pub const QUESTIONS: [(&str, &str); 3] = [
    ("Which antibiotic caused a reaction?", "amoxicillin"),
    ("How is her diabetes control trending?", "A1c"),
    ("Does she use tobacco or alcohol?", "schoolteacher"),
];

async fn newcomer_path(server: &TestServer) {
    let clinic = server.create_clinic("Riverside Family Practice").await;
    let patient = server
        .create_patient(&server.admin, &clinic, "Maria", "Lopez")
        .await;
    server
        .ingest_text(&server.admin, &clinic, &patient, NOTE)
        .await;
    for (question, expected) in QUESTIONS {
        let hits = server
            .search(&server.admin, &clinic, &patient, question)
            .await;
        let top = hits
            .first()
            .unwrap_or_else(|| panic!("no hit for {question:?}"));
        let text = top["text"].as_str().unwrap();
        assert!(
            text.contains(expected),
            "{question:?}: top hit should contain {expected:?}, got {text:?} (all: {hits:#?})"
        );
        assert!(top["document_id"].is_string() && top["chunk_id"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newcomer_path_on_sqlite() {
    let server = TestServer::start().await;
    newcomer_path(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newcomer_path_on_postgres() {
    let Some(admin_url) = postgres_url() else {
        return;
    };
    let db = PgDatabase::create(&admin_url).await;
    let server = TestServer::start_with(Options {
        database_url: Some(db.url.clone()),
        ..Options::default()
    })
    .await;
    newcomer_path(&server).await;
    drop(server);
    db.drop_db().await;
}
