//! Authorization that admins edit: every route is public, or 401 without
//! credentials and 403 for a role without the permission; every clinic or
//! patient route is 404 to another clinic; policies are validated, atomic,
//! audited, live, guarded against escalation and the loss of the last clinic
//! admin (also under concurrent demotions), and reach a second instance.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use medmemory_tests::oidc::{Issuer, SigningKey, server_env};
use medmemory_tests::{Options, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

/// Routes anyone may call.
const PUBLIC: [&str; 5] = ["/health", "/ready", "/metrics", "/openapi.json", "/docs"];
/// Routes any authenticated caller may call, whatever its roles.
const ANY_AUTHENTICATED: [&str; 1] = ["/api/v1/me"];

/// A server trusting an in-process issuer, so tests can sign people in.
struct World {
    server: TestServer,
    issuer: Issuer,
    key: SigningKey,
}

impl World {
    async fn start(database_url: Option<String>) -> World {
        let key = SigningKey::generate(jsonwebtoken::Algorithm::RS256);
        let issuer = Issuer::start(&[&key]).await;
        let server = TestServer::start_with(Options {
            database_url,
            env: server_env(&issuer.issuer, 60_000),
        })
        .await;
        World {
            server,
            issuer,
            key,
        }
    }

    /// An access token for `sub`.
    fn token(&self, sub: &str) -> String {
        self.key.sign(&self.issuer.claims(sub), Some("at+jwt"))
    }

    /// Signs `sub` in; returns its token and `user:<id>` subject.
    async fn sign_in(&self, sub: &str) -> (String, String) {
        let token = self.token(sub);
        let (status, me) = self
            .server
            .call(Method::GET, "/me", Some(&token), None)
            .await;
        assert_eq!(status, 200, "{me}");
        (token, me["subject"].as_str().unwrap().to_owned())
    }

    async fn set_roles(
        &self,
        as_token: &str,
        clinic: &str,
        subject: &str,
        roles: &[&str],
    ) -> (u16, Value) {
        self.server
            .call(
                Method::PUT,
                &format!("/clinics/{clinic}/roles/{subject}"),
                Some(as_token),
                Some(json!({ "roles": roles })),
            )
            .await
    }
}

/// Ids to put into route templates.
struct Ids {
    values: BTreeMap<&'static str, String>,
}

impl Ids {
    fn fill(&self, template: &str) -> String {
        let mut path = template.to_owned();
        for (name, value) in &self.values {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        assert!(!path.contains('{'), "no id for {template}");
        path
    }
}

/// A body that gets each route past its extractors to the access check.
fn body_for(method: &Method, template: &str, clinic: &str) -> Option<(&'static str, Vec<u8>)> {
    let json = |v: Value| Some(("application/json", v.to_string().into_bytes()));
    match (method.as_str(), template) {
        ("POST", "/api/v1/clinics") => json(json!({"name": "Another"})),
        ("POST", "/api/v1/clinics/{clinic}/patients") => json(
            json!({"given_name": "Ana", "family_name": "Ruiz", "birth_date": "1990-01-01", "sex": "female"}),
        ),
        ("POST", "/api/v1/clinics/{clinic}/patients/{patient}/records") => {
            json(json!({"records": []}))
        }
        ("POST", "/api/v1/clinics/{clinic}/patients/{patient}/ask") => {
            json(json!({"question": "x"}))
        }
        (
            "POST",
            "/api/v1/clinics/{clinic}/patients/{patient}/conversations/{conversation}/messages/{message}/feedback",
        ) => json(json!({"rating": 3})),
        ("POST", "/api/v1/clinics/{clinic}/patients/{patient}/search") => {
            json(json!({"query": "x"}))
        }
        ("POST", "/api/v1/clinics/{clinic}/patients/{patient}/documents") => {
            Some(("text/plain", b"Routine visit.".to_vec()))
        }
        ("POST", "/api/v1/plugins") => Some(("application/wasm", b"\0asm".to_vec())),
        ("POST", "/api/v1/tokens") => {
            json(json!({"name": "t", "clinic": clinic, "role": "clinician"}))
        }
        ("PUT", "/api/v1/clinics/{clinic}/roles/{subject}") => json(json!({"roles": []})),
        ("POST", "/api/v1/clinics/{clinic}/cds-services/{service}") => json(json!({
            "hook": "patient-view", "hookInstance": "d3f1b2c4", "context": {"patientId": "x"}
        })),
        ("POST", "/api/v1/clinics/{clinic}/cds-services/{service}/feedback") => {
            json(json!({"feedback": []}))
        }
        ("POST", "/api/v1/clinics/{clinic}/cds-clients") => json(json!({
            "name": "EHR", "issuer": "https://ehr.example.org", "jku": "https://ehr.example.org/jwks"
        })),
        ("POST" | "PUT" | "PATCH", _) => json(json!({})),
        _ => None,
    }
}

async fn send(
    server: &TestServer,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: Option<(&'static str, Vec<u8>)>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = server.http.request(method.clone(), server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some((content_type, bytes)) = body {
        request = request.header("content-type", content_type).body(bytes);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Every `(method, path template)` the OpenAPI document lists (the host's
/// unit tests check it lists every route of the router).
async fn routes(server: &TestServer) -> Vec<(Method, String)> {
    let doc: Value = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = vec![
        (Method::GET, "/openapi.json".to_owned()),
        (Method::GET, "/docs".to_owned()),
    ];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.push((method.to_uppercase().parse().unwrap(), path.clone()));
        }
    }
    out
}

/// A clinic with a patient, a document, a job and a token, and the ids of all.
async fn populated_clinic(world: &World, name: &str) -> Ids {
    let server = &world.server;
    let clinic = server.create_clinic(name).await;
    let clinician = server.clinic_token(&clinic, "clinician").await;
    let patient = server
        .create_patient(&clinician, &clinic, "Maria", "Lopez")
        .await;
    let (status, upload) = server
        .upload(
            &clinician,
            &clinic,
            &patient,
            "text/plain",
            b"Penicillin caused hives.".to_vec(),
        )
        .await;
    assert_eq!(status, 202, "{upload}");
    let job = upload["job"]["id"].as_str().unwrap().to_owned();
    server.wait_job(&clinician, &clinic, &job).await;
    let (_, records) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic}/patients/{patient}/records"),
            Some(&clinician),
            Some(json!({"records": [{"kind": "observation", "display": "Hemoglobin A1c",
                "codes": [{"system": "http://loinc.org", "code": "4548-4", "display": "Hemoglobin A1c"}]}]})),
        )
        .await;
    let record = records["items"][0]["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let (_, tokens) = server
        .call(
            Method::GET,
            &format!("/tokens?clinic={clinic}"),
            Some(&server.admin),
            None,
        )
        .await;
    let token = tokens["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, plugins) = server
        .call(Method::GET, "/plugins", Some(&server.admin), None)
        .await;
    let plugin = plugins["items"][0]["id"]
        .as_str()
        .or_else(|| plugins[0]["id"].as_str())
        .unwrap_or_else(|| panic!("no plugin: {plugins}"))
        .to_owned();
    let (_, subject) = world.sign_in(&format!("visitor-of-{name}")).await;
    let mut values = BTreeMap::new();
    values.insert("clinic", clinic);
    values.insert("patient", patient);
    values.insert(
        "document",
        upload["document"]["id"].as_str().unwrap().to_owned(),
    );
    values.insert("job", job);
    values.insert("record", record);
    values.insert("token", token);
    values.insert("plugin", plugin);
    values.insert("subject", subject);
    values.insert("id", uuid::Uuid::now_v7().to_string());
    values.insert("conversation", uuid::Uuid::now_v7().to_string());
    values.insert("message", uuid::Uuid::now_v7().to_string());
    values.insert("alert", uuid::Uuid::now_v7().to_string());
    values.insert("action", "ack".to_owned());
    values.insert("service", "critical-labs".to_owned());
    values.insert("client", uuid::Uuid::now_v7().to_string());
    Ids { values }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_public_or_authenticated_and_authorized() {
    let world = World::start(None).await;
    let ids = populated_clinic(&world, "Riverside").await;
    let clinic = ids.values["clinic"].clone();
    let server = &world.server;
    // A custom role that holds nothing but the clinic itself.
    let (visitor, subject) = world.sign_in("visitor").await;
    let (status, body) = server
        .call(
            Method::PUT,
            &format!("/clinics/{clinic}/policies"),
            Some(&server.admin),
            Some(json!({
                "roles": {"visitor": [{"resource": "clinic", "action": "read"}]},
                "assignments": [{"subject": subject, "role": "visitor"}]
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let routes = routes(server).await;
    assert!(routes.len() > 35, "only {} routes", routes.len());
    let mut checked = 0;
    for (method, template) in &routes {
        let path = ids.fill(template);
        let body = || body_for(method, template, &clinic);
        if PUBLIC.contains(&template.as_str()) {
            let (status, _, _) = send(server, method, &path, None, body()).await;
            assert!(
                status == 200 || (template == "/ready" && status == 503),
                "{method} {template} is public but answered {status}"
            );
            continue;
        }
        let (status, headers, problem) = send(server, method, &path, None, body()).await;
        assert_eq!(
            status, 401,
            "{method} {template} without credentials: {problem}"
        );
        assert!(
            headers.contains_key("www-authenticate"),
            "{method} {template}: 401 without WWW-Authenticate"
        );
        if ANY_AUTHENTICATED.contains(&template.as_str()) {
            continue;
        }
        let (status, _, problem) = send(server, method, &path, Some(&visitor), body()).await;
        if (method, template.as_str()) == (&Method::GET, "/api/v1/clinics/{clinic}") {
            assert_eq!(status, 200, "the visitor reads its clinic: {problem}");
            continue;
        }
        assert_eq!(
            status, 403,
            "{method} {template} for a role without the permission: {problem}"
        );
        checked += 1;
    }
    assert!(checked > 30, "only {checked} routes checked for 403");
    // Nothing the visitor tried changed anything: still one patient.
    let (_, patients) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/patients"),
            Some(&server.admin),
            None,
        )
        .await;
    assert_eq!(patients["items"].as_array().unwrap().len(), 1, "{patients}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clinic_gets_404_on_every_clinic_and_patient_route() {
    let world = World::start(None).await;
    let a = populated_clinic(&world, "Clinic A").await;
    let server = &world.server;
    let b = server.create_clinic("Clinic B").await;
    let admin_b = server.clinic_token(&b, "clinic-admin").await;
    let clinician_b = server.clinic_token(&b, "clinician").await;
    let clinic_a = a.values["clinic"].clone();
    let mut checked = 0;
    for (method, template) in routes(server).await {
        if !template.contains("{clinic}") && !template.contains("{patient}") {
            continue;
        }
        let path = a.fill(&template);
        for token in [&admin_b, &clinician_b] {
            let (status, _, problem) = send(
                server,
                &method,
                &path,
                Some(token),
                body_for(&method, &template, &clinic_a),
            )
            .await;
            assert_eq!(
                status, 404,
                "{method} {template} from another clinic: {problem}"
            );
            let text = problem.to_string();
            for (name, id) in &a.values {
                if *name != "clinic" && *name != "id" {
                    assert!(
                        !text.contains(id.as_str()),
                        "{method} {template} leaked the {name} id"
                    );
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} clinic routes");
    // Clinic B's admin with clinic A's patient id under its own clinic: 404 too.
    let patient_a = &a.values["patient"];
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/clinics/{b}/patients/{patient_a}"),
            Some(&admin_b),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "patient_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_on_sqlite() {
    let world = World::start(None).await;
    policies(&world).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_on_postgres_reach_a_second_instance() {
    let Some(admin_url) = medmemory_tests::postgres_url() else {
        return;
    };
    let db = medmemory_tests::PgDatabase::create(&admin_url).await;
    let world = World::start(Some(db.url.clone())).await;
    policies(&world).await;

    // A second instance on the same database.
    let second = world.server.second_instance().await;
    let clinic = world.server.create_clinic("Shared").await;
    let (token, subject) = world.sign_in("nina").await;
    let (status, _) = second
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/patients"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 404, "no role yet");
    let started = Instant::now();
    let (status, body) = world
        .set_roles(&world.server.admin, &clinic, &subject, &["clinician"])
        .await;
    assert_eq!(status, 200, "{body}");
    loop {
        let (status, _) = second
            .call(
                Method::GET,
                &format!("/clinics/{clinic}/patients"),
                Some(&token),
                None,
            )
            .await;
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the second instance never saw the grant"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "policy change reached the second instance in {} ms",
        started.elapsed().as_millis()
    );
    drop(second);
    drop(world);
    db.drop_db().await;
}

async fn policies(world: &World) {
    let server = &world.server;
    let admin = &server.admin;
    let clinic = server.create_clinic("Policy Clinic").await;
    let (alice, alice_id) = world.sign_in("alice").await;
    let (bob, bob_id) = world.sign_in("bob").await;
    let (carol, carol_id) = world.sign_in("carol").await;

    // A first sign-in holds no role: the clinic is invisible.
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/patients"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Only platform admins make clinic admins.
    let (status, body) = world
        .set_roles(admin, &clinic, &alice_id, &["clinic-admin"])
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = world
        .set_roles(&alice, &clinic, &bob_id, &["clinic-admin"])
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "privilege_escalation");

    // A clinic admin grants clinician; it applies at once.
    let (status, body) = world
        .set_roles(&alice, &clinic, &bob_id, &["clinician"])
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/patients"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, 200, "a grant applies without a restart");

    // A custom role from the vocabulary.
    let (status, body) = server
        .call(
            Method::PUT,
            &format!("/clinics/{clinic}/policies"),
            Some(&alice),
            Some(json!({
                "roles": {"front-desk": [
                    {"resource": "patient", "action": "create"},
                    {"resource": "patient", "action": "read"}
                ]},
                "assignments": [
                    {"subject": alice_id, "role": "clinic-admin"},
                    {"subject": bob_id, "role": "front-desk"}
                ]
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let version = body["version"].as_i64().unwrap();
    assert!(
        body["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "p, front-desk, patient, create"),
        "{body}"
    );
    let patient = server.create_patient(&bob, &clinic, "Jo", "Park").await;
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/patients/{patient}/documents"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, 403, "front-desk may not read documents");

    // Invalid documents are refused and change nothing.
    let ghost = format!("user:{}", uuid::Uuid::now_v7());
    // A token of this clinic, whose role no policy document may change.
    let clinician_token = server.clinic_token(&clinic, "clinician").await;
    let (_, me) = server
        .call(Method::GET, "/me", Some(&clinician_token), None)
        .await;
    let token_subject = me["subject"].as_str().expect("a subject").to_owned();
    assert!(token_subject.starts_with("token:"), "{me}");
    let many: serde_json::Map<String, Value> = (0..40)
        .map(|i| {
            (
                format!("role-{i}"),
                json!([{"resource": "patient", "action": "read"}]),
            )
        })
        .collect();
    let mut bad = vec![
        (
            json!({"roles": {"sneaky": [{"resource": "*", "action": "*"}]}, "assignments": [{"subject": alice_id, "role": "clinic-admin"}]}),
            422,
            "unknown_permission",
        ),
        (
            json!({"roles": {"sneaky": [{"resource": "clinic", "action": "create"}]}, "assignments": [{"subject": alice_id, "role": "clinic-admin"}]}),
            422,
            "unknown_permission",
        ),
        (
            json!({"roles": {"*": [{"resource": "patient", "action": "read"}]}, "assignments": [{"subject": alice_id, "role": "clinic-admin"}]}),
            422,
            "invalid_role_name",
        ),
        (
            json!({"roles": {"clinician": [{"resource": "patient", "action": "read"}]}, "assignments": [{"subject": alice_id, "role": "clinic-admin"}]}),
            422,
            "invalid_role_name",
        ),
        (
            json!({"roles": many, "assignments": [{"subject": alice_id, "role": "clinic-admin"}]}),
            422,
            "too_many_roles",
        ),
        (
            json!({"assignments": [{"subject": "user:*", "role": "clinician"}, {"subject": alice_id, "role": "clinic-admin"}]}),
            422,
            "invalid_subject",
        ),
        (
            json!({"assignments": [{"subject": alice_id, "role": "platform-admin"}]}),
            422,
            "unknown_role",
        ),
        (
            json!({"assignments": [{"subject": ghost, "role": "clinician"}, {"subject": alice_id, "role": "clinic-admin"}]}),
            422,
            "unknown_subject",
        ),
        (
            json!({"assignments": [{"subject": bob_id, "role": "clinician"}]}),
            409,
            "last_clinic_admin",
        ),
        (
            json!({"assignments": [{"subject": alice_id, "role": "clinic-admin"}], "extra": 1}),
            422,
            "",
        ),
    ];
    bad.push((json!({"assignments": [{"subject": token_subject, "role": "clinician"}, {"subject": alice_id, "role": "clinic-admin"}]}), 422, "token_role_fixed"));
    for (doc, expected, code) in bad {
        let (status, body) = server
            .call(
                Method::PUT,
                &format!("/clinics/{clinic}/policies"),
                Some(&alice),
                Some(doc.clone()),
            )
            .await;
        assert_eq!(status, expected, "{doc}: {body}");
        if !code.is_empty() {
            assert_eq!(body["code"], code, "{doc}: {body}");
        }
    }
    // Nor may a clinic admin strip a token's role one subject at a time.
    for roles in [json!([]), json!(["auditor"])] {
        let (status, body) = server
            .call(
                Method::PUT,
                &format!("/clinics/{clinic}/roles/{token_subject}"),
                Some(&alice),
                Some(json!({ "roles": roles })),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("token_role_fixed")),
            "{roles}: {body}"
        );
    }
    let (_, kept) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/roles/{token_subject}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(kept["roles"], json!(["clinician"]), "{kept}");
    let (_, now) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/policies"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        now["version"].as_i64().unwrap(),
        version,
        "a refused change changed the policy: {now}"
    );

    // The last clinic admin cannot leave, even under two concurrent demotions.
    let (status, body) = world.set_roles(&alice, &clinic, &alice_id, &[]).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "last_clinic_admin");
    for round in 0..5 {
        let (status, body) = world
            .set_roles(admin, &clinic, &alice_id, &["clinic-admin"])
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = world
            .set_roles(admin, &clinic, &carol_id, &["clinic-admin"])
            .await;
        assert_eq!(status, 200, "{body}");
        let (a, c) = tokio::join!(
            world.set_roles(&alice, &clinic, &carol_id, &[]),
            world.set_roles(&carol, &clinic, &alice_id, &[]),
        );
        // One wins; the other is refused: 409 if it ran second, or, if it was
        // authorized after the winner had demoted it, 404 `clinic_not_found`,
        // since a principal without any role in a clinic must not see it.
        let mut outcomes = [(a.0, a.1["code"].clone()), (c.0, c.1["code"].clone())];
        outcomes.sort_by_key(|(status, _)| *status);
        let loser = &outcomes[1];
        assert!(
            outcomes[0].0 == 200
                && (loser.0 == 409 && loser.1 == "last_clinic_admin"
                    || loser.0 == 404 && loser.1 == "clinic_not_found"),
            "round {round}: {a:?} {c:?}"
        );
        let (_, policy) = server
            .call(
                Method::GET,
                &format!("/clinics/{clinic}/policies"),
                Some(admin),
                None,
            )
            .await;
        let admins = policy["assignments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["role"] == "clinic-admin")
            .count();
        assert_eq!(admins, 1, "round {round}: {policy}");
    }

    // Every change and every refusal is in the audit trail.
    let (status, trail) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/audit?action=update&limit=500"),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{trail}");
    let policy_events: Vec<&Value> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"] == "policy")
        .collect();
    assert!(
        policy_events.iter().any(|e| e["outcome"] == "succeeded"),
        "{trail}"
    );
    assert!(
        policy_events.iter().any(|e| e["outcome"] == "failed"),
        "{trail}"
    );
}
