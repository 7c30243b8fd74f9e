//! Authorization and scoping helpers shared by the resource routers.
//!
//! A caller with no role in a clinic gets 404 for everything in it, exactly as
//! if it did not exist; a caller with a role that lacks the permission gets 403.
//!
//! Every decision about a clinic's or a patient's data is audited here, allowed
//! or denied, before the handler touches the data; if the audit cannot be
//! written the request fails (fail closed).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::error::{Error, Result};
use crate::auth::Principal;
use crate::authz::{Decision, Domain, Permission};
use crate::db::audit::AuditEvent;
use crate::db::patients::Patient;

/// Checks a permission in a domain.
pub fn authorize(
    state: &AppState,
    who: &Principal,
    domain: Domain,
    permission: Permission,
) -> Result<()> {
    match state.authz.check(&who.subject, domain, permission) {
        Decision::Allow => Ok(()),
        Decision::Deny => Err(Error::forbidden()),
        Decision::Invisible => Err(Error::not_found("clinic_not_found")),
    }
}

/// Parses an id from a path; anything that is not a UUID is simply not found.
pub fn parse_id(raw: &str, not_found: &'static str) -> Result<Uuid> {
    raw.parse().map_err(|_| Error::not_found(not_found))
}

/// Records an access decision; the request fails if it cannot be recorded.
pub async fn audit(
    state: &AppState,
    who: &Principal,
    clinic: Option<Uuid>,
    patient: Option<Uuid>,
    permission: Permission,
    outcome: &str,
) -> Result<()> {
    let mut event = AuditEvent::now(
        &who.subject,
        permission.resource,
        permission.action,
        outcome,
    );
    event.clinic_id = clinic;
    event.patient_id = patient;
    event.request_id = who.request_id.clone();
    audit_event(state, &event).await
}

/// Records an admin change that succeeded, with PHI-free `detail` (ids,
/// names of settings, never their values); the request fails if it cannot be
/// recorded.
pub async fn audit_change(
    state: &AppState,
    who: &Principal,
    clinic: Option<Uuid>,
    permission: Permission,
    detail: serde_json::Value,
) -> Result<()> {
    let mut event = AuditEvent::now(
        &who.subject,
        permission.resource,
        permission.action,
        "succeeded",
    );
    event.clinic_id = clinic;
    event.request_id = who.request_id.clone();
    event.detail = Some(detail.to_string());
    audit_event(state, &event).await
}

/// Appends an event; the request fails if it cannot be recorded.
pub async fn audit_event(state: &AppState, event: &AuditEvent) -> Result<()> {
    state.db.append_audit(event).await.map_err(|e| {
        tracing::error!(error = %e, "audit write failed; refusing the request");
        Error::problem(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            "the audit trail cannot be written, so the request was refused",
        )
    })
}

/// Authorization and existence of the clinic named by the path, unaudited.
async fn check_clinic(
    state: &AppState,
    who: &Principal,
    id: Uuid,
    permission: Permission,
) -> Result<Uuid> {
    authorize(state, who, Domain::Clinic(id), permission)?;
    if state.db.clinic(id).await?.is_none() {
        return Err(Error::not_found("clinic_not_found"));
    }
    Ok(id)
}

fn outcome<T>(result: &Result<T>) -> &'static str {
    if result.is_ok() { "allowed" } else { "denied" }
}

/// Authorizes `action` on `resource` in the clinic named by the path and
/// returns the clinic id, or 404 if it is invisible or absent. Audited.
pub async fn clinic(
    state: &AppState,
    who: &Principal,
    raw: &str,
    permission: Permission,
) -> Result<Uuid> {
    let id = parse_id(raw, "clinic_not_found")?;
    let result = check_clinic(state, who, id, permission).await;
    audit(state, who, Some(id), None, permission, outcome(&result)).await?;
    result
}

/// As [`clinic`], then loads the live patient named by the path. Audited
/// with the patient.
pub async fn patient(
    state: &AppState,
    who: &Principal,
    clinic_raw: &str,
    patient_raw: &str,
    permission: Permission,
) -> Result<Patient> {
    let clinic = parse_id(clinic_raw, "clinic_not_found")?;
    let patient_id = patient_raw.parse::<Uuid>().ok();
    let result: Result<Patient> = async {
        check_clinic(state, who, clinic, permission).await?;
        let id = patient_id.ok_or_else(|| Error::not_found("patient_not_found"))?;
        state
            .db
            .patient(clinic, id)
            .await?
            .ok_or_else(|| Error::not_found("patient_not_found"))
    }
    .await;
    audit(
        state,
        who,
        Some(clinic),
        patient_id,
        permission,
        outcome(&result),
    )
    .await?;
    result
}

/// `?limit=&cursor=` of list routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(
        pattern = r"^$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Items to return.
    pub limit: i64,
    /// Return items after this id.
    pub after: Option<Uuid>,
}

impl PageQuery {
    /// Validates limit and cursor.
    pub fn page(&self) -> Result<Page> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(Error::invalid(
                "invalid_limit",
                "limit must be between 1 and 500",
            ));
        }
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(Uuid::try_parse(c).map_err(|_| {
                Error::bad_request("invalid_cursor", "the cursor is not one we issued")
            })?),
        };
        Ok(Page {
            limit: i64::from(limit),
            after,
        })
    }
}

/// A page of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct List<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    /// Builds a page from `limit + 1` fetched items.
    pub fn from_overfetch(mut items: Vec<T>, page: Page, id: impl Fn(&T) -> Uuid) -> List<T> {
        let more = items.len() as i64 > page.limit;
        items.truncate(page.limit as usize);
        let next_cursor = if more {
            items.last().map(|i| id(i).to_string())
        } else {
            None
        };
        List { items, next_cursor }
    }
}
