//! `/clinics/{clinic}/policies` and `/clinics/{clinic}/roles/{subject}`: who may
//! do what in a clinic, edited by its admins without a redeploy.
//!
//! A clinic's policy is its custom roles (built from the fixed vocabulary of
//! resources and actions that shipped clinic roles hold) and its role
//! assignments. Every change is validated, applied in one transaction with its
//! audit entry, bumps the policy version that every instance polls, and is
//! swapped into this instance's enforcer before the response. Only platform
//! admins make clinic admins; no change may leave a clinic without one. Token
//! roles are fixed when the token is issued (see `/tokens`).

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::access;
use super::error::{Error, Result};
use super::extract::Json;
use crate::auth::Principal;
use crate::authz::{self, CLINIC_ROLES, Decision, Domain, Permission};
use crate::db::audit::AuditEvent;
use crate::db::rbac::{ClinicPolicy, PolicyChangeError, PolicyScope, RolePermission};

/// Policy routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clinics/{clinic}/policies", get(read).put(replace))
        .route(
            "/clinics/{clinic}/roles/{subject}",
            get(read_roles).put(replace_roles),
        )
}

/// One permission: an action on a resource type.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The resource type, e.g. `patient`.
    pub resource: String,
    /// The action, e.g. `read`.
    pub action: String,
}

/// One role assignment in the clinic.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct RoleAssignment {
    /// `user:<id>` (or, read-only, `token:<id>`).
    pub subject: String,
    /// A shipped clinic role (clinic-admin, clinician, auditor) or a custom role.
    pub role: String,
}

/// A clinic's policy as an admin writes it: `PUT` replaces the custom roles
/// and every user assignment (token assignments are kept).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Custom roles by name (1 to 40 of `a-z 0-9 -`), each a list of grants
    /// from the vocabulary.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<Grant>>,
    /// Who holds which role.
    #[serde(default)]
    pub assignments: Vec<RoleAssignment>,
}

/// A clinic's policy as stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    /// The policy version after the last change (any clinic).
    pub version: i64,
    /// Custom roles by name.
    pub roles: BTreeMap<String, Vec<Grant>>,
    /// Every assignment in the clinic, tokens included.
    pub assignments: Vec<RoleAssignment>,
    /// The same as casbin policy lines: `p, role, resource, action` and
    /// `g, subject, role`.
    pub lines: Vec<String>,
    /// The grants custom roles may use.
    pub vocabulary: Vec<Grant>,
}

/// The roles one subject holds in a clinic.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectRoles {
    /// Role names.
    pub roles: Vec<String>,
}

fn view(policy: ClinicPolicy, version: i64) -> PolicyView {
    let mut roles: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
    let mut lines = Vec::new();
    for p in policy.permissions {
        lines.push(format!("p, {}, {}, {}", p.role, p.resource, p.action));
        roles.entry(p.role).or_default().push(Grant {
            resource: p.resource,
            action: p.action,
        });
    }
    let assignments: Vec<RoleAssignment> = policy
        .assignments
        .into_iter()
        .map(|(subject, role)| {
            lines.push(format!("g, {subject}, {role}"));
            RoleAssignment { subject, role }
        })
        .collect();
    let vocabulary = authz::vocabulary()
        .into_iter()
        .map(|(resource, action)| Grant { resource, action })
        .collect();
    PolicyView {
        version,
        roles,
        assignments,
        lines,
        vocabulary,
    }
}

