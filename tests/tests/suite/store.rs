//! The relational store against SQLite and, when configured, PostgreSQL:
//! foreign keys, tenancy of reads, the job queue, atomic completion.

use std::collections::HashSet;

use chrono::NaiveDate;
use medmemory::db::Db;
use medmemory::db::chunks::Chunk;
use medmemory::db::documents::NewDocument;
use medmemory::db::patients::{PatientFields, PatientFilter};
use medmemory_tests::{PgDatabase, postgres_url, repo_root};

fn fields(given: &str, mrn: Option<&str>) -> PatientFields {
    PatientFields {
        given_name: given.into(),
        family_name: "Doe".into(),
        birth_date: NaiveDate::from_ymd_opt(1970, 5, 6).unwrap(),
        sex: "other".into(),
        mrn: mrn.map(str::to_owned),
    }
}

fn document(sha: &str) -> NewDocument {
    NewDocument {
        media_type: "text/plain".into(),
        declared_media_type: Some("text/plain".into()),
        size_bytes: 10,
        sha256: sha.into(),
    }
}

/// Every check, on one freshly migrated database.
async fn exercise(db: &Db) {
    db.migrate().await.expect("migrate");
    db.migrate().await.expect("migrations are idempotent");
    assert!(db.migrations_current().await.unwrap());

    let a = db.create_clinic("A").await.unwrap();
    let b = db.create_clinic("B").await.unwrap();
    assert!(
        db.create_clinic("A").await.is_err(),
        "clinic names are unique"
    );

    let pa = db
        .create_patient(a.id, &fields("Ann", Some("MRN-1")))
        .await
        .unwrap();
    let pb = db
        .create_patient(b.id, &fields("Bob", Some("MRN-1")))
        .await
        .unwrap();
    assert!(
        db.create_patient(a.id, &fields("Dup", Some("MRN-1")))
            .await
            .is_err(),
        "MRN unique per clinic"
    );

    // Reads are scoped by clinic.
    assert_eq!(db.patient(a.id, pa.id).await.unwrap().as_ref(), Some(&pa));
    assert_eq!(db.patient(b.id, pa.id).await.unwrap(), None);
    let found = db
        .patients(
            a.id,
            &PatientFilter {
                q: Some("doe".into()),
                birth_date: None,
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), vec![pa.id]);
    let underscore = db
        .patients(
            a.id,
            &PatientFilter {
                q: Some("_".into()),
                birth_date: None,
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert!(underscore.is_empty(), "LIKE wildcards in q are literal");

    // Foreign keys are enforced: no document for a patient of another clinic,
    // nor for a clinic that does not exist.
    assert!(
        db.create_document(a.id, pb.id, &document("x"))
            .await
            .is_err()
    );
    assert!(
        db.create_document(uuid::Uuid::now_v7(), pa.id, &document("x"))
            .await
            .is_err()
    );

    let (doc, job) = db
        .create_document(a.id, pa.id, &document("abc"))
        .await
        .unwrap();
    assert_eq!(job.status, "queued");
    assert_eq!(
        db.job(b.id, job.id).await.unwrap(),
        None,
        "jobs are scoped by clinic"
    );

    // Two concurrent claims never take the same job.
    let (_, job2) = db
        .create_document(a.id, pa.id, &document("def"))
        .await
        .unwrap();
    let (c1, c2) = tokio::join!(db.claim_job(), db.claim_job());
    let claimed: HashSet<_> = [c1.unwrap(), c2.unwrap()]
        .into_iter()
        .flatten()
        .map(|j| j.id)
        .collect();
    assert_eq!(claimed, HashSet::from([job.id, job2.id]));
    assert!(db.claim_job().await.unwrap().is_none());

    // Completion writes chunks and status together; a rerun replaces chunks.
    let chunk = |ordinal: i64, text: &str| Chunk {
        id: uuid::Uuid::now_v7(),
        clinic_id: a.id,
        patient_id: pa.id,
        document_id: doc.id,
        ordinal,
        section: None,
        text: text.into(),
        span_start: 0,
        span_end: 4,
        created_at: medmemory::db::now(),
    };
    let running = db.job(a.id, job.id).await.unwrap().unwrap();
    db.complete_job(&running, &[chunk(0, "one"), chunk(1, "two")])
        .await
        .unwrap();
    let third = chunk(0, "three");
    db.complete_job(&running, std::slice::from_ref(&third))
        .await
        .unwrap();
    let done = db.job(a.id, job.id).await.unwrap().unwrap();
    assert_eq!((done.status.as_str(), done.progress), ("succeeded", 1.0));
    let chunks = db.patient_chunks(a.id, pa.id, &[third.id]).await.unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        db.patient_chunks(b.id, pa.id, &[third.id]).await.unwrap(),
        vec![]
    );

    // A crash leaves jobs running; start-up puts them back in the queue.
    assert_eq!(db.requeue_running_jobs().await.unwrap(), 1);
    assert_eq!(db.claim_job().await.unwrap().map(|j| j.id), Some(job2.id));

    // Soft delete hides the patient.
    assert!(db.soft_delete_patient(a.id, pa.id).await.unwrap());
    assert_eq!(db.patient(a.id, pa.id).await.unwrap(), None);
}

#[tokio::test]
async fn store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = Db::connect(&url).await.expect("connect");
    exercise(&db).await;
}

#[tokio::test]
async fn store_on_postgres() {
    let Some(admin_url) = postgres_url() else {
        return;
    };
    let pg = PgDatabase::create(&admin_url).await;
    let db = Db::connect(&pg.url).await.expect("connect");
    exercise(&db).await;
    drop(db);
    pg.drop_db().await;
}

#[test]
fn every_foreign_key_says_what_happens_on_delete() {
    for dialect in ["sqlite", "postgres"] {
        let dir = repo_root().join("migrations").join(dialect);
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let sql = std::fs::read_to_string(&path).unwrap();
            // Our migrations keep each foreign key on one line.
            for line in sql.lines().filter(|l| l.contains("REFERENCES")) {
                assert!(line.contains("ON DELETE"), "{}: {line}", path.display());
                seen += 1;
            }
        }
        assert!(
            seen >= 12,
            "{dialect}: expected the schema's foreign keys, saw {seen}"
        );
    }
}
