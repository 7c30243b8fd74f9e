//! `migrations/sqlite` and `migrations/postgres` must define the same schema:
//! both folders are applied to real, empty databases and the results are
//! compared table by table (columns with compatible types and nullability,
//! primary keys, foreign keys with their `ON DELETE` rule, unique
//! constraints and indexes).

use std::collections::{BTreeMap, BTreeSet};

use medmemory::db::Db;
use medmemory_tests::{PgDatabase, postgres_url};
use sqlx::Row;

/// One column: its type family, whether it may be null, whether it is (part
/// of) the primary key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    family: &'static str,
    nullable: bool,
    primary: bool,
}

/// One foreign key: the columns, the referenced table and columns, the rule.
type ForeignKey = (Vec<String>, String, Vec<String>, String);

#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    columns: BTreeMap<String, Column>,
    foreign_keys: BTreeSet<ForeignKey>,
    /// Column lists with a unique constraint or unique index.
    unique: BTreeSet<Vec<String>>,
}

type Schema = BTreeMap<String, Table>;

/// The type family of an SQLite declared type.
fn sqlite_family(declared: &str) -> &'static str {
    match declared.to_ascii_uppercase().as_str() {
        "BLOB" => "uuid-or-bytes",
        "TEXT" => "text",
        "INTEGER" | "BIGINT" => "integer",
        "REAL" | "DOUBLE" => "real",
        "BOOLEAN" => "integer",
        other => panic!("unexpected SQLite type {other}"),
    }
}

/// The type family of a PostgreSQL type, as SQLite stores it: UUIDs are
/// 16-byte blobs, times and JSON are text, booleans are integers.
fn postgres_family(data_type: &str) -> &'static str {
    match data_type {
        "uuid" | "bytea" => "uuid-or-bytes",
        "text" | "character varying" | "date" | "timestamp with time zone" | "jsonb" | "json" => {
            "text"
        }
        "bigint" | "integer" | "smallint" | "boolean" => "integer",
        "double precision" | "real" => "real",
        other => panic!("unexpected PostgreSQL type {other}"),
    }
}

fn delete_rule(rule: &str) -> String {
    match rule.to_ascii_uppercase().as_str() {
        "A" | "NO ACTION" => "NO ACTION",
        "R" | "RESTRICT" => "RESTRICT",
        "C" | "CASCADE" => "CASCADE",
        "N" | "SET NULL" => "SET NULL",
        "D" | "SET DEFAULT" => "SET DEFAULT",
        other => panic!("unexpected ON DELETE rule {other}"),
    }
    .to_owned()
}

async fn sqlite_schema(pool: &sqlx::SqlitePool) -> Schema {
    let mut schema = Schema::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for name in tables {
        let mut table = Table::default();
        let q = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in q(format!("PRAGMA table_info('{name}')"))
            .fetch_all(pool)
            .await
            .unwrap()
        {
            let column: String = row.get("name");
            let declared: String = row.get("type");
            let notnull: i64 = row.get("notnull");
            let pk: i64 = row.get("pk");
            table.columns.insert(
                column,
                Column {
                    family: sqlite_family(&declared),
                    // A primary key is never null in PostgreSQL; say so here too.
                    nullable: notnull == 0 && pk == 0,
                    primary: pk > 0,
                },
            );
        }
        let mut keys: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for row in q(format!("PRAGMA foreign_key_list('{name}')"))
            .fetch_all(pool)
            .await
            .unwrap()
        {
            let id: i64 = row.get("id");
            let key = keys.entry(id).or_insert_with(|| {
                (
                    Vec::new(),
                    row.get("table"),
                    Vec::new(),
                    delete_rule(&row.get::<String, _>("on_delete")),
                )
            });
            key.0.push(row.get("from"));
            key.2.push(row.get("to"));
        }
        table.foreign_keys = keys.into_values().collect();
        for index in q(format!("PRAGMA index_list('{name}')"))
            .fetch_all(pool)
            .await
            .unwrap()
        {
            let unique: i64 = index.get("unique");
            let origin: String = index.get("origin");
            if unique == 0 || origin == "pk" {
                continue;
            }
            let index_name: String = index.get("name");
            let columns: Vec<String> = q(format!("PRAGMA index_info('{index_name}')"))
                .fetch_all(pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get("name"))
                .collect();
            table.unique.insert(columns);
        }
        schema.insert(name, table);
    }
    schema
}

