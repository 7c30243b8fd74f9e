//! `/clinics/{clinic}/cds-clients`: the EHRs a clinic trusts to call its
//! CDS Hooks services. A client is an issuer (`iss`) and its public keys: a
//! JWK Set given out of band, or an allow-listed `jku` URL where it
//! publishes them. Its casbin subject `cds-client:<id>` gets the roles
//! named at registration (default `cds-client`: call the clinic's
//! services) and can be given others through `/roles/{subject}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::access;
use super::error::{Error, Result};
use super::extract::Json;
use crate::auth::Principal;
use crate::auth::cds::check_jwks;
use crate::authz::{self, Permission};
use crate::db::audit::AuditEvent;
use crate::db::cds::{CdsClient, NewCdsClient};
use crate::db::{Unique, unique_violation};

/// CDS client routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clinics/{clinic}/cds-clients", get(list).post(register))
        .route("/clinics/{clinic}/cds-clients/{client}", delete(remove))
}

/// A client to register.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    /// For admins, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// The `iss` of its JWTs, an absolute URI.
    pub issuer: String,
    /// Its JWK Set (public keys, each with a `kid`), given out of band.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Or the https URL where it publishes its JWK Set.
    #[serde(default)]
    pub jku: Option<String>,
    /// Roles its subject gets in the clinic; default `["cds-client"]`.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

/// A clinic's CDS clients.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientList {
    pub items: Vec<CdsClient>,
}

fn absolute_uri(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
    }) && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn validate(body: ClientRegistration) -> Result<NewCdsClient> {
    let bad = |code: &'static str, m: &str| Error::invalid(code, m.to_owned());
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(bad("invalid_name", "name is 1 to 100 characters"));
    }
    if body.issuer.len() > 500 || !absolute_uri(&body.issuer) {
        return Err(bad("invalid_issuer", "issuer is an absolute URI"));
    }
    match (&body.jwks, &body.jku) {
        (Some(jwks), None) => {
            check_jwks(jwks).map_err(|m| Error::invalid("invalid_jwks", m))?;
        }
        (None, Some(jku)) => {
            // http only for a client on this machine (development, tests).
            let local =
                jku.starts_with("http://127.0.0.1:") || jku.starts_with("http://localhost:");
            if jku.len() > 500 || !(jku.starts_with("https://") || local) || !absolute_uri(jku) {
                return Err(bad("invalid_jku", "jku is an https URL"));
            }
        }
        _ => {
            return Err(bad(
                "invalid_keys",
                "give exactly one of jwks (the keys) and jku (where they are published)",
            ));
        }
    }
    let roles = body.roles.unwrap_or_else(|| vec!["cds-client".to_owned()]);
    if roles.is_empty() || roles.len() > 8 {
        return Err(bad("invalid_roles", "1 to 8 roles"));
    }
    for role in &roles {
        // Shipped clinic roles only here; custom roles through /roles.
        if !authz::CLINIC_ROLES.contains(&role.as_str()) || role == "clinic-admin" {
            return Err(bad(
                "invalid_roles",
                "roles at registration are clinician, auditor or cds-client; grant others through /roles",
            ));
        }
    }
    Ok(NewCdsClient {
        name,
        issuer: body.issuer,
        jwks: body.jwks,
        jku: body.jku,
        roles,
    })
}

/// Registers a CDS client.
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/cds-clients", tag = "cds-hooks",
    params(("clinic" = String, Path)),
    request_body = ClientRegistration,
    responses((status = 201, body = CdsClient), (status = 403, description = "not allowed"),
        (status = 404, description = "not found"), (status = 409, description = "the issuer is registered already"),
        (status = 422, description = "invalid")))]
pub async fn register(
    State(state): State<AppState>,
    who: Principal,
    Path(clinic): Path<String>,
    Json(body): Json<ClientRegistration>,
) -> Result<(StatusCode, JsonResponse<CdsClient>)> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::CDS_CLIENT_MANAGE).await?;
    let client = validate(body)?;
    let mut event = AuditEvent::now(&who.subject, "cds-client", "manage", "succeeded");
    event.clinic_id = Some(clinic);
    event.request_id = who.request_id.clone();
    let created = state
        .db
        .create_cds_client(clinic, &client, &event)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(Unique::CdsIssuer) => Error::conflict(
                "issuer_registered",
                "this issuer is a CDS client of the clinic already",
            ),
            _ => Error::from(e),
        })?;
    state.authz.reload().await.map_err(anyhow::Error::from)?;
    Ok((StatusCode::CREATED, JsonResponse(created)))
}

/// The clinic's CDS clients.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/cds-clients", tag = "cds-hooks",
    params(("clinic" = String, Path)),
    responses((status = 200, body = ClientList), (status = 403, description = "not allowed"),
        (status = 404, description = "not found")))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path(clinic): Path<String>,
) -> Result<JsonResponse<ClientList>> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::CDS_CLIENT_READ).await?;
    let items = state.db.cds_clients(clinic).await?;
    Ok(JsonResponse(ClientList { items }))
}

/// Removes a CDS client and its roles: its tokens are refused from now on.
#[utoipa::path(delete, path = "/api/v1/clinics/{clinic}/cds-clients/{client}", tag = "cds-hooks",
    params(("clinic" = String, Path), ("client" = String, Path)),
    responses((status = 204, description = "removed"), (status = 403, description = "not allowed"),
        (status = 404, description = "not found")))]
pub async fn remove(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, client)): Path<(String, String)>,
) -> Result<StatusCode> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::CDS_CLIENT_MANAGE).await?;
    let id = access::parse_id(&client, "cds_client_not_found")?;
    let mut event = AuditEvent::now(&who.subject, "cds-client", "manage", "succeeded");
    event.clinic_id = Some(clinic);
    event.request_id = who.request_id.clone();
    if !state.db.delete_cds_client(clinic, id, &event).await? {
        return Err(Error::not_found("cds_client_not_found"));
    }
    state.authz.reload().await.map_err(anyhow::Error::from)?;
    Ok(StatusCode::NO_CONTENT)
}
