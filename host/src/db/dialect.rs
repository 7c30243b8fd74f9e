//! Where SQLite and PostgreSQL differ, in one place. Every other statement is
//! written once in the common subset (`$n` placeholders, `RETURNING`, ANSI
//! types) and compiled for both drivers through [`on_pool!`](crate::on_pool).
//!
//! - starting a write transaction ([`WritePool`]);
//! - serialising audit appends, clinic policy changes and job claims inside
//!   one ([`WriteTx`]);
//! - telling which unique constraint a write violated ([`unique_violation`]).

use std::future::Future;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{Postgres, Sqlite, Transaction};
use uuid::Uuid;

/// The PostgreSQL advisory lock key that serialises audit appends.
pub const PG_AUDIT_LOCK: i64 = 0x006d_6d61_7564_6974;
/// The PostgreSQL advisory lock key that serialises job claims.
pub const PG_CLAIM_LOCK: i64 = 0x006d_6d63_6c61_696d;

/// A pool, and the statements whose form depends on its backend.
pub trait WritePool {
    /// The driver.
    type Database: sqlx::Database;

    /// Begins a write transaction. SQLite takes the write lock up front
    /// (`BEGIN IMMEDIATE`) so two writers never deadlock upgrading read
    /// locks; PostgreSQL uses a plain `BEGIN`.
    fn begin_write(
        &self,
    ) -> impl Future<Output = sqlx::Result<Transaction<'static, Self::Database>>> + Send;
}

/// What an open write transaction does differently per backend.
pub trait WriteTx {
    /// Serialises audit appends until the transaction ends: a
    /// transaction-scoped advisory lock on PostgreSQL; nothing on SQLite, whose
    /// `BEGIN IMMEDIATE` already holds the write lock.
    fn serialize_audit(&mut self) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Serialises policy changes of one clinic until the transaction ends:
    /// the clinic's row lock on PostgreSQL; nothing on SQLite (as above).
    fn lock_clinic(&mut self, clinic: Uuid) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Serialises job claims until the transaction ends, so that a claim's
    /// per-clinic count sees every other claim: a transaction-scoped advisory
    /// lock on PostgreSQL; nothing on SQLite (as above).
    fn serialize_claims(&mut self) -> impl Future<Output = sqlx::Result<()>> + Send;
}

impl WritePool for SqlitePool {
    type Database = Sqlite;

    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Sqlite>> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl WritePool for PgPool {
    type Database = Postgres;

    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Postgres>> {
        self.begin().await
    }
}

impl WriteTx for Transaction<'_, Sqlite> {
    async fn serialize_audit(&mut self) -> sqlx::Result<()> {
        Ok(())
    }

    async fn lock_clinic(&mut self, _clinic: Uuid) -> sqlx::Result<()> {
        Ok(())
    }

    async fn serialize_claims(&mut self) -> sqlx::Result<()> {
        Ok(())
    }
}

impl WriteTx for Transaction<'_, Postgres> {
    async fn serialize_audit(&mut self) -> sqlx::Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PG_AUDIT_LOCK)
            .execute(&mut **self)
            .await?;
        Ok(())
    }

    async fn lock_clinic(&mut self, clinic: Uuid) -> sqlx::Result<()> {
        sqlx::query("SELECT id FROM clinics WHERE id = $1 FOR UPDATE")
            .bind(clinic)
            .execute(&mut **self)
            .await?;
        Ok(())
    }

    async fn serialize_claims(&mut self) -> sqlx::Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PG_CLAIM_LOCK)
            .execute(&mut **self)
            .await?;
        Ok(())
    }
}

/// The unique constraints a caller turns into a specific answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unique {
    /// Clinic names are unique.
    ClinicName,
    /// MRNs are unique within a clinic.
    PatientMrn,
    /// A patient's documents are unique by content hash.
    DocumentHash,
    /// An OIDC identity maps to one user.
    UserIdentity,
    /// Token secrets are unique.
    TokenSecret,
    /// A CDS client's issuer is registered once per clinic.
    CdsIssuer,
}

impl Unique {
    /// PostgreSQL's name for the constraint (as in the migrations), and
    /// SQLite's column list for it (SQLite reports unique violations by
    /// columns, not by name).
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Unique::ClinicName => ("clinics_name_unique", "clinics.name"),
            Unique::PatientMrn => ("patients_mrn_unique", "patients.clinic_id, patients.mrn"),
            Unique::DocumentHash => (
                "documents_patient_sha256",
                "documents.clinic_id, documents.patient_id, documents.sha256",
            ),
            Unique::UserIdentity => ("users_issuer_subject_unique", "users.issuer, users.subject"),
            Unique::TokenSecret => ("api_tokens_secret_hash_unique", "api_tokens.secret_hash"),
            Unique::CdsIssuer => (
                "cds_clients_issuer_unique",
                "cds_clients.clinic_id, cds_clients.issuer",
            ),
        }
    }

    const ALL: [Unique; 6] = [
        Unique::ClinicName,
        Unique::PatientMrn,
        Unique::DocumentHash,
        Unique::UserIdentity,
        Unique::TokenSecret,
        Unique::CdsIssuer,
    ];
}

/// Whether `err` is a foreign-key violation: a row it names is gone, e.g. a
/// patient erased while a request about them was being served.
pub fn foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// Which known unique constraint `err` violated, if it is such a violation.
pub fn unique_violation(err: &sqlx::Error) -> Option<Unique> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    if !db.is_unique_violation() {
        return None;
    }
    let message = db.message();
    Unique::ALL.into_iter().find(|u| {
        let (pg, sqlite) = u.names();
        db.constraint() == Some(pg)
            || message
                .strip_prefix("UNIQUE constraint failed: ")
                .is_some_and(|columns| columns == sqlite)
    })
}