/// Checks a document against the vocabulary and the size bounds; returns it
/// as store rows.
fn validate(doc: &PolicyDocument) -> Result<ClinicPolicy> {
    if doc.roles.len() > authz::MAX_CUSTOM_ROLES {
        return Err(Error::invalid(
            "too_many_roles",
            format!("at most {} custom roles", authz::MAX_CUSTOM_ROLES),
        ));
    }
    let vocabulary = authz::vocabulary();
    let mut permissions = Vec::new();
    for (role, grants) in &doc.roles {
        if !authz::valid_role_name(role) {
            return Err(Error::invalid(
                "invalid_role_name",
                "custom role names are 1 to 40 of a-z, 0-9 and -, start with a letter, and are not shipped roles",
            ));
        }
        if grants.is_empty() || grants.len() > authz::MAX_ROLE_PERMISSIONS {
            return Err(Error::invalid(
                "invalid_role_size",
                format!(
                    "a custom role holds 1 to {} permissions",
                    authz::MAX_ROLE_PERMISSIONS
                ),
            ));
        }
        // Every clinic role reads its clinic: without it the clinic would be
        // invisible (404) to the role's holders.
        let clinic_read = Grant {
            resource: "clinic".into(),
            action: "read".into(),
        };
        let grants: BTreeSet<&Grant> = grants.iter().chain([&clinic_read]).collect();
        for grant in grants {
            if !vocabulary.contains(&(grant.resource.clone(), grant.action.clone())) {
                return Err(Error::invalid(
                    "unknown_permission",
                    "a grant is not in the vocabulary (GET .../policies lists it)",
                ));
            }
            permissions.push(RolePermission {
                role: role.clone(),
                resource: grant.resource.clone(),
                action: grant.action.clone(),
            });
        }
    }
    let assignments = validate_assignments(&doc.assignments, &doc.roles)?;
    Ok(ClinicPolicy {
        permissions,
        assignments,
    })
}

fn validate_assignments(
    lines: &[RoleAssignment],
    custom: &BTreeMap<String, Vec<Grant>>,
) -> Result<Vec<(String, String)>> {
    if lines.len() > authz::MAX_ASSIGNMENTS {
        return Err(Error::invalid(
            "too_many_assignments",
            format!("at most {} assignments", authz::MAX_ASSIGNMENTS),
        ));
    }
    let mut out = BTreeSet::new();
    for line in lines {
        if !authz::valid_subject(&line.subject) {
            return Err(Error::invalid(
                "invalid_subject",
                "subjects are user:<id>, token:<id> or cds-client:<id>",
            ));
        }
        if !CLINIC_ROLES.contains(&line.role.as_str()) && !custom.contains_key(&line.role) {
            return Err(Error::invalid(
                "unknown_role",
                "a role is neither clinic-admin, clinician, auditor nor a custom role of this clinic",
            ));
        }
        out.insert((line.subject.clone(), line.role.clone()));
    }
    Ok(out.into_iter().collect())
}

fn change_error(e: PolicyChangeError) -> Error {
    match e {
        PolicyChangeError::LastAdmin => Error::conflict(
            "last_clinic_admin",
            "the change would leave the clinic without a clinic admin",
        ),
        PolicyChangeError::Escalation => Error::problem(
            StatusCode::FORBIDDEN,
            "privilege_escalation",
            "only platform admins can grant clinic-admin",
        ),
        PolicyChangeError::UnknownSubject(_) => {
            Error::invalid("unknown_subject", "a subject is not a user MedMemory knows")
        }
        PolicyChangeError::TokenRole => Error::invalid(
            "token_role_fixed",
            "token roles are fixed at issue; revoke the token and issue another",
        ),
        PolicyChangeError::Db(e) => e.into(),
    }
}

/// Applies a change, audits the outcome, reloads the enforcer.
async fn apply(
    state: &AppState,
    who: &Principal,
    clinic: Uuid,
    scope: PolicyScope,
    change: Result<ClinicPolicy>,
) -> Result<i64> {
    let may_grant_admin =
        state
            .authz
            .check(&who.subject, Domain::Platform, Permission::POLICY_UPDATE)
            == Decision::Allow;
    let mut event = AuditEvent::now(&who.subject, "policy", "update", "succeeded");
    event.clinic_id = Some(clinic);
    event.request_id = who.request_id.clone();
    let result = match change {
        Ok(change) => state
            .db
            .change_clinic_policy(clinic, &scope, &change, may_grant_admin, &event)
            .await
            .map_err(change_error),
        Err(e) => Err(e),
    };
    match result {
        Ok(version) => {
            state.authz.reload().await.map_err(anyhow::Error::from)?;
            tracing::info!(clinic = %clinic, version, "clinic policy changed");
            Ok(version)
        }
        Err(e) => {
            let mut failed = event;
            failed.id = crate::db::new_id();
            failed.outcome = "failed".into();
            failed.detail = Some(format!("{{\"code\":\"{}\"}}", e.to_problem().code));
            access::audit_event(state, &failed).await?;
            Err(e)
        }
    }
}

