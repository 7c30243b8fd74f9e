//! The OpenAPI document, generated from the handlers' annotations.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{clinics, documents, error, health, jobs, patients, plugins, search, tokens};
use crate::app::AppState;

/// The MedMemory REST API.
#[derive(OpenApi)]
#[openapi(
    info(title = "MedMemory", description = "A searchable, explainable memory of each patient."),
    paths(
        health::health, health::ready, health::metrics,
        clinics::create, clinics::list, clinics::read,
        patients::create, patients::list, patients::read, patients::update, patients::remove,
        documents::upload, documents::list, documents::read, documents::content,
        jobs::read, search::search, tokens::create,
        plugins::list, plugins::install, plugins::read, plugins::stats, plugins::clinic_list,
        plugins::enable, plugins::disable, plugins::configure,
    ),
    components(schemas(error::Problem)),
    modifiers(&Bearer),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `/openapi.json` and `/docs` (public).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/openapi.json",
            get(|| async { axum::Json(ApiDoc::openapi()) }),
        )
        .route("/docs", get(|| async { Html(DOCS) }))
}

const DOCS: &str = "<!doctype html><html><head><title>MedMemory API</title></head><body>\
<h1>MedMemory API</h1><p>The OpenAPI 3.1 document is at <a href=\"/openapi.json\">/openapi.json</a>; \
load it in any OpenAPI viewer.</p></body></html>";
