//! The relational store: the source of truth for everything MedMemory knows.
//!
//! One [`Db`] handle wraps either an SQLite pool (the embedded default) or a
//! PostgreSQL pool (for scale). Repositories write each query once, in the
//! `$N` placeholder syntax both drivers accept, and [`on_pool!`] runs it on
//! whichever pool is configured. Every repository method that reads patient
//! data takes the clinic id, so tenancy is enforced here and cannot be forgotten
//! by a caller.
//!
//! Owns: the schema (through `migrations/`), every SQL statement, and the
//! vocabulary stored in it ([`subject::Subject`], [`records::RecordKind`]).
//! Uses: nothing above it. Where SQLite and PostgreSQL differ is in [`dialect`].

pub mod alerts;
pub mod audit;
pub mod backup;
pub mod cds;
pub mod chunks;
pub mod clinics;
pub mod conversations;
pub mod dialect;
pub mod documents;
pub mod embeddings;
pub mod jobs;
pub mod patients;
pub mod plugins;
pub mod rbac;
pub mod records;
pub mod subject;
pub mod tokens;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use dialect::{Unique, WritePool, WriteTx, foreign_key_violation, unique_violation};

/// Runs `$body` with `$pool` bound to the concrete pool of `$db`.
///
/// The body is compiled once per backend, so every query in it is type-checked
/// against both drivers.
#[macro_export]
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// A handle on the configured relational database.
#[derive(Clone, Debug)]
pub enum Db {
    /// Embedded SQLite (WAL, foreign keys on).
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database URL is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL scheme (expected sqlite: or postgres:)")]
    UnsupportedUrl,
    /// SQLite refused to enforce foreign keys.
    #[error("SQLite foreign key enforcement is off")]
    ForeignKeysOff,
    /// A driver error.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Db {
    /// Connects to `url` (`sqlite://path` or `postgres://...`).
    ///
    /// SQLite files are created if missing and opened in WAL mode with foreign
    /// keys enforced on every connection; this is asserted, not assumed.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await?;
            let on: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&pool)
                .await?;
            if on != 1 {
                return Err(DbError::ForeignKeysOff);
            }
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Ok(Db::Postgres(pool))
        } else {
            Err(DbError::UnsupportedUrl)
        }
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Whether every known migration has been applied (for `/ready`).
    pub async fn migrations_current(&self) -> Result<bool, DbError> {
        let (applied, expected): (i64, usize) = match self {
            Db::Sqlite(pool) => (
                sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                    .fetch_one(pool)
                    .await?,
                SQLITE_MIGRATIONS.iter().count(),
            ),
            Db::Postgres(pool) => (
                sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                    .fetch_one(pool)
                    .await?,
                POSTGRES_MIGRATIONS.iter().count(),
            ),
        };
        Ok(applied as usize == expected)
    }

    /// A round trip to the database (for `/ready`).
    pub async fn ping(&self) -> Result<(), DbError> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Which backend this is, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }
}

/// The current time, truncated to microseconds so it round-trips through both
/// databases unchanged.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}

/// A new time-ordered id (UUID v7).
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// Escapes `\\`, `%` and `_` so user text matches literally in a LIKE pattern.
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
