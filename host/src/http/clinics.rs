//! `/clinics`: the tenants. Creating and listing them is for platform admins.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json as JsonResponse, Router};
use serde::Deserialize;

use super::AppState;
use super::access::{self, List, PageQuery};
use super::error::{Error, Result};
use super::extract::{Json, Query};
use crate::auth::Principal;
use crate::authz::{Domain, Permission};
use crate::db::Unique;
use crate::db::clinics::Clinic;

/// Clinic routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clinics", get(list).post(create))
        .route("/clinics/{clinic}", get(read))
        .route("/clinics/{clinic}/retriever", put(set_retriever))
}

/// A clinic's choice of retriever.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrieverChoice {
    /// The name of a retriever plugin enabled in the clinic (`hybrid`,
    /// `records-first`, `recency` or one the clinic installed); null for the
    /// default (`hybrid`).
    pub retriever: Option<String>,
}

/// Chooses the retriever the clinic's `/ask` and `/search` use by default.
#[utoipa::path(put, path = "/api/v1/clinics/{clinic}/retriever", tag = "clinics", request_body = RetrieverChoice,
    params(("clinic" = String, Path)),
    responses((status = 200, body = Clinic), (status = 404, description = "not found or not visible"),
        (status = 422, description = "no enabled retriever of that name")))]
pub async fn set_retriever(
    State(state): State<AppState>,
    who: Principal,
    Path(clinic): Path<String>,
    Json(body): Json<RetrieverChoice>,
) -> Result<JsonResponse<Clinic>> {
    let id = access::clinic(&state, &who, &clinic, Permission::PLUGIN_UPDATE).await?;
    let name = body.retriever.as_deref().map(str::trim);
    if let Some(name) = name
        && (name.is_empty()
            || name.len() > 64
            || !state
                .retrieval
                .is_available(id, name)
                .await
                .map_err(Error::Internal)?)
    {
        return Err(Error::invalid(
            "unknown_retriever",
            "retriever must name a retriever plugin enabled in this clinic",
        ));
    }
    state.db.set_clinic_retriever(id, name).await?;
    access::audit_change(
        &state,
        &who,
        Some(id),
        Permission::PLUGIN_UPDATE,
        serde_json::json!({ "clinic": id, "retriever": name }),
    )
    .await?;
    stored(&state, id).await
}

/// A clinic to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClinic {
    /// Display name, 1 to 200 characters, unique.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

/// Creates a clinic.
#[utoipa::path(post, path = "/api/v1/clinics", tag = "clinics", request_body = NewClinic,
    responses((status = 201, body = Clinic), (status = 409, description = "name taken"), (status = 422, description = "invalid name")))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<NewClinic>,
) -> Result<(StatusCode, JsonResponse<Clinic>)> {
    access::authorize(&state, &who, Domain::Platform, Permission::CLINIC_CREATE)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "invalid_clinic_name",
            "name must be 1 to 200 printable characters",
        ));
    }
    match state.db.create_clinic(name).await {
        Ok(clinic) => {
            tracing::info!(clinic = %clinic.id, "clinic created");
            access::audit_change(
                &state,
                &who,
                Some(clinic.id),
                Permission::CLINIC_CREATE,
                serde_json::json!({ "clinic": clinic.id }),
            )
            .await?;
            Ok((StatusCode::CREATED, JsonResponse(clinic)))
        }
        Err(e) if crate::db::unique_violation(&e) == Some(Unique::ClinicName) => Err(
            Error::conflict("clinic_name_taken", "a clinic with this name exists"),
        ),
        Err(e) => Err(e.into()),
    }
}

/// Lists clinics.
#[utoipa::path(get, path = "/api/v1/clinics", tag = "clinics", params(PageQuery), responses((status = 200, body = List<Clinic>)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Query(query): Query<PageQuery>,
) -> Result<JsonResponse<List<Clinic>>> {
    access::authorize(&state, &who, Domain::Platform, Permission::CLINIC_LIST)?;
    let page = query.page()?;
    let clinics = state.db.clinics(page.after, page.limit + 1).await?;
    Ok(JsonResponse(List::from_overfetch(clinics, page, |c| c.id)))
}

/// Reads one clinic.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}", tag = "clinics", params(("clinic" = String, Path)),
    responses((status = 200, body = Clinic), (status = 404, description = "not found or not visible")))]
pub async fn read(
    State(state): State<AppState>,
    who: Principal,
    Path(clinic): Path<String>,
) -> Result<JsonResponse<Clinic>> {
    let id = access::clinic(&state, &who, &clinic, Permission::CLINIC_READ).await?;
    stored(&state, id).await
}

/// The clinic as stored now.
async fn stored(state: &AppState, id: uuid::Uuid) -> Result<JsonResponse<Clinic>> {
    let clinic = state
        .db
        .clinic(id)
        .await?
        .ok_or_else(|| Error::not_found("clinic_not_found"))?;
    Ok(JsonResponse(clinic))
}