/// The clinic's custom roles, assignments and vocabulary.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/policies", tag = "access",
    params(("clinic" = String, Path)),
    responses((status = 200, body = PolicyView), (status = 403, description = "not allowed"), (status = 404, description = "not found")))]
pub async fn read(
    State(state): State<AppState>,
    who: Principal,
    Path(clinic): Path<String>,
) -> Result<JsonResponse<PolicyView>> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::POLICY_READ).await?;
    let (policy, version) = state.db.clinic_policy(clinic).await?;
    Ok(JsonResponse(view(policy, version)))
}

/// Replaces the clinic's custom roles and user assignments, atomically.
#[utoipa::path(put, path = "/api/v1/clinics/{clinic}/policies", tag = "access",
    params(("clinic" = String, Path)), request_body = PolicyDocument,
    responses((status = 200, body = PolicyView), (status = 403, description = "not allowed, or an escalation"),
        (status = 404, description = "not found"), (status = 409, description = "would remove the last clinic admin"),
        (status = 422, description = "invalid")))]
pub async fn replace(
    State(state): State<AppState>,
    who: Principal,
    Path(clinic): Path<String>,
    Json(doc): Json<PolicyDocument>,
) -> Result<JsonResponse<PolicyView>> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::POLICY_UPDATE).await?;
    apply(&state, &who, clinic, PolicyScope::Whole, validate(&doc)).await?;
    let (policy, version) = state.db.clinic_policy(clinic).await?;
    Ok(JsonResponse(view(policy, version)))
}

/// The roles a subject holds in the clinic.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/roles/{subject}", tag = "access",
    params(("clinic" = String, Path), ("subject" = String, Path, description = "user:<id>, token:<id> or cds-client:<id>")),
    responses((status = 200, body = SubjectRoles), (status = 403, description = "not allowed"), (status = 404, description = "not found")))]
pub async fn read_roles(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, subject)): Path<(String, String)>,
) -> Result<JsonResponse<SubjectRoles>> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::POLICY_READ).await?;
    if !authz::valid_subject(&subject) {
        return Err(Error::not_found("subject_not_found"));
    }
    let (policy, _) = state.db.clinic_policy(clinic).await?;
    let roles = policy
        .assignments
        .into_iter()
        .filter(|(s, _)| *s == subject)
        .map(|(_, role)| role)
        .collect();
    Ok(JsonResponse(SubjectRoles { roles }))
}

/// Sets the roles a user holds in the clinic (an empty list removes them all).
#[utoipa::path(put, path = "/api/v1/clinics/{clinic}/roles/{subject}", tag = "access",
    params(("clinic" = String, Path), ("subject" = String, Path, description = "user:<id>")),
    request_body = SubjectRoles,
    responses((status = 200, body = SubjectRoles), (status = 403, description = "not allowed, or an escalation"),
        (status = 404, description = "not found"), (status = 409, description = "would remove the last clinic admin"),
        (status = 422, description = "invalid")))]
pub async fn replace_roles(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, subject)): Path<(String, String)>,
    Json(body): Json<SubjectRoles>,
) -> Result<JsonResponse<SubjectRoles>> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::POLICY_UPDATE).await?;
    let change = async {
        let (current, _) = state.db.clinic_policy(clinic).await?;
        let mut custom: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
        for p in current.permissions {
            custom.entry(p.role).or_default();
        }
        let lines: Vec<RoleAssignment> = body
            .roles
            .iter()
            .map(|role| RoleAssignment {
                subject: subject.clone(),
                role: role.clone(),
            })
            .collect();
        if !authz::valid_subject(&subject) {
            return Err(Error::invalid(
                "invalid_subject",
                "subjects are user:<id>, token:<id> or cds-client:<id>",
            ));
        }
        Ok(ClinicPolicy {
            permissions: Vec::new(),
            assignments: validate_assignments(&lines, &custom)?,
        })
    }
    .await;
    apply(
        &state,
        &who,
        clinic,
        PolicyScope::Subject(subject.clone()),
        change,
    )
    .await?;
    let mut roles: Vec<String> = body.roles;
    roles.sort();
    roles.dedup();
    Ok(JsonResponse(SubjectRoles { roles }))
}
