//! `/clinics/{clinic}/patients`: the people a clinic remembers.
//!
//! Input is parsed into [`PatientFields`] before it goes anywhere: a name is
//! trimmed and non-empty, a birth date is a real date not in the future, sex is
//! one of the four FHIR administrative genders, an MRN is short and printable.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use chrono::NaiveDate;
use serde::Deserialize;

use super::AppState;
use super::access::{self, List, PageQuery};
use super::error::{Error, Result};
use super::extract::{Json, Query};
use crate::auth::Principal;
use crate::authz::Permission;
use crate::db::patients::{Erasure, Patient, PatientFields, PatientFilter};
use crate::memory::Erased;

/// Patient routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clinics/{clinic}/patients", get(list).post(create))
        .route(
            "/clinics/{clinic}/patients/{patient}",
            get(read).patch(update).delete(remove),
        )
        .route("/clinics/{clinic}/patients/{patient}/erase", post(erase))
}

/// A patient to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPatient {
    /// Given name, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub given_name: String,
    /// Family name, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub family_name: String,
    /// Date of birth, YYYY-MM-DD.
    #[schema(format = Date)]
    pub birth_date: String,
    /// female, male, other or unknown.
    #[schema(pattern = "^(female|male|other|unknown)$")]
    pub sex: String,
    /// Medical record number, unique in the clinic, 1 to 64 characters.
    #[schema(min_length = 1, max_length = 64)]
    pub mrn: Option<String>,
}

/// Fields to change; absent fields stay as they are, `"mrn": null` clears it.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientChanges {
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Date of birth, YYYY-MM-DD.
    pub birth_date: Option<String>,
    /// female, male, other or unknown.
    #[schema(pattern = "^(female|male|other|unknown)$")]
    pub sex: Option<String>,
    /// Medical record number.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub mrn: Option<Option<String>>,
}

/// Distinguishes an absent field from an explicit null.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

fn name(value: &str, field: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 100 || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            "invalid_patient",
            format!("{field} must be 1 to 100 printable characters"),
        ));
    }
    Ok(value.to_owned())
}

fn birth_date(value: &str) -> Result<NaiveDate> {
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
        Error::invalid("invalid_patient", "birth_date must be a date as YYYY-MM-DD")
    })?;
    let today = chrono::Utc::now().date_naive();
    if date > today || date < NaiveDate::from_ymd_opt(1850, 1, 1).unwrap_or(date) {
        return Err(Error::invalid(
            "invalid_patient",
            "birth_date must be between 1850 and today",
        ));
    }
    Ok(date)
}

fn sex(value: &str) -> Result<String> {
    match value {
        "female" | "male" | "other" | "unknown" => Ok(value.to_owned()),
        _ => Err(Error::invalid(
            "invalid_patient",
            "sex must be female, male, other or unknown",
        )),
    }
}

fn mrn(value: Option<&str>) -> Result<Option<String>> {
    let Some(value) = value.map(str::trim) else {
        return Ok(None);
    };
    let printable = value.chars().all(|c| c.is_ascii_graphic());
    if value.is_empty() || value.len() > 64 || !printable {
        return Err(Error::invalid(
            "invalid_patient",
            "mrn must be 1 to 64 printable ASCII characters",
        ));
    }
    Ok(Some(value.to_owned()))
}

impl NewPatient {
    fn parse(&self) -> Result<PatientFields> {
        Ok(PatientFields {
            given_name: name(&self.given_name, "given_name")?,
            family_name: name(&self.family_name, "family_name")?,
            birth_date: birth_date(&self.birth_date)?,
            sex: sex(&self.sex)?,
            mrn: mrn(self.mrn.as_deref())?,
        })
    }
}

impl PatientChanges {
    fn apply(&self, current: &Patient) -> Result<PatientFields> {
        Ok(PatientFields {
            given_name: match &self.given_name {
                Some(v) => name(v, "given_name")?,
                None => current.given_name.clone(),
            },
            family_name: match &self.family_name {
                Some(v) => name(v, "family_name")?,
                None => current.family_name.clone(),
            },
            birth_date: match &self.birth_date {
                Some(v) => birth_date(v)?,
                None => current.birth_date,
            },
            sex: match &self.sex {
                Some(v) => sex(v)?,
                None => current.sex.clone(),
            },
            mrn: match &self.mrn {
                Some(v) => mrn(v.as_deref())?,
                None => current.mrn.clone(),
            },
        })
    }
}

fn mrn_conflict(e: sqlx::Error) -> Error {
    if crate::db::unique_violation(&e) == Some(crate::db::Unique::PatientMrn) {
        Error::conflict("mrn_taken", "another patient of this clinic has this MRN")
    } else {
        e.into()
    }
}

