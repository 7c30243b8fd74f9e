//! `/plugins` and `/clinics/{clinic}/plugins`: the plugin registry.
//!
//! Platform admins install components and see every plugin and its stats;
//! clinic admins choose which plugins their clinic uses, with what settings
//! and within which limits (never above the host's).

use std::collections::BTreeMap;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json as JsonResponse, Router};
use serde::Deserialize;

use super::AppState;
use super::access::{self, List};
use super::error::{Error, Result};
use super::extract::{Json, Query, RawBody, close_after_refusal};
use crate::auth::Principal;
use crate::authz::{Domain, Permission};
use crate::db::plugins::PluginStats;
use crate::plugins::{ClinicPluginView, InstallError, LimitOverrides, PluginView};

/// Largest component accepted by `POST /plugins`.
pub const MAX_COMPONENT_BYTES: usize = 64 * 1024 * 1024;
/// Settings per plugin and clinic.
const MAX_SETTINGS: usize = 64;
/// Longest setting value.
const MAX_SETTING_VALUE: usize = 4096;

/// Plugin routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/plugins",
            get(list).post(install).layer((
                DefaultBodyLimit::max(MAX_COMPONENT_BYTES),
                axum::middleware::map_response(close_after_refusal),
            )),
        )
        .route("/plugins/{plugin}", get(read))
        .route("/plugins/{plugin}/stats", get(stats))
        .route("/clinics/{clinic}/plugins", get(clinic_list))
        .route("/clinics/{clinic}/plugins/{plugin}/enable", post(enable))
        .route("/clinics/{clinic}/plugins/{plugin}/disable", post(disable))
        .route("/clinics/{clinic}/plugins/{plugin}/config", put(configure))
}

/// `?include_retired=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Also list versions replaced by newer ones.
    #[serde(default)]
    pub include_retired: bool,
}

/// Lists installed plugins.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", params(ListQuery),
    responses((status = 200, body = List<PluginView>), (status = 403, description = "not a platform admin")))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Query(query): Query<ListQuery>,
) -> Result<JsonResponse<List<PluginView>>> {
    access::authorize(&state, &who, Domain::Platform, Permission::PLUGIN_READ)?;
    let items = state.plugins.list(query.include_retired).await?;
    Ok(JsonResponse(List {
        items,
        next_cursor: None,
    }))
}

/// Installs a component (the request body is the `.wasm` file).
#[utoipa::path(post, path = "/api/v1/plugins", tag = "plugins",
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = PluginView),
        (status = 403, description = "not a platform admin"),
        (status = 413, description = "larger than 64 MiB"),
        (status = 422, description = "not a component, forbidden imports, incompatible contract, does not compile")))]
pub async fn install(
    State(state): State<AppState>,
    who: Principal,
    body: RawBody,
) -> Result<(StatusCode, JsonResponse<PluginView>)> {
    access::authorize(&state, &who, Domain::Platform, Permission::PLUGIN_INSTALL)?;
    let bytes = body.read().await?;
    let plugin = state
        .plugins
        .install(bytes.to_vec(), false, true)
        .await
        .map_err(|e| match e {
            InstallError::Cache(io) => Error::from(anyhow::Error::from(io)),
            refused => Error::invalid(refused.code(), refused.to_string()),
        })?;
    tracing::info!(plugin = %plugin.info.name, version = %plugin.info.version, id = %plugin.info.id, "plugin installed");
    access::audit_change(
        &state,
        &who,
        None,
        Permission::PLUGIN_INSTALL,
        serde_json::json!({ "plugin": plugin.info.id, "name": plugin.info.name, "version": plugin.info.version }),
    )
    .await?;
    let view = state
        .plugins
        .get(&plugin.info.id)
        .await?
        .ok_or_else(|| Error::not_found("plugin_not_found"))?;
    Ok((StatusCode::CREATED, JsonResponse(view)))
}

/// Reads one plugin.
#[utoipa::path(get, path = "/api/v1/plugins/{plugin}", tag = "plugins",
    params(("plugin" = String, Path, description = "SHA-256 of the component")),
    responses((status = 200, body = PluginView), (status = 404, description = "not found")))]
pub async fn read(
    State(state): State<AppState>,
    who: Principal,
    Path(plugin): Path<String>,
) -> Result<JsonResponse<PluginView>> {
    access::authorize(&state, &who, Domain::Platform, Permission::PLUGIN_READ)?;
    let view = state
        .plugins
        .get(&plugin)
        .await?
        .ok_or_else(|| Error::not_found("plugin_not_found"))?;
    Ok(JsonResponse(view))
}

/// A plugin's call statistics, from the audit of its calls.
#[utoipa::path(get, path = "/api/v1/plugins/{plugin}/stats", tag = "plugins",
    params(("plugin" = String, Path, description = "SHA-256 of the component")),
    responses((status = 200, body = PluginStats), (status = 404, description = "not found")))]
pub async fn stats(
    State(state): State<AppState>,
    who: Principal,
    Path(plugin): Path<String>,
) -> Result<JsonResponse<PluginStats>> {
    access::authorize(&state, &who, Domain::Platform, Permission::PLUGIN_READ)?;
    if state.db.plugin(&plugin).await?.is_none() {
        return Err(Error::not_found("plugin_not_found"));
    }
    Ok(JsonResponse(state.db.plugin_stats(&plugin).await?))
}

/// The plugins as one clinic uses them.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/plugins", tag = "plugins",
    params(("clinic" = String, Path)),
    responses((status = 200, body = List<ClinicPluginView>), (status = 404, description = "not found")))]
