//! `medmemory-bench authz`: the figures behind `cargo xtask bench authz`.

use std::path::Path;
use std::time::Instant;

use medmemory::authz::{Decision, Permission};
use medmemory::db::subject::Subject;
use uuid::Uuid;

use crate::{Rng, median, percentile};

/// The cost of one casbin `enforce()` (through
/// [`medmemory::authz::Authz::check`]) with `assignments` role assignments spread
/// over 100 clinics, and the time to rebuild the enforcer from SQL (what
/// every policy change and every poll that sees one costs).
pub async fn run(scratch: &Path, assignments: usize) -> anyhow::Result<()> {
    use medmemory::db::rbac::Assignment;
    std::fs::create_dir_all(scratch)?;
    let url = format!("sqlite://{}", scratch.join("authz.db").display());
    let _ = std::fs::remove_file(scratch.join("authz.db"));
    let db = medmemory::db::Db::connect(&url).await?;
    db.migrate().await?;
    let mut clinics = Vec::new();
    for i in 0..100 {
        clinics.push(db.create_clinic(&format!("Bench clinic {i}")).await?.id);
    }
    let roles = ["clinician", "auditor", "clinic-admin"];
    let rows: Vec<Assignment> = (0..assignments)
        .map(|i| Assignment {
            subject: Subject::User(Uuid::from_u128(i as u128 + 1)).to_string(),
            role: roles[i % 3].to_owned(),
            domain: clinics[i % clinics.len()].to_string(),
        })
        .collect();
    for chunk in rows.chunks(1000) {
        db.add_assignments(chunk).await?;
    }
    let authz = medmemory::authz::Authz::load(db.clone()).await?;
    let mut reloads = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        authz.reload().await?;
        reloads.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let mut rng = Rng(0x5eed);
    let mut per_call = Vec::new();
    let mut allowed = 0usize;
    for _ in 0..200 {
        let started = Instant::now();
        for _ in 0..100 {
            let row = &rows[(rng.next() % rows.len() as u64) as usize];
            let clinic: Uuid = row.domain.parse()?;
            // Half the checks in the subject's own clinic, half in another.
            let domain = if rng.next().is_multiple_of(2) {
                medmemory::authz::Domain::Clinic(clinic)
            } else {
                medmemory::authz::Domain::Clinic(clinics[(rng.next() % 100) as usize])
            };
            if authz.check(&row.subject, domain, Permission::PATIENT_READ) == Decision::Allow {
                allowed += 1;
            }
        }
        per_call.push(started.elapsed().as_secs_f64() * 1e6 / 100.0);
    }
    println!(
        "authz: {assignments} assignments in 100 clinics: check() median {:.1} us, p99 {:.1} us \
         ({allowed} of 20000 allowed); enforcer rebuild from SQL median {:.0} ms",
        median(per_call.clone()),
        percentile(per_call, 0.99),
        median(reloads)
    );
    let _ = std::fs::remove_dir_all(scratch);
    Ok(())
}
