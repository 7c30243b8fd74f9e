//! The CDS Hooks 2.0 endpoints of a clinic, base URL
//! `/api/v1/clinics/{clinic}`: discovery (`GET .../cds-services`), a hook
//! call (`POST .../cds-services/{service}`) and feedback (`POST
//! .../cds-services/{service}/feedback`).
//!
//! Callers are the clinic's registered CDS clients (a JWT signed per call,
//! `aud` = the exact URL called; see `auth::cds`) or any principal with
//! `cds:call` (OIDC users, API tokens, for scripts). Every call is audited;
//! a hook call is a read of the patient's data and is audited with them.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{FromRequestParts, OriginalUri, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use super::access;
use super::error::{Error, Result};
use super::extract::Json;
use crate::auth::Principal;
use crate::authz::Permission;
use crate::db::audit::AuditEvent;
use crate::db::cds::NewFeedback;
use crate::db::patients::Patient;
use crate::plugins::CallFor;
use crate::rules::cds::{HookCall, HookError, Offered};
use crate::rules::wire;

/// The most draft orders, selections or prefetch keys one call may carry.
const MAX_ITEMS: usize = 100;
/// The most feedback items one POST may carry.
const MAX_FEEDBACK: usize = 100;

/// CDS Hooks routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clinics/{clinic}/cds-services", get(discovery))
        .route("/clinics/{clinic}/cds-services/{service}", post(call))
        .route(
            "/clinics/{clinic}/cds-services/{service}/feedback",
            post(feedback),
        )
}

/// A caller of a clinic's CDS endpoints: one of its CDS clients (JWT with
/// `aud` = this exact URL) or any other credential.
pub struct CdsCaller(pub Principal);

impl FromRequestParts<AppState> for CdsCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let params = Path::<BTreeMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::not_found("clinic_not_found"))?;
        let clinic = params
            .get("clinic")
            .and_then(|c| c.parse::<Uuid>().ok())
            .unwrap_or_default();
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path().to_owned(), |u| u.path().to_owned());
        let base = match &state.settings.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let host = parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("");
                format!("http://{host}")
            }
        };
        let secret = super::principal::credential(parts)?;
        let mut principal = state
            .auth
            .authenticate_cds(clinic, &format!("{base}{path}"), secret)
            .await?;
        principal.request_id = super::principal::request_id(parts);
        Ok(CdsCaller(principal))
    }
}

/// The clinic's services, and the one the path names.
async fn service(state: &AppState, clinic: Uuid, id: &str) -> Result<Offered> {
    state
        .rules
        .offered(clinic)
        .await?
        .into_iter()
        .find(|o| o.id == id)
        .ok_or_else(|| Error::not_found("service_not_found"))
}

/// Discovery: the CDS services the clinic's enabled rule plugins offer.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/cds-services", tag = "cds-hooks",
    params(("clinic" = String, Path)),
    responses((status = 200, description = "`{\"services\": [...]}` (CDS Hooks discovery)"),
        (status = 401, description = "no valid credential"), (status = 404, description = "not found")))]
pub async fn discovery(
    State(state): State<AppState>,
    CdsCaller(who): CdsCaller,
    Path(clinic): Path<String>,
) -> Result<JsonResponse<Value>> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::CDS_CALL).await?;
    let services: Vec<Value> = state
        .rules
        .offered(clinic)
        .await?
        .iter()
        .map(|o| wire::service(&o.id, &o.service))
        .collect();
    Ok(JsonResponse(serde_json::json!({ "services": services })))
}

/// A hook call as CDS Hooks 2.0 sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookRequestBody {
    /// The hook that fired, e.g. `order-select`.
    pub hook: String,
    /// A UUID for this invocation.
    pub hook_instance: String,
    /// The EHR's FHIR base URL (not fetched from: the prefetch and the
    /// patient's memory are the data).
    #[serde(default)]
    pub fhir_server: Option<String>,
    /// An access token for `fhirServer` (never stored or logged).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub fhir_authorization: Option<Value>,
    /// The hook's context: `patientId` (our id or the MRN), `userId`,
    /// `encounterId`, `draftOrders` (a Bundle), `selections`.
    #[schema(value_type = Object)]
    pub context: Value,
    /// Prefetched resources by key; `null` means no data.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub prefetch: Option<serde_json::Map<String, Value>>,
}

fn text(context: &Value, key: &str) -> Result<Option<String>> {
    match context.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid(
            "invalid_context",
            format!("context.{key} must be a string of at most 256 characters"),
        )),
    }
}

