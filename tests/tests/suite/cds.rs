//! A CDS Hooks 2.0 conformance client, written from the specification: it
//! generates an ES384 key, registers itself as a CDS client of a clinic,
//! and runs discovery → `patient-view` and `order-select` calls → feedback,
//! with a fresh JWT per call (`aud` = the exact URL). Every card returned is
//! checked against the response invariants (cds-resp-1…7). Negative cases:
//! no JWT, `alg: none`, HS256, wrong `aud`, expired, replayed `jti`,
//! unregistered `iss` and another clinic's client are 401; another clinic's
//! patient is 404. On SQLite and PostgreSQL.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use medmemory_tests::oidc::{Issuer, SigningKey};
use medmemory_tests::{TestServer, start_on_postgres};
use reqwest::Method;
use serde_json::{Value, json};

/// An EHR: its issuer and signing key.
struct Ehr {
    issuer: String,
    key: SigningKey,
}

impl Ehr {
    fn new(issuer: &str) -> Ehr {
        Ehr {
            issuer: issuer.to_owned(),
            key: SigningKey::generate(jsonwebtoken::Algorithm::ES384),
        }
    }

    fn claims(&self, aud: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer, "aud": aud, "iat": now, "exp": now + 300,
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// A fresh token for one call to `url`.
    fn jwt(&self, url: &str) -> String {
        self.key.sign(&self.claims(url), Some("JWT"))
    }
}

/// An unsigned token (`alg: none`).
fn unsigned(claims: &Value, kid: &str) -> String {
    let header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// Checks a card against CDS Hooks 2.0: required fields and cds-resp-1…7.
fn assert_valid_card(card: &Value) {
    let summary = card["summary"].as_str().expect("summary");
    assert!(
        !summary.is_empty() && summary.chars().count() < 140,
        "{card}"
    );
    assert!(
        ["info", "warning", "critical"].contains(&card["indicator"].as_str().unwrap_or("")),
        "{card}"
    );
    assert!(
        card["source"]["label"]
            .as_str()
            .is_some_and(|l| !l.is_empty()),
        "{card}"
    );
    assert!(
        card["uuid"].as_str().is_some(),
        "feedback needs a uuid: {card}"
    );
    for (key, value) in card.as_object().unwrap() {
        assert!(
            !(value.is_null() || value == "" || value == &json!([]) || value == &json!({})),
            "empty optional attribute {key}: {card}"
        );
    }
    if let Some(suggestions) = card["suggestions"].as_array() {
        let behavior = card["selectionBehavior"].as_str();
        assert!(
            matches!(behavior, Some("at-most-one" | "any")),
            "cds-resp-6: {card}"
        );
        let recommended = suggestions
            .iter()
            .filter(|s| s["isRecommended"] == true)
            .count();
        assert!(
            behavior != Some("at-most-one") || recommended <= 1,
            "cds-resp-1: {card}"
        );
        for action in suggestions
            .iter()
            .flat_map(|s| s["actions"].as_array().cloned().unwrap_or_default())
        {
            assert!(
                action["description"].as_str().is_some(),
                "cds-resp-5: {card}"
            );
            if action["type"] == "delete" {
                assert!(
                    action["resourceId"].as_str().is_some() && action.get("resource").is_none(),
                    "cds-resp-2: {card}"
                );
            }
        }
    }
    for link in card["links"].as_array().into_iter().flatten() {
        assert!(
            link["type"] == "smart" || link.get("appContext").is_none(),
            "cds-resp-3: {card}"
        );
    }
    for reason in card["overrideReasons"].as_array().into_iter().flatten() {
        assert!(reason["display"].as_str().is_some(), "cds-resp-4: {card}");
    }
}

async fn post(server: &TestServer, url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = server.http.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn register(server: &TestServer, admin: &str, clinic: &str, ehr: &Ehr) -> Value {
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic}/cds-clients"),
            Some(admin),
            Some(json!({"name": "Test EHR", "issuer": ehr.issuer,
                "jwks": {"keys": [ehr.key.jwk]}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

fn order_select(patient: &str) -> Value {
    json!({
        "hook": "order-select",
        "hookInstance": uuid::Uuid::new_v4().to_string(),
        "context": {
            "userId": "Practitioner/example",
            "patientId": patient,
            "selections": ["MedicationRequest/draft-amox-1"],
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": {
                "resourceType": "MedicationRequest", "id": "draft-amox-1",
                "status": "draft", "intent": "order",
                "medicationCodeableConcept": {"coding": [{
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "308182", "display": "Amoxicillin 250 MG Oral Capsule"}],
                    "text": "Amoxicillin 250 mg capsule"},
                "subject": {"reference": format!("Patient/{patient}")}
            }}]}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cds_client_calls_the_clinic_services_on_sqlite() {
    let server = TestServer::start().await;
    conformance(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cds_client_calls_the_clinic_services_on_postgres() {
    let Some((server, db)) = start_on_postgres(Vec::new()).await else {
        return;
    };
    conformance(&server).await;
    drop(server);
    db.drop_db().await;
}

async fn conformance(server: &TestServer) {
    let clinic = server.create_clinic("CDS clinic").await;
    let other = server.create_clinic("Other clinic").await;
    let admin = server.clinic_token(&clinic, "clinic-admin").await;
    let other_admin = server.clinic_token(&other, "clinic-admin").await;
    let (status, created) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic}/patients"),
            Some(&admin),
            Some(
                json!({"given_name": "Ada", "family_name": "Example", "birth_date": "1961-04-12",
                "sex": "female", "mrn": "MRN-CDS-7"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let patient = created["id"].as_str().unwrap().to_owned();
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic}/patients/{patient}/records"),
            Some(&admin),
            Some(json!({"records": [
                {"kind": "allergy", "display": "Penicillin G", "status": "active",
                 "codes": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7980"}]},
                {"kind": "observation", "display": "Potassium", "status": "final",
                 "effective": "2024-05-01T08:30:00Z", "value": {"value": 6.2, "unit": "mmol/L"},
                 "codes": [{"system": "http://loinc.org", "code": "2823-3"}]}
            ]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let other_patient = server
        .create_patient(&other_admin, &other, "Bo", "Other")
        .await;

    let ehr = Ehr::new("https://ehr.example.org/cds-client");
    let client = register(server, &admin, &clinic, &ehr).await;
    assert!(
        client["subject"]
            .as_str()
            .unwrap()
            .starts_with("cds-client:")
    );
    let (status, again) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic}/cds-clients"),
            Some(&admin),
            Some(json!({"name": "Again", "issuer": ehr.issuer, "jwks": {"keys": [ehr.key.jwk]}})),
        )
        .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("issuer_registered")),
        "{again}"
    );

    // Discovery.
    let base = server.api(&format!("/clinics/{clinic}/cds-services"));
    let response = server
        .http
        .get(&base)
        .bearer_auth(ehr.jwt(&base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let discovery: Value = response.json().await.unwrap();
    let services = discovery["services"].as_array().expect("services");
    for service in services {
        for field in ["hook", "id", "description"] {
            assert!(service[field].as_str().is_some(), "{service}");
        }
    }
    let find = |id: &str| {
        services
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {discovery}"))
            .clone()
    };
    assert_eq!(find("critical-labs")["hook"], "patient-view");
    let allergy = find("penicillin-allergy-order-select");
    assert_eq!(allergy["hook"], "order-select");
    assert!(allergy["prefetch"]["allergies"].as_str().is_some());

    // A client that publishes its keys at an allow-listed jku.
    let publishing = Ehr::new("https://ehr.example.org/publishing");
    let keys = Issuer::start(&[&publishing.key]).await;
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/clinics/{clinic}/cds-clients"),
            Some(&admin),
            Some(
                json!({"name": "Publishing EHR", "issuer": publishing.issuer,
                "jku": format!("{}/jwks", keys.issuer)}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let response = server
        .http
        .get(&base)
        .bearer_auth(publishing.jwt(&base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "keys fetched from the jku");
    assert_eq!(keys.jwks_fetches(), 1);

    // patient-view by MRN: the critical potassium.
    let url = format!("{base}/critical-labs");
    let view = json!({"hook": "patient-view", "hookInstance": uuid::Uuid::new_v4().to_string(),
        "context": {"userId": "Practitioner/example", "patientId": "MRN-CDS-7"}});
    let (status, answer) = post(server, &url, Some(&ehr.jwt(&url)), &view).await;
    assert_eq!(status, 200, "{answer}");
    let cards = answer["cards"].as_array().unwrap();
    cards.iter().for_each(assert_valid_card);
    let potassium = cards
        .iter()
        .find(|c| c["indicator"] == "critical")
        .unwrap_or_else(|| panic!("no critical card: {answer}"));
    assert!(
        potassium["summary"]
            .as_str()
            .unwrap()
            .starts_with("Potassium 6.2"),
        "{potassium}"
    );

    // order-select of amoxicillin for a patient allergic to penicillin.
    let url = format!("{base}/penicillin-allergy-order-select");
    let (status, answer) = post(server, &url, Some(&ehr.jwt(&url)), &order_select(&patient)).await;
    assert_eq!(status, 200, "{answer}");
    let cards = answer["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1, "{answer}");
    let card = &cards[0];
    assert_valid_card(card);
    assert_eq!(card["indicator"], "warning");
    let suggestion = &card["suggestions"][0];
    assert_eq!(suggestion["actions"][0]["type"], "delete");
    assert_eq!(
        suggestion["actions"][0]["resourceId"],
        "MedicationRequest/draft-amox-1"
    );
    assert!(!card["overrideReasons"].as_array().unwrap().is_empty());

    // Feedback: overridden with a reason, then accepted; bad feedback and
    // unknown cards change nothing.
    let feedback_url = format!("{url}/feedback");
    let now = chrono::Utc::now().to_rfc3339();
    let overridden = json!({"feedback": [{"card": card["uuid"], "outcome": "overridden",
        "overrideReason": {"reason": card["overrideReasons"][0], "userComment": "tolerated last year"},
        "outcomeTimestamp": now}]});
    let (status, body) = post(
        server,
        &feedback_url,
        Some(&ehr.jwt(&feedback_url)),
        &overridden,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let accepted = json!({"feedback": [{"card": card["uuid"], "outcome": "accepted",
        "acceptedSuggestions": [{"id": suggestion["uuid"]}], "outcomeTimestamp": now}]});
    let (status, body) = post(
        server,
        &feedback_url,
        Some(&ehr.jwt(&feedback_url)),
        &accepted,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let no_suggestion = json!({"feedback": [{"card": card["uuid"], "outcome": "accepted",
        "outcomeTimestamp": now}]});
    let (status, body) = post(
        server,
        &feedback_url,
        Some(&ehr.jwt(&feedback_url)),
        &no_suggestion,
    )
    .await;
    assert_eq!(status, 422, "cds-fb-2: {body}");
    let unknown = json!({"feedback": [{"card": uuid::Uuid::new_v4().to_string(),
        "outcome": "overridden", "outcomeTimestamp": now}]});
    let (status, body) = post(
        server,
        &feedback_url,
        Some(&ehr.jwt(&feedback_url)),
        &unknown,
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // Feedback on the potassium card shows with the alert it concerns.
    let potassium_url = format!("{base}/critical-labs/feedback");
    let on_alert = json!({"feedback": [{"card": potassium["uuid"], "outcome": "overridden",
        "overrideReason": {"userComment": "repeat sample ordered"}, "outcomeTimestamp": now}]});
    let (status, body) = post(
        server,
        &potassium_url,
        Some(&ehr.jwt(&potassium_url)),
        &on_alert,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, alerts) = server
            .call(
                Method::GET,
                &format!("/clinics/{clinic}/patients/{patient}/alerts"),
                Some(&admin),
                None,
            )
            .await;
        let items = alerts["items"].as_array().cloned().unwrap_or_default();
        if let Some(alert) = items.iter().find(|a| a["rule"] == "critical-labs") {
            assert_eq!(
                alert["feedback"][0]["user_comment"], "repeat sample ordered",
                "{alert}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no potassium alert: {alerts}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Another clinic's patient is not found.
    let url = format!("{base}/penicillin-allergy-order-select");
    let (status, body) = post(
        server,
        &url,
        Some(&ehr.jwt(&url)),
        &order_select(&other_patient),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("patient_not_found")),
        "{body}"
    );

    // Every refused credential is 401 and changes nothing.
    let call = order_select(&patient);
    let discovery_url = base.clone();
    let stranger = Ehr::new("https://unregistered.example.org");
    let neighbour = Ehr::new("https://ehr.example.org/other-clinic");
    register(server, &other_admin, &other, &neighbour).await;
    let mut expired = ehr.claims(&url);
    let old = chrono::Utc::now().timestamp() - 3600;
    expired["iat"] = json!(old);
    expired["exp"] = json!(old + 300);
    let hmac = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(ehr.key.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(
            &header,
            &ehr.claims(&url),
            &jsonwebtoken::EncodingKey::from_secret(b"a shared secret").unwrap(),
        )
        .unwrap()
    };
    let replayed = ehr.jwt(&url);
    let (status, body) = post(server, &url, Some(&replayed), &call).await;
    assert_eq!(status, 200, "first use of a token: {body}");
    let refused: Vec<(&str, Option<String>)> = vec![
        ("no JWT", None),
        ("alg none", Some(unsigned(&ehr.claims(&url), &ehr.key.kid))),
        ("HS256", Some(hmac)),
        ("wrong aud", Some(ehr.jwt(&discovery_url))),
        ("expired", Some(ehr.key.sign(&expired, Some("JWT")))),
        ("replayed jti", Some(replayed)),
        ("unregistered iss", Some(stranger.jwt(&url))),
        ("another clinic's client", Some(neighbour.jwt(&url))),
    ];
    for (case, token) in refused {
        let (status, body) = post(server, &url, token.as_deref(), &call).await;
        assert_eq!(status, 401, "{case}: {body}");
    }

    // A removed client is refused from then on.
    let id = client["id"].as_str().unwrap();
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/clinics/{clinic}/cds-clients/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = post(server, &url, Some(&ehr.jwt(&url)), &call).await;
    assert_eq!(status, 401, "removed client: {body}");
}

/// A service whose declared prefetch is neither sent nor held by the
/// memory is 412; a hook the service does not answer is 422; a rule that
/// loops or returns invalid cards answers `{"cards": []}` within the CDS
/// deadline. Scripts call with an API token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_prefetch_is_412_and_a_bad_rule_answers_no_cards() {
    let server = TestServer::start().await;
    let clinic = server.create_clinic("Coverage").await;
    let plugin = server.install_for("bad-rule", &clinic).await;
    let token = server.clinic_token(&clinic, "clinician").await;
    let patient = server.create_patient(&token, &clinic, "Cy", "Cover").await;
    let url = server.api(&format!("/clinics/{clinic}/cds-services/needs-coverage"));
    let call = |prefetch: Option<Value>, hook: &str| {
        let mut body = json!({"hook": hook, "hookInstance": uuid::Uuid::new_v4().to_string(),
            "context": {"patientId": patient, "userId": "Practitioner/1",
                "draftOrders": {"resourceType": "Bundle", "entry": []}}});
        if let Some(p) = prefetch {
            body["prefetch"] = p;
        }
        body
    };
    let (status, body) = post(&server, &url, Some(&token), &call(None, "order-sign")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (412, Some("prefetch_missing")),
        "{body}"
    );
    let (status, body) = post(
        &server,
        &url,
        Some(&token),
        &call(Some(json!({"coverage": null})), "patient-view"),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("wrong_hook")),
        "{body}"
    );
    for mode in ["garbage", "loop", "trap"] {
        let (status, body) = server
            .call(
                Method::PUT,
                &format!("/clinics/{clinic}/plugins/{plugin}/config"),
                Some(&server.admin),
                Some(json!({ "settings": { "mode": mode } })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = post(
            &server,
            &url,
            Some(&token),
            &call(Some(json!({"coverage": null})), "order-sign"),
        )
        .await;
        assert_eq!((status, &body), (200, &json!({"cards": []})), "{mode}");
    }
}
