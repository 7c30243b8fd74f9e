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
    modifiers(&Bearer, &SharedAnswers),
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

/// Declares on every operation the answers the shared layers give, where
/// the handler's annotation does not (a client generator and schemathesis
/// should meet no undocumented status): 401, 403, 429 and 503 (the audit
/// trail cannot be written) for every authenticated route, 404 where the
/// path names something, 400/413/415/422 where a body or a query is read;
/// every 4xx/5xx answers `application/problem+json`.
struct SharedAnswers;

impl utoipa::Modify for SharedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let problem = || {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = PUBLIC.contains(&path.as_str());
            for operation in [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                let queries = operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Query);
                let mut shared: Vec<(&str, &str)> = Vec::new();
                if !public {
                    shared.extend([
                        ("401", "no valid credential"),
                        ("403", "the caller's roles do not allow this"),
                        ("429", "rate limited; see Retry-After"),
                        (
                            "503",
                            "the audit trail cannot be written, so nothing was done",
                        ),
                    ]);
                }
                if path.contains('{') || queries {
                    shared.push(("404", "not found, or not visible to the caller"));
                }
                if operation.request_body.is_some() {
                    shared.extend([
                        ("400", "malformed body"),
                        ("413", "the body is too large"),
                        ("415", "unsupported media type"),
                        ("422", "invalid"),
                    ]);
                }
                if queries {
                    shared.extend([("400", "malformed query"), ("422", "invalid query")]);
                }
                let responses = &mut operation.responses.responses;
                for (status, description) in shared {
                    responses.entry(status.to_owned()).or_insert_with(|| {
                        RefOr::T(ResponseBuilder::new().description(description).build())
                    });
                }
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(response) = response
                        && !public
                        && (status.starts_with('4') || status.starts_with('5'))
                        && response.content.is_empty()
                    {
                        response
                            .content
                            .insert("application/problem+json".into(), problem());
                    }
                }
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

    /// Every operation documents the shared answers, each error as a
    /// problem document.
    #[test]
    fn every_operation_documents_its_errors() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                let public = super::PUBLIC.contains(&path.as_str());
                let mut wanted = Vec::new();
                if !public {
                    wanted.extend(["401", "403", "429"]);
                }
                if path.contains('{') {
                    wanted.push("404");
                }
                if operation.get("requestBody").is_some() {
                    wanted.extend(["400", "413", "415", "422"]);
                }
                for status in wanted {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
                for (status, response) in responses {
                    if !public && (status.starts_with('4') || status.starts_with('5')) {
                        assert!(
                            response["content"]
                                .get("application/problem+json")
                                .is_some(),
                            "{method} {path} {status} is not a problem document"
                        );
                    }
                }
            }
        }
    }

    /// A parameter documented as in the path is one of the path's
    /// `{names}`.
    #[test]
    fn path_parameters_are_in_the_path() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                for p in operation["parameters"].as_array().into_iter().flatten() {
                    if p["in"] == "path" {
                        let name = p["name"].as_str().unwrap();
                        assert!(
                            path.contains(&format!("{{{name}}}")),
                            "{method} {path}: `{name}` is not in the path"
                        );
                    }
                }
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
