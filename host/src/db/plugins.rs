//! The plugin registry's rows: installed components, each clinic's choices
//! (enabled, settings, limits) and the append-only audit of plugin calls.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Db, WritePool, now};
use crate::on_pool;

/// An installed plugin as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PluginRow {
    /// SHA-256 of the component, hex.
    pub id: String,
    /// Name from `describe()`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// parser, clinical-rule or retriever.
    pub kind: String,
    /// One line for admins.
    pub description: String,
    /// Media types a parser handles, as a JSON array.
    pub media_types: String,
    /// The contract version it was built against.
    pub wit_version: String,
    /// Component size in bytes.
    pub size_bytes: i64,
    /// Shipped with MedMemory (enabled for every clinic unless disabled).
    pub first_party: bool,
    /// When it was installed.
    pub installed_at: DateTime<Utc>,
    /// When a newer version with the same name replaced it.
    pub retired_at: Option<DateTime<Utc>>,
}

/// A clinic's choices about one plugin.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ClinicPlugin {
    /// The clinic.
    pub clinic_id: Uuid,
    /// The plugin.
    pub plugin_id: String,
    /// Whether the clinic uses it.
    pub enabled: bool,
    /// Settings, a JSON object of strings.
    pub config: String,
    /// Limit overrides, a JSON object.
    pub limits: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// One audited plugin call.
#[derive(Debug, Clone)]
pub struct PluginCall {
    /// The call's id.
    pub id: Uuid,
    /// Which plugin.
    pub plugin_id: String,
    /// For which clinic, if any (the CLI runs without one).
    pub clinic_id: Option<Uuid>,
    /// About which patient, if any.
    pub patient_id: Option<Uuid>,
    /// `parse`, `evaluate` or `retrieve`.
    pub operation: &'static str,
    /// SHA-256 of the input.
    pub input_sha256: String,
    /// SHA-256 of the output, when there was one.
    pub output_sha256: Option<String>,
    /// Fuel used.
    pub fuel: i64,
    /// Wall time in microseconds.
    pub duration_us: i64,
    /// Peak linear memory.
    pub peak_memory_bytes: i64,
    /// `ok` or a failure code.
    pub outcome: String,
    /// The HTTP request behind it, if any.
    pub request_id: Option<String>,
}

/// What a plugin's calls add up to.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct PluginStats {
    /// Calls made.
    pub calls: i64,
    /// Calls that did not end `ok`.
    pub failures: i64,
    /// Fuel used in all.
    pub fuel_total: i64,
    /// Wall time in all, in microseconds.
    pub duration_us_total: i64,
    /// Largest peak memory seen, in bytes.
    pub peak_memory_bytes_max: i64,
    /// Calls per outcome (`ok` or a failure code).
    pub outcomes: std::collections::BTreeMap<String, i64>,
}

const PLUGIN_COLUMNS: &str = "id, name, version, kind, description, media_types, wit_version, \
     size_bytes, first_party, installed_at, retired_at";

