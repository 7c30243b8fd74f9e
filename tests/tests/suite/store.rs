//! The relational store against SQLite and, when configured, PostgreSQL:
//! foreign keys, tenancy of reads, the job queue, atomic completion.

use std::collections::HashSet;

use chrono::NaiveDate;
use medmemory::db::audit::AuditEvent;
use medmemory::db::chunks::Chunk;
use medmemory::db::conversations::NewMessage;
use medmemory::db::documents::NewDocument;
use medmemory::db::jobs::Claim;
use medmemory::db::patients::{PatientFields, PatientFilter};
use medmemory::db::records::{
    Coding, NewRecord, Provenance, RecordFields, RecordFilter, RecordKind, Value,
};
use medmemory::db::{Db, Unique, foreign_key_violation, unique_violation};
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

/// A worker's claim with a lease of `lease_secs` (negative: already expired).
fn worker(owner: &str, lease_secs: i64) -> Claim {
    Claim {
        owner: owner.into(),
        lease: chrono::TimeDelta::seconds(lease_secs),
        per_clinic: 10,
        max_starts: 3,
    }
}

/// Every check, on one freshly migrated database.
async fn exercise(db: &Db) {
    let w1 = worker("w1", 60);
    db.migrate().await.expect("migrate");
    db.migrate().await.expect("migrations are idempotent");
    assert!(db.migrations_current().await.unwrap());

    let a = db.create_clinic("A").await.unwrap();
    let b = db.create_clinic("B").await.unwrap();
    let taken = db
        .create_clinic("A")
        .await
        .expect_err("clinic names are unique");
    assert_eq!(
        unique_violation(&taken),
        Some(Unique::ClinicName),
        "{taken}"
    );

    let pa = db
        .create_patient(a.id, &fields("Ann", Some("MRN-1")))
        .await
        .unwrap();
    let pb = db
        .create_patient(b.id, &fields("Bob", Some("MRN-1")))
        .await
        .unwrap();
    let taken = db
        .create_patient(a.id, &fields("Dup", Some("MRN-1")))
        .await
        .expect_err("MRN unique per clinic");
    assert_eq!(
        unique_violation(&taken),
        Some(Unique::PatientMrn),
        "{taken}"
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
    for (clinic, patient) in [(a.id, pb.id), (uuid::Uuid::now_v7(), pa.id)] {
        let refused = db
            .create_document(clinic, patient, &document("x"))
            .await
            .expect_err("a document needs its patient in its clinic");
        assert!(
            matches!(&refused, sqlx::Error::Database(e) if e.is_foreign_key_violation()),
            "not a foreign key violation: {refused}"
        );
    }

    let created = db
        .create_document(a.id, pa.id, &document("abc"))
        .await
        .unwrap();
    let (doc, job) = (created.document, created.job);
    assert_eq!(job.status, "queued");
    assert!(!created.duplicate);
    // The same bytes for the same patient are the same document.
    let again = db
        .create_document(a.id, pa.id, &document("abc"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!((again.document.id, again.job.id), (doc.id, job.id));
    assert_eq!(
        db.job(b.id, job.id).await.unwrap(),
        None,
        "jobs are scoped by clinic"
    );

    // Two concurrent claims never take the same job.
    let job2 = db
        .create_document(a.id, pa.id, &document("def"))
        .await
        .unwrap()
        .job;
    let w2 = worker("w2", 60);
    let (c1, c2) = tokio::join!(db.claim_job(&w1), db.claim_job(&w2));
    let claimed: HashSet<_> = [c1.unwrap(), c2.unwrap()]
        .into_iter()
        .flatten()
        .map(|j| j.id)
        .collect();
    assert_eq!(claimed, HashSet::from([job.id, job2.id]));
    assert!(db.claim_job(&w1).await.unwrap().is_none());

    // Completion writes records, chunks and status together, once.
    let record = NewRecord {
        id: uuid::Uuid::now_v7(),
        fields: RecordFields {
            kind: RecordKind::Observation,
            codes: vec![Coding {
                system: "http://loinc.org".into(),
                code: "4548-4".into(),
                display: None,
            }],
            display: "Hemoglobin A1c".into(),
            status: Some("final".into()),
            value: Some(Value {
                value: Some(7.2),
                text: None,
                unit: Some("%".into()),
            }),
            reference_range: None,
            interpretation: None,
            effective: Some("2024-03-05".into()),
            effective_end: None,
            details: Vec::new(),
        },
        provenance: Provenance {
            document_id: Some(doc.id),
            ..Provenance::default()
        },
    };
    let chunk = |ordinal: i64, text: &str| Chunk {
        id: uuid::Uuid::now_v7(),
        clinic_id: a.id,
        patient_id: pa.id,
        document_id: Some(doc.id),
        record_id: None,
        ordinal,
        section: None,
        kind: "note".into(),
        effective_at: None,
        text: text.into(),
        span_start: 0,
        span_end: 4,
        page: None,
        created_at: medmemory::db::now(),
    };
    let mut stating = chunk(1, "Hemoglobin A1c: 7.2 %");
    stating.record_id = Some(record.id);
    stating.kind = "observation".into();
    let running = db.job(a.id, job.id).await.unwrap().unwrap();
    let first = chunk(0, "one");
    assert!(
        db.complete_job(
            &running,
            pa.id,
            std::slice::from_ref(&record),
            &[first.clone(), stating]
        )
        .await
        .unwrap()
    );
    assert!(
        !db.complete_job(&running, pa.id, &[], &[chunk(0, "three")])
            .await
            .unwrap(),
        "a settled job is not completed twice"
    );
    let done = db.job(a.id, job.id).await.unwrap().unwrap();
    assert_eq!((done.status.as_str(), done.progress), ("succeeded", 1.0));
    assert_eq!(
        db.patient_chunks(a.id, pa.id, &[first.id])
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        db.patient_chunks(b.id, pa.id, &[first.id]).await.unwrap(),
        vec![]
    );
    let filter = |code: &str| RecordFilter {
        code: Some(code.into()),
        ..RecordFilter::default()
    };
    let found = db
        .records(a.id, pa.id, &filter("4548-4"), None, 10)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].fields, record.fields);
    assert_eq!(
        found[0].effective_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2024-03-05T00:00:00+00:00")
    );
    assert!(
        db.records(a.id, pa.id, &filter("4548"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        db.records(b.id, pa.id, &filter("4548-4"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A worker that stops renewing loses the job to the next claim; it can
    // then neither renew, finish, retry nor fail it.
    let job4 = db
        .create_document(a.id, pa.id, &document("jkl"))
        .await
        .unwrap()
        .job;
    let crashed = db.claim_job(&worker("crashed", -1)).await.unwrap().unwrap();
    assert_eq!(
        (crashed.id, crashed.lease_owner.as_deref()),
        (job4.id, Some("crashed"))
    );
    let taken = db.claim_job(&w1).await.unwrap().unwrap();
    assert_eq!((taken.id, taken.attempts), (job4.id, 2));
    let later = medmemory::db::now() + chrono::TimeDelta::hours(1);
    assert!(!db.renew_lease(&crashed, later).await.unwrap());
    assert!(!db.complete_job(&crashed, pa.id, &[], &[]).await.unwrap());
    assert!(!db.retry_job(&crashed, "x", "y", later).await.unwrap());
    assert!(!db.fail_job(&crashed, "x", "y").await.unwrap());
    assert!(db.renew_lease(&taken, later).await.unwrap());
    let held = db.job(a.id, job4.id).await.unwrap().unwrap();
    assert_eq!(
        (held.status.as_str(), held.lease_owner.as_deref()),
        ("running", Some("w1"))
    );
    assert!(db.fail_job(&taken, "no_parser", "none").await.unwrap());

    // A live lease is not taken: job2 is still w1's or w2's.
    assert!(db.claim_job(&worker("w3", 60)).await.unwrap().is_none());
    let job2_now = db.job(a.id, job2.id).await.unwrap().unwrap();
    assert_eq!(job2_now.status, "running");
    // A transient failure waits for its back-off before it is claimed again.
    assert!(
        db.retry_job(&job2_now, "vector_store_failed", "store down", later)
            .await
            .unwrap()
    );
    assert!(db.claim_job(&w1).await.unwrap().is_none());
    let job3 = db
        .create_document(a.id, pa.id, &document("ghi"))
        .await
        .unwrap()
        .job;
    let claimed3 = db.claim_job(&worker("w1", -1)).await.unwrap().unwrap();
    assert_eq!(claimed3.id, job3.id);
    let past = medmemory::db::now() - chrono::TimeDelta::seconds(1);
    assert!(
        db.retry_job(&claimed3, "model_failed", "busy", past)
            .await
            .unwrap()
    );
    let retried = db.claim_job(&worker("w1", -1)).await.unwrap().unwrap();
    assert_eq!((retried.id, retried.attempts), (job3.id, 2));
    // Its lease expired at every start: after `max_starts` it fails as
    // interrupted instead of running again.
    let third = db.claim_job(&worker("w1", -1)).await.unwrap().unwrap();
    assert_eq!((third.id, third.attempts), (job3.id, 3));
    assert!(db.claim_job(&w1).await.unwrap().is_none());
    let given_up = db.job(a.id, job3.id).await.unwrap().unwrap();
    assert_eq!(
        (given_up.status.as_str(), given_up.error_code.as_deref()),
        ("failed", Some("interrupted"))
    );

    // At most `per_clinic` jobs of one clinic run at once.
    let one_at_a_time = Claim {
        per_clinic: 1,
        ..worker("w4", 60)
    };
    let first = db
        .create_document(b.id, pb.id, &document("mno"))
        .await
        .unwrap()
        .job;
    let second = db
        .create_document(b.id, pb.id, &document("pqr"))
        .await
        .unwrap()
        .job;
    let running_b = db.claim_job(&one_at_a_time).await.unwrap().unwrap();
    assert_eq!(running_b.id, first.id);
    assert!(
        db.claim_job(&one_at_a_time).await.unwrap().is_none(),
        "a second job of the same clinic waits"
    );
    assert!(db.complete_job(&running_b, pb.id, &[], &[]).await.unwrap());
    assert_eq!(
        db.claim_job(&one_at_a_time).await.unwrap().map(|j| j.id),
        Some(second.id)
    );

    // Soft delete hides the patient.
    assert!(db.soft_delete_patient(a.id, pa.id).await.unwrap());
    assert_eq!(db.patient(a.id, pa.id).await.unwrap(), None);

    // An answer stored for a patient erased while it was being written is a
    // foreign-key violation, which `/ask` answers with 404, not a 500.
    let gone = db
        .create_patient(a.id, &fields("Gone", None))
        .await
        .unwrap();
    db.erase_patient(a.id, gone.id, "test", None).await.unwrap();
    let message = NewMessage {
        id: medmemory::db::new_id(),
        conversation_id: medmemory::db::new_id(),
        asked_by: "test".into(),
        question: "q".into(),
        answer: "a".into(),
        refused: false,
        outcome: "extractive".into(),
        citations: "[]".into(),
        model: String::new(),
        retriever: "hybrid".into(),
        prompt_tokens: 0,
        completion_tokens: 0,
    };
    let audit = AuditEvent::now("test", "memory", "ask", "succeeded");
    let err = db
        .save_message(a.id, gone.id, &message, &audit)
        .await
        .unwrap_err();
    assert!(foreign_key_violation(&err), "{err}");
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
