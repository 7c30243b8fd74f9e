//! Alerts raised by the clinic's rule plugins: list them (a patient's, or the
//! clinic's with open critical ones first) and act on them: acknowledge,
//! resolve, snooze, override with a reason. Every change is audited with who
//! and why.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::access;
use super::error::{Error, Result};
use super::extract::{Json, Query};
use super::records::time_bound;
use crate::auth::Principal;
use crate::authz::Permission;
use crate::db::alerts::{Alert, AlertFilter};

/// Alert routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clinics/{clinic}/alerts", get(clinic_alerts))
        .route(
            "/clinics/{clinic}/patients/{patient}/alerts",
            get(patient_alerts),
        )
        .route(
            "/clinics/{clinic}/patients/{patient}/alerts/{alert}/{action}",
            post(act),
        )
}

/// Filters of an alert list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// `open`, `acknowledged`, `resolved` or `overridden`.
    #[param(pattern = "^(open|acknowledged|resolved|overridden)$")]
    pub status: Option<String>,
    /// `info`, `warning` or `critical`.
    #[param(pattern = "^(info|warning|critical)$")]
    pub indicator: Option<String>,
    /// Only alerts changed at or after this date or date-time.
    pub since: Option<String>,
    /// At most this many, 1 to 500; default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// Alerts, open first, critical first, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertList {
    pub items: Vec<Alert>,
}

/// Why (and, for a snooze, how long).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertChange {
    /// Why; required to override; at most 500 characters.
    #[serde(default)]
    pub reason: Option<String>,
    /// For `snooze`: minutes, 1 to 43200 (30 days).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 43200)]
    pub minutes: Option<i64>,
}

const STATUSES: [&str; 4] = ["open", "acknowledged", "resolved", "overridden"];
const INDICATORS: [&str; 3] = ["info", "warning", "critical"];

fn filter(query: AlertQuery, patient: Option<Uuid>) -> Result<(AlertFilter, i64)> {
    let bad = |what: &str| Error::invalid("invalid_filter", what.to_owned());
    if query
        .status
        .as_deref()
        .is_some_and(|s| !STATUSES.contains(&s))
    {
        return Err(bad(
            "status must be open, acknowledged, resolved or overridden",
        ));
    }
    if query
        .indicator
        .as_deref()
        .is_some_and(|i| !INDICATORS.contains(&i))
    {
        return Err(bad("indicator must be info, warning or critical"));
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Error::invalid(
            "invalid_limit",
            "limit must be between 1 and 500",
        ));
    }
    Ok((
        AlertFilter {
            patient,
            status: query.status,
            indicator: query.indicator,
            since: time_bound(query.since.as_deref(), "since")?,
            awake_at: None,
        },
        limit,
    ))
}

/// The clinic's alerts: open critical ones first; snoozed ones are left out
/// until they wake.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/alerts", tag = "alerts",
    params(("clinic" = String, Path), AlertQuery),
    responses((status = 200, body = AlertList), (status = 404, description = "not found"), (status = 422, description = "invalid filter")))]
pub async fn clinic_alerts(
    State(state): State<AppState>,
    who: Principal,
    Path(clinic): Path<String>,
    Query(query): Query<AlertQuery>,
) -> Result<JsonResponse<AlertList>> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::ALERT_READ).await?;
    let (mut filter, limit) = filter(query, None)?;
    filter.awake_at = Some(crate::db::now());
    let items = state.db.alerts(clinic, &filter, limit).await?;
    Ok(JsonResponse(AlertList { items }))
}

/// One patient's alerts.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/patients/{patient}/alerts", tag = "alerts",
    params(("clinic" = String, Path), ("patient" = String, Path), AlertQuery),
    responses((status = 200, body = AlertList), (status = 404, description = "not found"), (status = 422, description = "invalid filter")))]
pub async fn patient_alerts(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
    Query(query): Query<AlertQuery>,
) -> Result<JsonResponse<AlertList>> {
    let patient = access::patient(&state, &who, &clinic, &patient, Permission::ALERT_READ).await?;
    let (filter, limit) = filter(query, Some(patient.id))?;
    let mut items = state.db.alerts(patient.clinic_id, &filter, limit).await?;
    let feedback = state.db.cds_feedback(patient.clinic_id, patient.id).await?;
    for (fingerprint, given) in feedback {
        if let Some(alert) = items.iter_mut().find(|a| a.fingerprint == fingerprint) {
            alert.feedback.push(given);
        }
    }
    Ok(JsonResponse(AlertList { items }))
}

/// Acts on an alert: `ack`, `resolve`, `snooze` (`minutes`) or `override`
/// (`reason` required).
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/patients/{patient}/alerts/{alert}/{action}", tag = "alerts",
    params(("clinic" = String, Path), ("patient" = String, Path), ("alert" = String, Path),
        ("action" = String, Path, description = "ack, resolve, snooze or override")),
    request_body = AlertChange,
    responses((status = 200, body = Alert), (status = 404, description = "not found"),
        (status = 409, description = "the alert is not in a state this action applies to"), (status = 422, description = "invalid")))]
pub async fn act(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient, alert, action)): Path<(String, String, String, String)>,
    Json(change): Json<AlertChange>,
) -> Result<JsonResponse<Alert>> {
    let patient =
        access::patient(&state, &who, &clinic, &patient, Permission::ALERT_UPDATE).await?;
    let id: Uuid = alert
        .parse()
        .map_err(|_| Error::not_found("alert_not_found"))?;
    let current = state
        .db
        .alert(patient.clinic_id, patient.id, id)
        .await?
        .ok_or_else(|| Error::not_found("alert_not_found"))?;
    let reason = change
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > 500 || r.chars().any(char::is_control)) {
        return Err(Error::invalid(
            "invalid_reason",
            "reason must be at most 500 printable characters",
        ));
    }
    let live = current.status == "open" || current.status == "acknowledged";
    let conflict = || Error::conflict("alert_not_open", "the alert is resolved or overridden");
    let (status, until) = match action.as_str() {
        "ack" if live => ("acknowledged", None),
        "resolve" if current.status != "resolved" => ("resolved", None),
        "override" if live => {
            if reason.is_none() {
                return Err(Error::invalid(
                    "invalid_reason",
                    "an override needs a reason",
                ));
            }
            ("overridden", None)
        }
        "snooze" if live => {
            let minutes = change
                .minutes
                .filter(|m| (1..=43_200).contains(m))
                .ok_or_else(|| {
                    Error::invalid("invalid_snooze", "minutes must be between 1 and 43200")
                })?;
            let until = crate::db::now() + chrono::TimeDelta::minutes(minutes);
            (current.status.as_str(), Some(until))
        }
        "ack" | "resolve" | "override" | "snooze" => return Err(conflict()),
        _ => return Err(Error::not_found("unknown_action")),
    };
    let updated = state
        .db
        .set_alert_status(
            patient.clinic_id,
            patient.id,
            id,
            (status, &who.subject, reason, until),
        )
        .await?
        .ok_or_else(|| Error::not_found("alert_not_found"))?;
    access::audit_change(
        &state,
        &who,
        Some(patient.clinic_id),
        Permission::ALERT_UPDATE,
        serde_json::json!({
            "alert": id, "patient": patient.id, "action": action,
            "status": status, "reason": reason, "snoozed_until": until,
        }),
    )
    .await?;
    Ok(JsonResponse(updated))
}
