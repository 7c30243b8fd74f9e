//! `/clinics/{clinic}/patients/{patient}/records`: structured clinical data,
//! and `/fhir`: the patient's memory as a FHIR R4 Bundle.
//!
//! Records come from parsed documents or are posted here in batches. A posted
//! record is validated field by field, stored with its searchable rendering in
//! one transaction, and embedded before the response, so it is searchable as
//! soon as the client has its id.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::access::{self, List, PageQuery};
use super::error::{Error, Result};
use super::extract::{Json, Query};
use crate::auth::Principal;
use crate::authz::Permission;
use crate::db::records::{
    NewRecord, Provenance, Record, RecordFields, RecordFilter, RecordKind, effective_instant,
};
use crate::db::{new_id, now};
use crate::ingest::pipeline::{Origin, PipelineError};

/// Records at most per POST.
pub const MAX_BATCH: usize = 500;

/// Record routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/clinics/{clinic}/patients/{patient}/records",
            get(list).post(create),
        )
        .route(
            "/clinics/{clinic}/patients/{patient}/records/{record}",
            get(read),
        )
        .route("/clinics/{clinic}/patients/{patient}/fhir", get(fhir))
}

/// Filters and paging of the record list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecordQuery {
    /// observation, medication, condition, allergy, encounter or note.
    pub kind: Option<String>,
    /// A code of any of the record's codings, e.g. `4548-4`.
    pub code: Option<String>,
    /// Effective at or after this date or date-time.
    pub since: Option<String>,
    /// Effective before this date or date-time.
    pub until: Option<String>,
    /// Items per page, 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Parses a `since`/`until` bound.
pub fn time_bound(
    value: Option<&str>,
    name: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    match value {
        None => Ok(None),
        Some(v) => effective_instant(v).map(Some).ok_or_else(|| {
            Error::invalid(
                "invalid_filter",
                format!("{name} must be a date (YYYY-MM-DD) or an RFC 3339 date-time"),
            )
        }),
    }
}

/// Lists a patient's records.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/patients/{patient}/records", tag = "records",
    params(("clinic" = String, Path), ("patient" = String, Path), RecordQuery),
    responses((status = 200, body = List<Record>), (status = 404, description = "not found"), (status = 422, description = "invalid filter")))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
    Query(query): Query<RecordQuery>,
) -> Result<JsonResponse<List<Record>>> {
    let patient = access::patient(&state, &who, &clinic, &patient, Permission::RECORD_READ).await?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .page()?;
    let kind = match query.kind.as_deref() {
        None => None,
        Some(raw) => Some(RecordKind::parse(raw).ok_or_else(|| {
            Error::invalid(
                "invalid_filter",
                format!("kind must be one of {}", RecordKind::list()),
            )
        })?),
    };
    if query
        .code
        .as_ref()
        .is_some_and(|c| c.is_empty() || c.len() > 100)
    {
        return Err(Error::invalid(
            "invalid_filter",
            "code must be 1 to 100 characters",
        ));
    }
    let filter = RecordFilter {
        kind,
        code: query.code.clone(),
        since: time_bound(query.since.as_deref(), "since")?,
        until: time_bound(query.until.as_deref(), "until")?,
    };
    let records = state
        .db
        .records(
            patient.clinic_id,
            patient.id,
            &filter,
            page.after,
            page.limit + 1,
        )
        .await?;
    Ok(JsonResponse(List::from_overfetch(records, page, |r| r.id)))
}

/// Reads one record.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/patients/{patient}/records/{record}", tag = "records",
    params(("clinic" = String, Path), ("patient" = String, Path), ("record" = String, Path)),
    responses((status = 200, body = Record), (status = 404, description = "not found")))]
