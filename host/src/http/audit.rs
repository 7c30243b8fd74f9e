//! `/clinics/{clinic}/audit`: a clinic's audit trail for its auditors, and
//! `/audit/verify`: the hash chain checked end to end (platform admins).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::access;
use super::error::{Error, Result};
use super::extract::Query;
use super::records::time_bound;
use crate::auth::Principal;
use crate::authz::{Domain, Permission};
use crate::db::audit::{AuditEntry, AuditFilter, Verification};

/// Audit routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clinics/{clinic}/audit", get(list))
        .route("/audit/verify", get(verify))
}

/// Filters and paging of the trail.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this actor (e.g. `token:<id>`).
    pub actor: Option<String>,
    /// Only entries about this patient.
    #[param(
        pattern = r"^$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub patient: Option<String>,
    /// Only this action (e.g. `read`, `erase`).
    pub action: Option<String>,
    /// At or after this date or date-time.
    pub since: Option<String>,
    /// Before this date or date-time.
    pub until: Option<String>,
    /// Items per page, 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{0,18}$")]
    pub cursor: Option<String>,
}

/// A page of the trail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Entries, oldest first.
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A clinic's audit trail.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/audit", tag = "access",
    params(("clinic" = String, Path), AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, description = "not an auditor"), (status = 404, description = "not found")))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path(clinic): Path<String>,
    Query(query): Query<AuditQuery>,
) -> Result<JsonResponse<AuditPage>> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::AUDIT_READ).await?;
    let limit = i64::from(query.limit.unwrap_or(50));
    if !(1..=500).contains(&limit) {
        return Err(Error::invalid(
            "invalid_limit",
            "limit must be between 1 and 500",
        ));
    }
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            Error::bad_request("invalid_cursor", "the cursor is not one we issued")
        })?),
    };
    let patient = match query.patient.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(
            p.parse()
                .map_err(|_| Error::invalid("invalid_filter", "patient must be a patient id"))?,
        ),
    };
    let filter = AuditFilter {
        actor: query.actor.clone(),
        patient,
        action: query.action.clone(),
        since: time_bound(query.since.as_deref(), "since")?,
        until: time_bound(query.until.as_deref(), "until")?,
    };
    let mut items = state
        .db
        .audit_entries(clinic, &filter, after, limit + 1)
        .await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    Ok(JsonResponse(AuditPage { items, next_cursor }))
}

/// Walks the whole hash chain and names the first entry that does not fit.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "access",
    responses((status = 200, body = Verification), (status = 403, description = "not a platform admin")))]
pub async fn verify(
    State(state): State<AppState>,
    who: Principal,
) -> Result<JsonResponse<Verification>> {
    access::authorize(&state, &who, Domain::Platform, Permission::AUDIT_VERIFY)?;
    let verification = state.db.verify_audit().await?;
    if !verification.ok {
        tracing::error!(broken = ?verification.first_broken.as_ref().map(|b| b.seq), "audit chain broken");
    }
    Ok(JsonResponse(verification))
}