impl Db {
    /// Records an installed plugin. `explicit` installs (the API, the CLI)
    /// make it the current version of its name: older versions are retired and
    /// clinics' choices carry over to it. Installs at start (`explicit` false)
    /// only add rows that are missing and never change which version is current.
    pub async fn record_plugin_install(&self, row: &PluginRow, explicit: bool) -> sqlx::Result<()> {
        let at = now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM plugins WHERE id = $1")
                .bind(&row.id)
                .fetch_one(&mut *tx)
                .await?;
            if exists == 0 {
                sqlx::query(
                    "INSERT INTO plugins (id, name, version, kind, description, media_types,
                         wit_version, size_bytes, first_party, installed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&row.id)
                .bind(&row.name)
                .bind(&row.version)
                .bind(&row.kind)
                .bind(&row.description)
                .bind(&row.media_types)
                .bind(&row.wit_version)
                .bind(row.size_bytes)
                .bind(row.first_party)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            if explicit || exists == 0 {
                sqlx::query(
                    "INSERT INTO clinic_plugins (clinic_id, plugin_id, enabled, config, limits, updated_at)
                     SELECT cp.clinic_id, $1, cp.enabled, cp.config, cp.limits, $2
                     FROM clinic_plugins cp JOIN plugins p ON p.id = cp.plugin_id
                     WHERE p.name = $3 AND p.id <> $1 AND p.retired_at IS NULL
                     ON CONFLICT (clinic_id, plugin_id) DO NOTHING",
                )
                .bind(&row.id)
                .bind(at)
                .bind(&row.name)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE plugins SET retired_at = $2
                     WHERE name = $3 AND id <> $1 AND retired_at IS NULL",
                )
                .bind(&row.id)
                .bind(at)
                .bind(&row.name)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE plugins SET retired_at = NULL WHERE id = $1")
                    .bind(&row.id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Installed plugins, current versions first by name; retired ones too
    /// when asked.
    pub async fn plugins(&self, include_retired: bool) -> sqlx::Result<Vec<PluginRow>> {
        let sql = format!(
            "SELECT {PLUGIN_COLUMNS} FROM plugins {} ORDER BY name, installed_at DESC, id",
            if include_retired {
                ""
            } else {
                "WHERE retired_at IS NULL"
            }
        );
        on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await
        })
    }

    /// One installed plugin.
    pub async fn plugin(&self, id: &str) -> sqlx::Result<Option<PluginRow>> {
        let sql = format!("SELECT {PLUGIN_COLUMNS} FROM plugins WHERE id = $1");
        on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await
        })
    }

    /// A clinic's choices for every plugin it has touched.
    pub async fn clinic_plugins(&self, clinic: Uuid) -> sqlx::Result<Vec<ClinicPlugin>> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT clinic_id, plugin_id, enabled, config, limits, updated_at
                 FROM clinic_plugins WHERE clinic_id = $1 ORDER BY plugin_id",
            )
            .bind(clinic)
            .fetch_all(pool)
            .await
        })
    }

    /// Stores a clinic's choices about one plugin; `None` keeps what is there
    /// (or the default: enabled for first-party plugins, `{}` settings).
    pub async fn set_clinic_plugin(
        &self,
        clinic: Uuid,
        plugin: &str,
        enabled: Option<bool>,
        config: Option<&str>,
        limits: Option<&str>,
    ) -> sqlx::Result<ClinicPlugin> {
        let at = now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let first_party: bool = sqlx::query_scalar("SELECT first_party FROM plugins WHERE id = $1")
                .bind(plugin)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO clinic_plugins (clinic_id, plugin_id, enabled, config, limits, updated_at)
                 VALUES ($1, $2, $3, '{}', '{}', $4)
                 ON CONFLICT (clinic_id, plugin_id) DO NOTHING",
            )
            .bind(clinic)
            .bind(plugin)
            .bind(first_party)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE clinic_plugins SET
                     enabled = COALESCE($3, enabled),
                     config = COALESCE($4, config),
                     limits = COALESCE($5, limits),
                     updated_at = $6
                 WHERE clinic_id = $1 AND plugin_id = $2",
            )
            .bind(clinic)
            .bind(plugin)
            .bind(enabled)
            .bind(config)
            .bind(limits)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query_as(
                "SELECT clinic_id, plugin_id, enabled, config, limits, updated_at
                 FROM clinic_plugins WHERE clinic_id = $1 AND plugin_id = $2",
            )
            .bind(clinic)
            .bind(plugin)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    /// Appends one plugin call to the audit.
    pub async fn record_plugin_call(&self, call: &PluginCall) -> sqlx::Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO plugin_calls (id, plugin_id, clinic_id, patient_id, operation,
                     input_sha256, output_sha256, fuel, duration_us, peak_memory_bytes, outcome,
                     request_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(call.id)
            .bind(&call.plugin_id)
            .bind(call.clinic_id)
            .bind(call.patient_id)
            .bind(call.operation)
            .bind(&call.input_sha256)
            .bind(&call.output_sha256)
            .bind(call.fuel)
            .bind(call.duration_us)
            .bind(call.peak_memory_bytes)
            .bind(&call.outcome)
            .bind(&call.request_id)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// How many plugin calls were made for a patient (the trail survives the
    /// patient's erasure).
    pub async fn plugin_calls_of_patient(&self, clinic: Uuid, patient: Uuid) -> sqlx::Result<i64> {
        on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM plugin_calls WHERE clinic_id = $1 AND patient_id = $2")
                .bind(clinic)
                .bind(patient)
                .fetch_one(pool)
                .await
        })
    }

    /// What a plugin's audited calls add up to.
    pub async fn plugin_stats(&self, plugin: &str) -> sqlx::Result<PluginStats> {
        on_pool!(self, pool => {
            let (calls, failures, fuel_total, duration_us_total, peak): (i64, i64, i64, i64, i64) =
                sqlx::query_as(
                    "SELECT COUNT(*),
                         CAST(COALESCE(SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END), 0) AS BIGINT),
                         CAST(COALESCE(SUM(fuel), 0) AS BIGINT),
                         CAST(COALESCE(SUM(duration_us), 0) AS BIGINT),
                         CAST(COALESCE(MAX(peak_memory_bytes), 0) AS BIGINT)
                     FROM plugin_calls WHERE plugin_id = $1",
                )
                .bind(plugin)
                .fetch_one(pool)
                .await?;
            let outcomes: Vec<(String, i64)> = sqlx::query_as(
                "SELECT outcome, COUNT(*) FROM plugin_calls WHERE plugin_id = $1 GROUP BY outcome",
            )
            .bind(plugin)
            .fetch_all(pool)
            .await?;
            Ok(PluginStats {
                calls,
                failures,
                fuel_total,
                duration_us_total,
                peak_memory_bytes_max: peak,
                outcomes: outcomes.into_iter().collect(),
            })
        })
    }
}

impl Db {
    /// Every clinic's choices about every plugin (a small table).
    pub async fn all_clinic_plugins(&self) -> sqlx::Result<Vec<ClinicPlugin>> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT clinic_id, plugin_id, enabled, config, limits, updated_at
                 FROM clinic_plugins ORDER BY clinic_id, plugin_id",
            )
            .fetch_all(pool)
            .await
        })
    }
}