/// The hook call the body describes, checked.
fn hook_call(body: HookRequestBody) -> Result<(String, HookCall)> {
    let bad = |m: &str| Error::invalid("invalid_hook_request", m.to_owned());
    if body.hook_instance.is_empty() || body.hook_instance.len() > 128 {
        return Err(bad("hookInstance is required (at most 128 characters)"));
    }
    if body.fhir_authorization.is_some() && body.fhir_server.is_none() {
        return Err(bad("fhirAuthorization requires fhirServer (cds-r-1)"));
    }
    if !body.context.is_object() {
        return Err(bad("context must be an object"));
    }
    let patient =
        text(&body.context, "patientId")?.ok_or_else(|| bad("context.patientId is required"))?;
    let draft_orders: Vec<Value> = match body.context.get("draftOrders") {
        None | Some(Value::Null) => Vec::new(),
        Some(bundle) => bundle
            .get("entry")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("context.draftOrders must be a FHIR Bundle"))?
            .iter()
            .filter_map(|e| e.get("resource").filter(|r| r.is_object()).cloned())
            .collect(),
    };
    let selections: Vec<String> = match body.context.get("selections") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| s.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("context.selections must be strings"))?,
        Some(_) => return Err(bad("context.selections must be an array")),
    };
    let prefetch: BTreeMap<String, Value> = body.prefetch.unwrap_or_default().into_iter().collect();
    if draft_orders.len() > MAX_ITEMS || selections.len() > MAX_ITEMS || prefetch.len() > MAX_ITEMS
    {
        return Err(bad(
            "at most 100 draft orders, selections and prefetch keys",
        ));
    }
    Ok((
        patient,
        HookCall {
            hook: body.hook,
            hook_instance: body.hook_instance,
            user_id: text(&body.context, "userId")?,
            encounter_id: text(&body.context, "encounterId")?,
            draft_orders,
            selections,
            prefetch,
        },
    ))
}

/// The clinic's live patient a CDS client names: by our id or by MRN, with
/// or without a `Patient/` prefix.
async fn patient(state: &AppState, clinic: Uuid, named: &str) -> Result<Patient> {
    let named = named.strip_prefix("Patient/").unwrap_or(named);
    let found = match named.parse::<Uuid>() {
        Ok(id) => state.db.patient(clinic, id).await?,
        Err(_) => None,
    };
    let found = match found {
        Some(p) => Some(p),
        None => state.db.patient_by_mrn(clinic, named).await?,
    };
    found.ok_or_else(|| Error::not_found("patient_not_found"))
}

/// Calls a CDS service: the rule runs for the patient in context and
/// answers with its cards.
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/cds-services/{service}", tag = "cds-hooks",
    params(("clinic" = String, Path), ("service" = String, Path)),
    request_body = HookRequestBody,
    responses((status = 200, description = "`{\"cards\": [...], \"systemActions\": [...]}`"),
        (status = 401, description = "no valid credential"), (status = 404, description = "no such service or patient"),
        (status = 412, description = "declared prefetch neither sent nor available"),
        (status = 422, description = "invalid request")))]
pub async fn call(
    State(state): State<AppState>,
    CdsCaller(who): CdsCaller,
    Path((clinic, id)): Path<(String, String)>,
    Json(body): Json<HookRequestBody>,
) -> Result<JsonResponse<Value>> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::CDS_CALL).await?;
    let offered = service(&state, clinic, &id).await?;
    let (named, call) = hook_call(body)?;
    let patient = patient(&state, clinic, &named).await?;
    access::audit(
        &state,
        &who,
        Some(clinic),
        Some(patient.id),
        Permission::CDS_CALL,
        "allowed",
    )
    .await?;
    let for_call = CallFor {
        clinic: Some(clinic),
        patient: Some(patient.id),
        request_id: who.request_id.clone(),
    };
    let deadline = Duration::from_millis(state.settings.cds_deadline_ms);
    let answer = state
        .rules
        .hook(
            &patient,
            &offered,
            call,
            (&for_call, &who.subject, deadline),
        )
        .await
        .map_err(|e| match e {
            HookError::WrongHook(hook) => Error::invalid(
                "wrong_hook",
                format!("this service answers the {hook} hook"),
            ),
            HookError::PrefetchMissing(keys) => Error::problem(
                StatusCode::PRECONDITION_FAILED,
                "prefetch_missing",
                format!("send the prefetch this service declares: {keys}"),
            ),
            HookError::Internal(e) => Error::Internal(e),
        })?;
    Ok(JsonResponse(wire::response(&answer.evaluation)))
}

/// Feedback on cards (CDS Hooks 2.0 `feedback`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct FeedbackBody {
    /// One item per card and outcome, 1 to 100.
    #[schema(min_items = 1, max_items = 100)]
    pub feedback: Vec<FeedbackItem>,
}