pub async fn clinic_list(
    State(state): State<AppState>,
    who: Principal,
    Path(clinic): Path<String>,
) -> Result<JsonResponse<List<ClinicPluginView>>> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::PLUGIN_READ).await?;
    Ok(JsonResponse(List {
        items: state.plugins.for_clinic(clinic).await?,
        next_cursor: None,
    }))
}

/// Resolves the clinic (authorized for `plugin update`) and a current plugin.
async fn clinic_plugin(
    state: &AppState,
    who: &Principal,
    clinic: &str,
    plugin: &str,
) -> Result<uuid::Uuid> {
    let clinic = access::clinic(state, who, clinic, Permission::PLUGIN_UPDATE).await?;
    match state.db.plugin(plugin).await? {
        None => Err(Error::not_found("plugin_not_found")),
        Some(row) if row.retired_at.is_some() => Err(Error::conflict(
            "plugin_retired",
            "a newer version of this plugin is installed; use that one",
        )),
        Some(_) => Ok(clinic),
    }
}

async fn clinic_view(
    state: &AppState,
    clinic: uuid::Uuid,
    plugin: &str,
) -> Result<ClinicPluginView> {
    state
        .plugins
        .for_clinic(clinic)
        .await?
        .into_iter()
        .find(|c| c.plugin.id == plugin)
        .ok_or_else(|| Error::not_found("plugin_not_found"))
}

async fn set_enabled(
    state: AppState,
    who: Principal,
    clinic: String,
    plugin: String,
    enabled: bool,
) -> Result<JsonResponse<ClinicPluginView>> {
    let clinic = clinic_plugin(&state, &who, &clinic, &plugin).await?;
    state.plugins.set_enabled(clinic, &plugin, enabled).await?;
    tracing::info!(clinic = %clinic, plugin = %plugin, enabled, "plugin choice changed");
    access::audit_change(
        &state,
        &who,
        Some(clinic),
        Permission::PLUGIN_UPDATE,
        serde_json::json!({ "plugin": plugin, "enabled": enabled }),
    )
    .await?;
    Ok(JsonResponse(clinic_view(&state, clinic, &plugin).await?))
}

/// Enables a plugin for a clinic.
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/plugins/{plugin}/enable", tag = "plugins",
    params(("clinic" = String, Path), ("plugin" = String, Path)),
    responses((status = 200, body = ClinicPluginView), (status = 404, description = "not found"),
        (status = 409, description = "a newer version is installed")))]
pub async fn enable(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, plugin)): Path<(String, String)>,
) -> Result<JsonResponse<ClinicPluginView>> {
    set_enabled(state, who, clinic, plugin, true).await
}

/// Disables a plugin for a clinic.
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/plugins/{plugin}/disable", tag = "plugins",
    params(("clinic" = String, Path), ("plugin" = String, Path)),
    responses((status = 200, body = ClinicPluginView), (status = 404, description = "not found")))]
pub async fn disable(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, plugin)): Path<(String, String)>,
) -> Result<JsonResponse<ClinicPluginView>> {
    set_enabled(state, who, clinic, plugin, false).await
}

/// A clinic's settings and limits for a plugin.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// What the plugin's `config` import returns: up to 64 keys of
    /// `[a-z0-9_.-]{1,64}`, values up to 4096 characters.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Lower limits for this clinic; each at most the host's.
    #[serde(default)]
    pub limits: LimitOverrides,
}

/// Sets a clinic's settings and limits for a plugin (replacing the old ones).
#[utoipa::path(put, path = "/api/v1/clinics/{clinic}/plugins/{plugin}/config", tag = "plugins",
    params(("clinic" = String, Path), ("plugin" = String, Path)), request_body = PluginConfig,
    responses((status = 200, body = ClinicPluginView), (status = 404, description = "not found"),
        (status = 422, description = "invalid settings or limits")))]
pub async fn configure(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, plugin)): Path<(String, String)>,
    Json(body): Json<PluginConfig>,
) -> Result<JsonResponse<ClinicPluginView>> {
    let clinic = clinic_plugin(&state, &who, &clinic, &plugin).await?;
    if body.settings.len() > MAX_SETTINGS {
        return Err(Error::invalid(
            "invalid_plugin_settings",
            format!("at most {MAX_SETTINGS} settings"),
        ));
    }
    for (key, value) in &body.settings {
        let key_ok = !key.is_empty()
            && key.len() <= 64
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
        if !key_ok || value.chars().count() > MAX_SETTING_VALUE {
            return Err(Error::invalid(
                "invalid_plugin_settings",
                "keys are 1 to 64 of a-z 0-9 _ . -; values at most 4096 characters",
            ));
        }
    }
    let host = state.plugins.registry().host().limits();
    if let Err(name) = host.with(&body.limits) {
        return Err(Error::invalid(
            "invalid_plugin_limits",
            format!("limits.{name} must be at least 1 and at most the host's limit"),
        ));
    }
    state
        .plugins
        .set_config(clinic, &plugin, &body.settings, &body.limits)
        .await?;
    tracing::info!(clinic = %clinic, plugin = %plugin, "plugin settings changed");
    // The names of the settings, never their values (they may hold secrets).
    let keys: Vec<&String> = body.settings.keys().collect();
    access::audit_change(
        &state,
        &who,
        Some(clinic),
        Permission::PLUGIN_UPDATE,
        serde_json::json!({ "plugin": plugin, "settings": keys, "limits": body.limits }),
    )
    .await?;
    Ok(JsonResponse(clinic_view(&state, clinic, &plugin).await?))
}