pub async fn read(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient, record)): Path<(String, String, String)>,
) -> Result<JsonResponse<Record>> {
    let patient = access::patient(&state, &who, &clinic, &patient, Permission::RECORD_READ).await?;
    let id = access::parse_id(&record, "record_not_found")?;
    state
        .db
        .record(patient.clinic_id, patient.id, id)
        .await?
        .map(JsonResponse)
        .ok_or_else(|| Error::not_found("record_not_found"))
}

/// Records to add.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRecords {
    /// 1 to 500 records. Each is read on its own, so a problem names the
    /// record (`records[3].kind ...`).
    #[schema(value_type = Vec<RecordFields>)]
    pub records: Vec<serde_json::Value>,
}

/// Records as stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Created {
    /// The stored records, in the order posted.
    pub items: Vec<Record>,
}

fn bounded(value: &Option<String>, max: usize, what: &str, at: usize) -> Result<Option<String>> {
    match value.as_deref().map(str::trim) {
        None => Ok(None),
        Some(v) if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) => {
            Err(Error::invalid(
                "invalid_record",
                format!("records[{at}].{what} must be 1 to {max} printable characters"),
            ))
        }
        Some(v) => Ok(Some(v.to_owned())),
    }
}

fn finite(value: Option<f64>, what: &str, at: usize) -> Result<Option<f64>> {
    match value {
        Some(v) if !v.is_finite() => Err(Error::invalid(
            "invalid_record",
            format!("records[{at}].{what} must be a finite number"),
        )),
        other => Ok(other),
    }
}

/// Reads one posted record: its shape (the kind parsed once, here), then
/// every field's bounds.
pub fn parse_record(raw: serde_json::Value, at: usize) -> Result<RecordFields> {
    let kind_ok = raw
        .get("kind")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|k| RecordKind::parse(k).is_some());
    if !kind_ok {
        return Err(Error::invalid(
            "invalid_record",
            format!("records[{at}].kind must be one of {}", RecordKind::list()),
        ));
    }
    let fields: RecordFields = serde_json::from_value(raw)
        .map_err(|e| Error::invalid("invalid_record", format!("records[{at}]: {e}")))?;
    validate(fields, at)
}

/// Checks and normalises one posted record.
pub fn validate(mut f: RecordFields, at: usize) -> Result<RecordFields> {
    let bad = |detail: String| Error::invalid("invalid_record", detail);
    f.display = bounded(&Some(f.display.clone()), 500, "display", at)?.unwrap_or_default();
    if f.codes.len() > 20 {
        return Err(bad(format!("records[{at}].codes holds at most 20 codings")));
    }
    for coding in &mut f.codes {
        coding.system =
            bounded(&Some(coding.system.clone()), 200, "codes[].system", at)?.unwrap_or_default();
        coding.code =
            bounded(&Some(coding.code.clone()), 100, "codes[].code", at)?.unwrap_or_default();
        coding.display = bounded(&coding.display, 500, "codes[].display", at)?;
    }
    f.status = bounded(&f.status, 100, "status", at)?;
    f.interpretation = bounded(&f.interpretation, 100, "interpretation", at)?;
    if let Some(value) = &mut f.value {
        value.value = finite(value.value, "value.value", at)?;
        value.text = bounded(&value.text, 2000, "value.text", at)?;
        value.unit = bounded(&value.unit, 50, "value.unit", at)?;
    }
    if let Some(range) = &mut f.reference_range {
        range.low = finite(range.low, "reference_range.low", at)?;
        range.high = finite(range.high, "reference_range.high", at)?;
        range.text = bounded(&range.text, 100, "reference_range.text", at)?;
    }
    let start = match &f.effective {
        None => None,
        Some(t) => Some(effective_instant(t).ok_or_else(|| {
            bad(format!(
                "records[{at}].effective must be a date or an RFC 3339 date-time"
            ))
        })?),
    };
    if let Some(t) = &f.effective_end {
        let end = effective_instant(t).ok_or_else(|| {
            bad(format!(
                "records[{at}].effective_end must be a date or an RFC 3339 date-time"
            ))
        })?;
        if start.is_some_and(|s| end < s) {
            return Err(bad(format!(
                "records[{at}].effective_end is before effective"
            )));
        }
    }
    if f.details.len() > 50 {
        return Err(bad(format!(
            "records[{at}].details holds at most 50 entries"
        )));
    }
    for d in &mut f.details {
        d.name = bounded(&Some(d.name.clone()), 100, "details[].name", at)?.unwrap_or_default();
        // Values may be free text over several lines (a note's body).
        if d.value.chars().count() > 20_000 {
            return Err(bad(format!(
                "records[{at}].details[].value is longer than 20000 characters"
            )));
        }
    }
    Ok(f)
}