/// Feedback on one card.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackItem {
    /// The card's `uuid`.
    pub card: String,
    /// `accepted` or `overridden`.
    pub outcome: String,
    /// For `accepted`: the suggestions taken, `[{"id": uuid}]`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub accepted_suggestions: Option<Vec<Value>>,
    /// For `overridden`: `{reason?: Coding, userComment?: string}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub override_reason: Option<Value>,
    /// When the clinician acted, RFC 3339.
    pub outcome_timestamp: String,
}

/// The feedback item checked against the card it names (cds-fb-1…3).
fn checked(item: &FeedbackItem, card: &crate::db::cds::CardOwner) -> Result<NewFeedback> {
    let bad = |m: String| Error::invalid("invalid_feedback", m);
    let outcome_at = chrono::DateTime::parse_from_rfc3339(&item.outcome_timestamp)
        .map_err(|_| bad("outcomeTimestamp must be an RFC 3339 date-time".into()))?
        .with_timezone(&chrono::Utc);
    let offered: Vec<String> = serde_json::from_str(&card.suggestions).unwrap_or_default();
    let mut accepted = Vec::new();
    for s in item.accepted_suggestions.iter().flatten() {
        let id = s.get("id").and_then(Value::as_str).unwrap_or("");
        if !offered.iter().any(|o| o == id) {
            return Err(bad(format!("card {} has no suggestion {id:?}", card.id)));
        }
        accepted.push(id.to_owned());
    }
    let (mut reason, mut comment) = (None, None);
    match item.outcome.as_str() {
        "accepted" if accepted.is_empty() => {
            return Err(bad("accepted feedback names its acceptedSuggestions".into()));
        }
        "accepted" => {}
        "overridden" => {
            if let Some(o) = &item.override_reason {
                reason = o.get("reason").and_then(|r| {
                    let code = r.get("code")?.as_str()?;
                    let system = r.get("system").and_then(Value::as_str).unwrap_or("");
                    Some(format!("{system}|{code}"))
                });
                comment = o
                    .get("userComment")
                    .and_then(Value::as_str)
                    .map(|c| c.chars().take(1000).collect::<String>());
                if reason.is_none() && comment.is_none() {
                    return Err(bad("an overrideReason has a reason or a userComment".into()));
                }
            }
        }
        _ => return Err(bad("outcome must be accepted or overridden".into())),
    }
    Ok(NewFeedback {
        card: card.id,
        outcome: item.outcome.clone(),
        accepted_suggestions: accepted,
        override_reason: reason,
        user_comment: comment,
        outcome_at,
    })
}

/// Stores feedback on cards this service handed out; all or nothing.
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/cds-services/{service}/feedback", tag = "cds-hooks",
    params(("clinic" = String, Path), ("service" = String, Path)),
    request_body = FeedbackBody,
    responses((status = 200, description = "stored"), (status = 401, description = "no valid credential"),
        (status = 404, description = "a card this service did not hand out"), (status = 422, description = "invalid feedback")))]
pub async fn feedback(
    State(state): State<AppState>,
    CdsCaller(who): CdsCaller,
    Path((clinic, id)): Path<(String, String)>,
    Json(body): Json<FeedbackBody>,
) -> Result<JsonResponse<Value>> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::CDS_CALL).await?;
    if body.feedback.is_empty() || body.feedback.len() > MAX_FEEDBACK {
        return Err(Error::invalid(
            "invalid_feedback",
            "feedback holds 1 to 100 items",
        ));
    }
    let ids: Vec<Uuid> = body
        .feedback
        .iter()
        .map(|f| f.card.parse::<Uuid>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::not_found("card_not_found"))?;
    let cards = state.db.cds_cards(clinic, &ids).await?;
    let mut items = Vec::with_capacity(ids.len());
    let mut patients = Vec::new();
    for (item, card_id) in body.feedback.iter().zip(&ids) {
        let card = cards
            .iter()
            .find(|c| c.id == *card_id && c.service_id == id)
            .ok_or_else(|| Error::not_found("card_not_found"))?;
        items.push(checked(item, card)?);
        patients.push(card.patient_id);
    }
    patients.sort();
    patients.dedup();
    let mut event = AuditEvent::now(&who.subject, "cds", "feedback", "succeeded");
    event.clinic_id = Some(clinic);
    event.patient_id = (patients.len() == 1).then(|| patients[0]);
    event.request_id = who.request_id.clone();
    event.detail = Some(serde_json::json!({ "service": id, "cards": ids }).to_string());
    state
        .db
        .add_cds_feedback(&who.subject, &items, &event)
        .await?;
    Ok(JsonResponse(serde_json::json!({ "stored": items.len() })))
}
