//! `POST /tokens`: service API tokens. The secret is in the response once and
//! never again; only its hash is stored.
//!
//! Escalation rules: platform-wide tokens and clinic-admin tokens can only be
//! issued by platform admins; clinic admins issue clinician and auditor tokens
//! for their own clinic.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::access;
use super::error::{Error, Result};
use super::extract::Json;
use crate::app::AppState;
use crate::auth::Principal;
use crate::authz::{BUILTIN_ROLES, Domain};
use crate::db::tokens::ApiToken;

/// Token routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/tokens", post(create))
}

/// A token to issue.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A label, 1 to 100 characters.
    pub name: String,
    /// The clinic to bind it to; absent for platform-wide tokens.
    pub clinic: Option<Uuid>,
    /// platform-admin, clinic-admin, clinician or auditor.
    pub role: String,
}

/// An issued token with its secret, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    /// The token.
    pub token: ApiToken,
    /// The bearer secret. Store it now: it cannot be shown again.
    pub secret: String,
}

/// Issues a service API token.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "access", request_body = NewToken,
    responses((status = 201, body = IssuedToken), (status = 403, description = "not allowed to grant this role"),
        (status = 422, description = "invalid")))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<NewToken>,
) -> Result<(StatusCode, JsonResponse<IssuedToken>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "invalid_token_name",
            "name must be 1 to 100 printable characters",
        ));
    }
    if !BUILTIN_ROLES.contains(&body.role.as_str()) {
        return Err(Error::invalid(
            "unknown_role",
            "role must be platform-admin, clinic-admin, clinician or auditor",
        ));
    }
    match (body.role.as_str(), body.clinic) {
        ("platform-admin", Some(_)) => {
            return Err(Error::invalid(
                "invalid_scope",
                "platform-admin tokens are not bound to a clinic",
            ));
        }
        ("platform-admin", None) => {
            access::authorize(&state, &who, Domain::Platform, "token", "create")?
        }
        (_, None) => {
            return Err(Error::invalid(
                "invalid_scope",
                "clinic roles need a clinic",
            ));
        }
        (role, Some(clinic)) => {
            access::clinic(&state, &who, &clinic.to_string(), "token", "create").await?;
            if role == "clinic-admin" {
                // Only platform admins make clinic admins.
                access::authorize(&state, &who, Domain::Platform, "token", "create")?;
            }
        }
    }
    let (token, secret) =
        crate::auth::tokens::issue(&state.db, name, body.clinic, &body.role).await?;
    state.authz.reload().await.map_err(anyhow::Error::from)?;
    tracing::info!(token = %token.id, role = %token.role, "token issued");
    Ok((
        StatusCode::CREATED,
        JsonResponse(IssuedToken { token, secret }),
    ))
}
