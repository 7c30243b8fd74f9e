//! `/me`: who the server thinks the caller is, and the roles it holds. Any
//! authenticated caller may ask; it is how a person signed in through the
//! identity provider learns the `user:<id>` an admin grants roles to.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;
use super::error::Result;
use crate::auth::{Credential, Principal};

/// The route.
pub fn router() -> Router<AppState> {
    Router::new().route("/me", get(me))
}

/// One role the caller holds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HeldRole {
    /// A clinic id, or `platform`.
    pub domain: String,
    /// The role.
    pub role: String,
}

/// The caller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The casbin subject: `user:<id>` or `token:<id>`.
    pub subject: String,
    /// `user` (OIDC) or `api_token`.
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// Every role held, by domain.
    pub roles: Vec<HeldRole>,
}

/// Who is calling.
#[utoipa::path(get, path = "/api/v1/me", tag = "access",
    responses((status = 200, body = Me), (status = 401, description = "no or bad credentials")))]
pub async fn me(State(state): State<AppState>, who: Principal) -> Result<Json<Me>> {
    let kind = match who.credential {
        Credential::ApiToken { .. } => "api_token",
        Credential::User { .. } => "user",
        Credential::CdsClient { .. } => "cds_client",
    };
    let roles = state
        .db
        .assignments_of(&who.subject)
        .await?
        .into_iter()
        .map(|a| HeldRole {
            domain: a.domain,
            role: a.role,
        })
        .collect();
    Ok(Json(Me {
        subject: who.subject,
        kind,
        roles,
    }))
}
