//! The OpenAPI document, generated from the handlers' annotations.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::AppState;
use super::{
    alerts, answers, audit, cds, cds_clients, clinics, conversations, documents, error, health,
    jobs, me, patients, plugins, policies, records, search, tokens,
};

/// The MedMemory REST API.
#[derive(OpenApi)]
#[openapi(
    info(title = "MedMemory", description = "A searchable, explainable memory of each patient."),
    paths(
        health::health, health::ready, health::metrics,
        clinics::create, clinics::list, clinics::read, clinics::set_retriever,
        patients::create, patients::list, patients::read, patients::update, patients::remove,
        patients::erase,
        records::list, records::read, records::create, records::fhir,
        documents::upload, documents::list, documents::read, documents::content, documents::remove,
        jobs::read, jobs::events, search::search,
        alerts::clinic_alerts, alerts::patient_alerts, alerts::act,
        cds::discovery, cds::call, cds::feedback,
        cds_clients::register, cds_clients::list, cds_clients::remove,
        answers::ask, conversations::conversations, conversations::conversation, conversations::feedback, tokens::create, tokens::list, tokens::revoke,
        audit::list, audit::verify,
        plugins::list, plugins::install, plugins::read, plugins::stats, plugins::clinic_list,
        plugins::enable, plugins::disable, plugins::configure,
        me::me, policies::read, policies::replace, policies::read_roles, policies::replace_roles,
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
        // The probes and metrics need no credential: `security: []` overrides
        // the document-wide bearer requirement for them.
        for path in PUBLIC {
            if let Some(get) = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.get.as_mut())
            {
                get.security = Some(Vec::new());
            }
        }
    }
}

/// Documented routes that answer without a credential.
const PUBLIC: [&str; 3] = ["/health", "/ready", "/metrics"];

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::ApiDoc;
    use utoipa::OpenApi;

    /// The probes are marked public; every other operation inherits the
    /// bearer requirement.
    #[test]
    fn only_the_probes_are_public() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert_eq!(doc["security"], serde_json::json!([{ "bearer": [] }]));
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let public = super::PUBLIC.contains(&path.as_str());
                assert_eq!(
                    operation.get("security") == Some(&serde_json::json!([])),
                    public,
                    "{method} {path}"
                );
            }
        }
    }

    /// The router's routes, read from the `.route(...)` calls of every file in
    /// `http/`: `(METHOD, path)` with the `/api/v1` prefix where it applies.
    fn routes_in_source() -> BTreeSet<(String, String)> {
        let own = include_str!("openapi.rs");
        let own = &own[..own.find("#[cfg(test)]").unwrap_or(own.len())];
        let files: [(&str, &str); 18] = [
            ("alerts", include_str!("alerts.rs")),
            ("answers", include_str!("answers.rs")),
            ("audit", include_str!("audit.rs")),
            ("cds", include_str!("cds.rs")),
            ("cds_clients", include_str!("cds_clients.rs")),
            ("clinics", include_str!("clinics.rs")),
            ("conversations", include_str!("conversations.rs")),
            ("documents", include_str!("documents.rs")),
            ("health", include_str!("health.rs")),
            ("jobs", include_str!("jobs.rs")),
            ("me", include_str!("me.rs")),
            ("openapi", own),
            ("patients", include_str!("patients.rs")),
            ("plugins", include_str!("plugins.rs")),
            ("policies", include_str!("policies.rs")),
            ("records", include_str!("records.rs")),
            ("search", include_str!("search.rs")),
            ("tokens", include_str!("tokens.rs")),
        ];
        let mut out = BTreeSet::new();
        for (name, text) in files {
            let prefix = if matches!(name, "health" | "openapi") {
                ""
            } else {
                "/api/v1"
            };
            let mut rest = text;
            while let Some(at) = rest.find(".route(") {
                rest = &rest[at + ".route(".len()..];
                let Some(open) = rest.find('"') else { break };
                let Some(len) = rest[open + 1..].find('"') else {
                    break;
                };
                let path = &rest[open + 1..open + 1 + len];
                // The routing expression: up to the `)` that closes `.route(`.
                let mut depth = 1;
                let mut end = 0;
                for (i, c) in rest.char_indices() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                let expr = &rest[open + 1 + len..end];
                for method in ["get", "post", "put", "patch", "delete"] {
                    let found = expr
                        .match_indices(&format!("{method}("))
                        .any(|(i, _)| i == 0 || !expr.as_bytes()[i - 1].is_ascii_alphanumeric());
                    if found {
                        out.insert((method.to_uppercase(), format!("{prefix}{path}")));
                    }
                }
            }
        }
        out
    }

    fn routes_in_openapi() -> BTreeSet<(String, String)> {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("openapi as json");
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
        out
    }

    #[test]
    fn every_route_of_the_router_is_in_the_openapi_document() {
        let mut source = routes_in_source();
        // The document itself and its viewer page.
        source.remove(&("GET".into(), "/openapi.json".into()));
        source.remove(&("GET".into(), "/docs".into()));
        let documented = routes_in_openapi();
        assert!(source.len() > 30, "found only {} routes", source.len());
        let undocumented: Vec<_> = source.difference(&documented).collect();
        let phantom: Vec<_> = documented.difference(&source).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from the OpenAPI document: {undocumented:?}"
        );
        assert!(
            phantom.is_empty(),
            "documented routes the router lacks: {phantom:?}"
        );
    }
}