/// Creates a patient.
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/patients", tag = "patients", request_body = NewPatient,
    params(("clinic" = String, Path)),
    responses((status = 201, body = Patient), (status = 409, description = "MRN taken"), (status = 422, description = "invalid")))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    Path(clinic): Path<String>,
    Json(body): Json<NewPatient>,
) -> Result<(StatusCode, JsonResponse<Patient>)> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::PATIENT_CREATE).await?;
    let fields = body.parse()?;
    let patient = state
        .db
        .create_patient(clinic, &fields)
        .await
        .map_err(mrn_conflict)?;
    tracing::info!(clinic = %clinic, patient = %patient.id, "patient created");
    Ok((StatusCode::CREATED, JsonResponse(patient)))
}

/// Filters of the patient list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatientQuery {
    /// Prefix of the family name, given name or MRN.
    pub q: Option<String>,
    /// Exact date of birth, YYYY-MM-DD.
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub birth_date: Option<String>,
    /// Items per page, 1 to 500.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    #[param(
        pattern = r"^$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub cursor: Option<String>,
}

/// Lists a clinic's patients.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/patients", tag = "patients",
    params(("clinic" = String, Path), PatientQuery), responses((status = 200, body = List<Patient>)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path(clinic): Path<String>,
    Query(query): Query<PatientQuery>,
) -> Result<JsonResponse<List<Patient>>> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::PATIENT_READ).await?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .page()?;
    let filter = PatientFilter {
        q: query
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_owned),
        birth_date: query
            .birth_date
            .as_deref()
            .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d"))
            .transpose()
            .map_err(|_| Error::bad_request("invalid_query", "birth_date must be YYYY-MM-DD"))?,
    };
    let patients = state
        .db
        .patients(clinic, &filter, page.after, page.limit + 1)
        .await?;
    Ok(JsonResponse(List::from_overfetch(patients, page, |p| p.id)))
}

/// Reads one patient.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/patients/{patient}", tag = "patients",
    params(("clinic" = String, Path), ("patient" = String, Path)),
    responses((status = 200, body = Patient), (status = 404, description = "not found or not visible")))]
pub async fn read(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
) -> Result<JsonResponse<Patient>> {
    let patient =
        access::patient(&state, &who, &clinic, &patient, Permission::PATIENT_READ).await?;
    Ok(JsonResponse(patient))
}

/// Changes a patient.
#[utoipa::path(patch, path = "/api/v1/clinics/{clinic}/patients/{patient}", tag = "patients", request_body = PatientChanges,
    params(("clinic" = String, Path), ("patient" = String, Path)),
    responses((status = 200, body = Patient), (status = 404, description = "not found"), (status = 422, description = "invalid")))]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
    Json(changes): Json<PatientChanges>,
) -> Result<JsonResponse<Patient>> {
    let current =
        access::patient(&state, &who, &clinic, &patient, Permission::PATIENT_UPDATE).await?;
    let fields = changes.apply(&current)?;
    let updated = state
        .db
        .update_patient(current.clinic_id, current.id, &fields)
        .await
        .map_err(mrn_conflict)?
        .ok_or_else(|| Error::not_found("patient_not_found"))?;
    Ok(JsonResponse(updated))
}

/// Soft-deletes a patient (erasure is a separate, audited operation).
#[utoipa::path(delete, path = "/api/v1/clinics/{clinic}/patients/{patient}", tag = "patients",
    params(("clinic" = String, Path), ("patient" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 404, description = "not found")))]
pub async fn remove(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
) -> Result<StatusCode> {
    let current =
        access::patient(&state, &who, &clinic, &patient, Permission::PATIENT_DELETE).await?;
    if !state
        .db
        .soft_delete_patient(current.clinic_id, current.id)
        .await?
    {
        return Err(Error::not_found("patient_not_found"));
    }
    tracing::info!(clinic = %current.clinic_id, patient = %current.id, "patient soft-deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Erases a patient irreversibly: records, documents and their bytes, chunks,
/// vectors (from every version of the index) and cached embeddings. Works on
/// soft-deleted patients too. The audit trail and the erasure's own record
/// survive. 200 when everything is gone; 202 when the database part is done
/// and the rest will be finished at the next start (a store failed).
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/patients/{patient}/erase", tag = "patients",
    params(("clinic" = String, Path), ("patient" = String, Path)),
    responses((status = 200, body = Erasure), (status = 202, body = Erasure), (status = 404, description = "not found")))]
pub async fn erase(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
) -> Result<(StatusCode, JsonResponse<Erasure>)> {
    let clinic = access::clinic(&state, &who, &clinic, Permission::PATIENT_ERASE).await?;
    let id = access::parse_id(&patient, "patient_not_found")?;
    let erased = state
        .forget
        .erase_patient(clinic, id, &who.subject, who.request_id.as_deref())
        .await?
        .ok_or_else(|| Error::not_found("patient_not_found"))?;
    match erased {
        Erased::Complete(done) => {
            tracing::info!(clinic = %clinic, erasure = %done.id, "patient erased");
            Ok((StatusCode::OK, JsonResponse(done)))
        }
        Erased::Pending(erasure, e) => {
            tracing::error!(clinic = %clinic, erasure = %erasure.id, error = %e, "erasure pending: vectors or blobs remain");
            Ok((StatusCode::ACCEPTED, JsonResponse(erasure)))
        }
    }
}