async fn postgres_schema(pool: &sqlx::PgPool) -> Schema {
    let mut schema = Schema::new();
    let primary: BTreeSet<(String, String)> = sqlx::query(
        "SELECT tc.table_name, kcu.column_name
         FROM information_schema.table_constraints tc
         JOIN information_schema.key_column_usage kcu
           ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema
         WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = 'public'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("table_name"), r.get("column_name")))
    .collect();
    for row in sqlx::query(
        "SELECT table_name, column_name, data_type, is_nullable
         FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        let table: String = row.get("table_name");
        let column: String = row.get("column_name");
        let data_type: String = row.get("data_type");
        let nullable: String = row.get("is_nullable");
        let is_primary = primary.contains(&(table.clone(), column.clone()));
        schema.entry(table).or_default().columns.insert(
            column,
            Column {
                family: postgres_family(&data_type),
                nullable: nullable == "YES",
                primary: is_primary,
            },
        );
    }
    // Foreign keys and unique constraints with their columns in order.
    for row in sqlx::query(
        "SELECT c.contype::text AS kind, src.relname AS source,
                dst.relname AS target, c.confdeltype::text AS rule,
                ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
                      ORDER BY k.i) AS columns,
                ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n
                      ORDER BY k.i) AS referenced
         FROM pg_constraint c
         JOIN pg_class src ON src.oid = c.conrelid
         JOIN pg_namespace ns ON ns.oid = src.relnamespace
         LEFT JOIN pg_class dst ON dst.oid = c.confrelid
         WHERE ns.nspname = 'public' AND c.contype IN ('f', 'u')",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        let kind: String = row.get("kind");
        let source: String = row.get("source");
        let columns: Vec<String> = row.get("columns");
        let table = schema.entry(source).or_default();
        if kind == "f" {
            table.foreign_keys.insert((
                columns,
                row.get("target"),
                row.get("referenced"),
                delete_rule(&row.get::<String, _>("rule")),
            ));
        } else {
            table.unique.insert(columns);
        }
    }
    // Unique indexes created with CREATE UNIQUE INDEX (not constraints).
    for row in sqlx::query(
        "SELECT t.relname AS table_name,
                ARRAY(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY k(n, i)
                      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n
                      ORDER BY k.i) AS columns
         FROM pg_index ix
         JOIN pg_class t ON t.oid = ix.indrelid
         JOIN pg_class i ON i.oid = ix.indexrelid
         JOIN pg_namespace ns ON ns.oid = t.relnamespace
         WHERE ns.nspname = 'public' AND ix.indisunique AND NOT ix.indisprimary
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid)",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        let table: String = row.get("table_name");
        let columns: Vec<String> = row.get("columns");
        schema.entry(table).or_default().unique.insert(columns);
    }
    schema
}

/// Lists every difference, table by table, so one failure says everything.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = sqlite.keys().chain(postgres.keys()).collect();
    for name in names {
        match (sqlite.get(name), postgres.get(name)) {
            (Some(s), Some(p)) => {
                if s.columns != p.columns {
                    out.push(format!(
                        "{name}: columns differ\n  sqlite   {:?}\n  postgres {:?}",
                        s.columns, p.columns
                    ));
                }
                if s.foreign_keys != p.foreign_keys {
                    out.push(format!(
                        "{name}: foreign keys differ\n  sqlite   {:?}\n  postgres {:?}",
                        s.foreign_keys, p.foreign_keys
                    ));
                }
                if s.unique != p.unique {
                    out.push(format!(
                        "{name}: unique keys differ\n  sqlite   {:?}\n  postgres {:?}",
                        s.unique, p.unique
                    ));
                }
            }
            (Some(_), None) => out.push(format!("{name}: only in SQLite")),
            (None, Some(_)) => out.push(format!("{name}: only in PostgreSQL")),
            (None, None) => {}
        }
    }
    out
}

#[tokio::test]
async fn both_migration_folders_give_the_same_schema() {
    let Some(admin_url) = postgres_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = Db::connect(&format!("sqlite://{}", dir.path().join("s.db").display()))
        .await
        .unwrap();
    lite.migrate().await.unwrap();
    let pg = PgDatabase::create(&admin_url).await;
    let postgres = Db::connect(&pg.url).await.unwrap();
    postgres.migrate().await.unwrap();
    let (Db::Sqlite(lite_pool), Db::Postgres(pg_pool)) = (&lite, &postgres) else {
        panic!("expected one database of each kind");
    };
    let sqlite = sqlite_schema(lite_pool).await;
    let postgres_side = postgres_schema(pg_pool).await;
    assert!(sqlite.len() >= 10, "tables: {:?}", sqlite.keys());
    assert!(
        sqlite
            .values()
            .flat_map(|t| &t.foreign_keys)
            .all(|(_, _, _, rule)| rule != "NO ACTION"),
        "every foreign key names its ON DELETE rule"
    );
    let found = differences(&sqlite, &postgres_side);
    drop(postgres);
    pg.drop_db().await;
    assert!(
        found.is_empty(),
        "the migrations disagree:\n{}",
        found.join("\n")
    );
}