/// Adds records to a patient (batch).
#[utoipa::path(post, path = "/api/v1/clinics/{clinic}/patients/{patient}/records", tag = "records",
    params(("clinic" = String, Path), ("patient" = String, Path)), request_body = NewRecords,
    responses((status = 201, body = Created), (status = 404, description = "not found"), (status = 422, description = "invalid"),
        (status = 503, description = "model not loaded")))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
    Json(body): Json<NewRecords>,
) -> Result<(StatusCode, JsonResponse<Created>)> {
    let patient =
        access::patient(&state, &who, &clinic, &patient, Permission::RECORD_CREATE).await?;
    if body.records.is_empty() || body.records.len() > MAX_BATCH {
        return Err(Error::invalid(
            "invalid_record",
            format!("post 1 to {MAX_BATCH} records"),
        ));
    }
    let records: Vec<NewRecord> = body
        .records
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            Ok(NewRecord {
                id: new_id(),
                fields: parse_record(raw, i)?,
                provenance: Provenance::default(),
            })
        })
        .collect::<Result<_>>()?;
    let origin = Origin {
        clinic: patient.clinic_id,
        patient: patient.id,
        document: None,
    };
    let indexer = state.ingest.indexer();
    let prepared = indexer
        .prepare(&origin, &records, Vec::new())
        .await
        .map_err(pipeline_error)?;
    let db = &state.db;
    indexer
        .commit(&origin, &prepared, async |chunks| {
            db.add_records(patient.clinic_id, patient.id, &records, chunks)
                .await
                .map(|()| true)
        })
        .await
        .map_err(pipeline_error)?;
    state.ingest.announce(crate::ingest::Arrival {
        clinic: patient.clinic_id,
        patient: patient.id,
        records: records.iter().map(|r| r.id).collect(),
    });
    let mut items = Vec::with_capacity(records.len());
    for record in &records {
        if let Some(stored) = state
            .db
            .record(patient.clinic_id, patient.id, record.id)
            .await?
        {
            items.push(stored);
        }
    }
    tracing::info!(clinic = %patient.clinic_id, records = items.len(), "records added");
    Ok((StatusCode::CREATED, JsonResponse(Created { items })))
}

fn pipeline_error(e: PipelineError) -> Error {
    match e {
        PipelineError::ModelUnavailable => Error::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "model_unavailable",
            "the embedding model is not loaded yet",
        ),
        other => Error::Internal(other.into()),
    }
}

/// The patient and every record as a FHIR R4 Bundle.
#[utoipa::path(get, path = "/api/v1/clinics/{clinic}/patients/{patient}/fhir", tag = "records",
    params(("clinic" = String, Path), ("patient" = String, Path)),
    responses((status = 200, description = "a FHIR R4 Bundle (application/fhir+json)"), (status = 404, description = "not found")))]
pub async fn fhir(
    State(state): State<AppState>,
    who: Principal,
    Path((clinic, patient)): Path<(String, String)>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let patient = access::patient(&state, &who, &clinic, &patient, Permission::RECORD_READ).await?;
    let records = state.db.all_records(patient.clinic_id, patient.id).await?;
    let bundle = crate::fhir::bundle(&patient, &records, now());
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/fhir+json")],
        bundle.to_string(),
    )
        .into_response())
}
