//! `/tokens`: service API tokens. The secret is in the response once and never
//! again; only its hash is stored. A token may expire; it records its last
//! use; revoking it takes effect on the next request.
//!
//! Escalation rules: platform-wide tokens and clinic-admin tokens can only be
//! issued or revoked by platform admins; clinic admins issue, list and revoke
//! clinician and auditor tokens of their own clinic. Issuing and revoking are
//! audited in the same transaction as the change.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::access::{self, List, PageQuery};
use super::error::{Error, Result};
use super::extract::{Json, Query};
use crate::auth::Principal;
use crate::authz::{BUILTIN_ROLES, Decision, Domain, Permission};
use crate::db::audit::AuditEvent;
use crate::db::tokens::ApiToken;

/// Token routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list).post(create))
        .route("/tokens/{token}", delete(revoke))
}

/// A token to issue.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A label, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// The clinic to bind it to; absent for platform-wide tokens.
    pub clinic: Option<Uuid>,
    /// platform-admin, clinic-admin, clinician, auditor or cds-client.
    #[schema(pattern = "^(platform-admin|clinic-admin|clinician|auditor|cds-client)$")]
    pub role: String,
    /// When it stops working (RFC 3339, in the future, within two years);
    /// absent: never.
    #[serde(default)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
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
            "role must be platform-admin, clinic-admin, clinician, auditor or cds-client",
        ));
    }
    if let Some(at) = body.expires_at {
        let now = chrono::Utc::now();
        if at <= now || at > now + chrono::TimeDelta::days(731) {
            return Err(Error::invalid(
                "invalid_expiry",
                "expires_at must be in the future and within two years",
            ));
        }
    }
    match (body.role.as_str(), body.clinic) {
        ("platform-admin", Some(_)) => {
            return Err(Error::invalid(
                "invalid_scope",
                "platform-admin tokens are not bound to a clinic",
            ));
        }
        ("platform-admin", None) => {
            access::authorize(&state, &who, Domain::Platform, Permission::TOKEN_CREATE)?
        }
        (_, None) => {
            return Err(Error::invalid(
                "invalid_scope",
                "clinic roles need a clinic",
            ));
        }
        (role, Some(clinic)) => {
            access::clinic(&state, &who, &clinic.to_string(), Permission::TOKEN_CREATE).await?;
            if role == "clinic-admin" {
                // Only platform admins make clinic admins.
                access::authorize(&state, &who, Domain::Platform, Permission::TOKEN_CREATE)?;
            }
        }
    }
    let mut audit = AuditEvent::now(&who.subject, "token", "create", "succeeded");
    audit.clinic_id = body.clinic;
    audit.request_id = who.request_id.clone();
    let (token, secret) = crate::auth::tokens::issue(
        &state.db,
        name,
        body.clinic,
        &body.role,
        body.expires_at,
        &audit,
    )
    .await?;
    state.authz.reload().await.map_err(anyhow::Error::from)?;
    tracing::info!(token = %token.id, role = %token.role, "token issued");
    Ok((
        StatusCode::CREATED,
        JsonResponse(IssuedToken { token, secret }),
    ))
}

/// Which tokens to list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// Only this clinic's tokens (clinic admins must give it); absent: every
    /// token (platform admins).
    pub clinic: Option<String>,
    /// Items per page, 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(
        pattern = r"^$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub cursor: Option<String>,
}

/// Lists tokens, never their secrets.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "access", params(TokenQuery),
    responses((status = 200, body = List<ApiToken>), (status = 403, description = "not allowed")))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Query(query): Query<TokenQuery>,
) -> Result<JsonResponse<List<ApiToken>>> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .page()?;
    let clinic = match &query.clinic {
        Some(raw) => Some(access::clinic(&state, &who, raw, Permission::TOKEN_READ).await?),
        None => {
            access::authorize(&state, &who, Domain::Platform, Permission::TOKEN_READ)?;
            None
        }
    };
    let tokens = state
        .db
        .tokens(clinic, clinic.is_none(), page.after, page.limit + 1)
        .await?;
    Ok(JsonResponse(List::from_overfetch(tokens, page, |t| t.id)))
}

/// Revokes a token with immediate effect.
#[utoipa::path(delete, path = "/api/v1/tokens/{token}", tag = "access",
    params(("token" = String, Path)),
    responses((status = 204, description = "revoked"), (status = 403, description = "not allowed"), (status = 404, description = "not found")))]
pub async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    Path(token): Path<String>,
) -> Result<StatusCode> {
    let id = access::parse_id(&token, "token_not_found")?;
    let found = state.db.token(id).await?.filter(|t| t.revoked_at.is_none());
    // Platform tokens and clinic-admin tokens: platform admins only. A token of
    // a clinic the caller cannot see is simply not found.
    let platform = || {
        state
            .authz
            .check(&who.subject, Domain::Platform, Permission::TOKEN_DELETE)
    };
    let decision = match found.as_ref() {
        None => Decision::Invisible,
        Some(t) => match (t.clinic_id, t.role.as_str()) {
            (Some(clinic), role) => {
                match state.authz.check(
                    &who.subject,
                    Domain::Clinic(clinic),
                    Permission::TOKEN_DELETE,
                ) {
                    Decision::Allow if role == "clinic-admin" => match platform() {
                        Decision::Allow => Decision::Allow,
                        _ => Decision::Deny,
                    },
                    other => other,
                }
            }
            (None, _) => match platform() {
                Decision::Allow => Decision::Allow,
                _ => Decision::Invisible,
            },
        },
    };
    if decision != Decision::Allow {
        let clinic = found.as_ref().and_then(|t| t.clinic_id);
        access::audit(
            &state,
            &who,
            clinic,
            None,
            Permission::TOKEN_DELETE,
            "denied",
        )
        .await?;
        return Err(match decision {
            Decision::Deny => Error::forbidden(),
            _ => Error::not_found("token_not_found"),
        });
    }
    let found = found.ok_or_else(|| Error::not_found("token_not_found"))?;
    let mut audit = AuditEvent::now(&who.subject, "token", "delete", "succeeded");
    audit.clinic_id = found.clinic_id;
    audit.request_id = who.request_id.clone();
    state
        .db
        .revoke_token(found.id, &audit)
        .await?
        .ok_or_else(|| Error::not_found("token_not_found"))?;
    state.authz.reload().await.map_err(anyhow::Error::from)?;
    tracing::info!(token = %found.id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
