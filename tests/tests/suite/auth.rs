//! OIDC bearer authentication against a real, certified provider
//! (node-oidc-provider), and a negative suite of forged tokens from an
//! in-process issuer whose keys the test holds.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use medmemory_tests::oidc::{Issuer, Provider, SigningKey, free_port, server_env};
use medmemory_tests::{Options, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

fn header_of(token: &str) -> Value {
    let head = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
}

async fn me(server: &TestServer, token: &str) -> (u16, Value) {
    server.call(Method::GET, "/me", Some(token), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certified_provider_tokens_work_and_keys_rotate() {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    // The provider is down: the server starts but is not ready.
    let server = TestServer::start_unready(Options {
        env: server_env(&issuer, 200),
        ..Options::default()
    })
    .await;
    let (status, ready) = server.ready_status().await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["failed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "identity_provider"),
        "{ready}"
    );

    let provider = Provider::start(port, "key-one");
    server.until_ready().await;
    let http = reqwest::Client::new();

    // Client credentials: a service signs in; a first-seen user has no roles.
    let service = provider.client_credentials(&http).await;
    assert_eq!(header_of(&service)["kid"], "key-one");
    let (status, who) = me(&server, &service).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["kind"], "user");
    assert_eq!(who["roles"], json!([]));
    let subject = who["subject"].as_str().unwrap().to_owned();
    let clinic = server.create_clinic("Northside").await;
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/patients"),
            Some(&service),
            None,
        )
        .await;
    assert_eq!(status, 404, "no role: the clinic is invisible");
    let (status, _) = server
        .call(Method::GET, "/clinics", Some(&service), None)
        .await;
    assert_eq!(status, 403);

    // An admin grants a role; the same token now works.
    let (status, body) = server
        .call(
            Method::PUT,
            &format!("/clinics/{clinic}/roles/{subject}"),
            Some(&server.admin),
            Some(json!({"roles": ["clinician"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/clinics/{clinic}/patients"),
            Some(&service),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The same (iss, sub) maps to the same user on the next token.
    let again = provider.client_credentials(&http).await;
    assert_eq!(me(&server, &again).await.1["subject"], subject.as_str());

    // Authorization code + PKCE: a person signs in through the browser flow.
    let (access, id_token) = provider.authorization_code("dr-bob").await;
    let (status, bob) = me(&server, &access).await;
    assert_eq!(status, 200, "{bob}");
    assert_ne!(
        bob["subject"],
        subject.as_str(),
        "another person, another user"
    );
    // The ID token of the same sign-in is not an access token.
    let response = server
        .http
        .get(server.api("/me"))
        .bearer_auth(&id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));

    // Key rotation: the provider restarts with a new key. The first token
    // with the new kid makes the server refetch the JWKS; no restart.
    let provider = provider.rotate("key-two");
    let rotated = provider.client_credentials(&http).await;
    assert_eq!(header_of(&rotated)["kid"], "key-two");
    let started = Instant::now();
    let (status, body) = me(&server, &rotated).await;
    assert_eq!(status, 200, "{body}");
    println!(
        "a token signed by a rotated key was accepted in {} ms (JWKS refetch)",
        started.elapsed().as_millis()
    );
    // The old key is gone from the provider, and so from the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = me(&server, &service).await;
    assert_eq!(status, 401, "{body}");
    drop(provider);
}

/// One forged or misused token and what the server must answer.
struct Case {
    name: &'static str,
    token: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_misused_tokens_are_refused() {
    let rsa = SigningKey::generate(Algorithm::RS256);
    let ec = SigningKey::generate(Algorithm::ES256);
    let pss = SigningKey::generate(Algorithm::PS256);
    let stranger = SigningKey::generate(Algorithm::RS256);
    let issuer = Issuer::start(&[&rsa, &ec, &pss]).await;
    let server = TestServer::start_with(Options {
        env: server_env(&issuer.issuer, 60_000),
        ..Options::default()
    })
    .await;

    // The three accepted algorithms, each with its own key.
    for key in [&rsa, &ec, &pss] {
        let token = key.sign(&issuer.claims("good"), Some("at+jwt"));
        let (status, body) = me(&server, &token).await;
        assert_eq!(status, 200, "{:?}: {body}", key.alg);
    }

    let now = chrono::Utc::now().timestamp();
    let with = |patch: Value| {
        let mut claims = issuer.claims("mallory");
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let good = rsa.sign(&issuer.claims("mallory"), Some("at+jwt"));
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&with(json!({"sub": "platform-root"}))),
        parts[2]
    );
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "at+jwt", "kid": rsa.kid})),
        parts[1]
    );
    // HS256 keyed with the provider's public key: the classic confusion attack.
    let hs256 = {
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.kid = Some(rsa.kid.clone());
        header.typ = Some("at+jwt".into());
        let secret = rsa.jwk.to_string();
        jsonwebtoken::encode(
            &header,
            &issuer.claims("mallory"),
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    // An EC signature under the RSA key's kid.
    let wrong_key = {
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some(rsa.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, &issuer.claims("mallory"), &ec.encoding).unwrap()
    };
    let cases = vec![
        Case { name: "expired", token: rsa.sign(&with(json!({"exp": now - 600, "iat": now - 900, "nbf": now - 900})), Some("at+jwt")) },
        Case { name: "not yet valid", token: rsa.sign(&with(json!({"nbf": now + 600})), Some("at+jwt")) },
        Case { name: "wrong issuer", token: rsa.sign(&with(json!({"iss": "https://evil.example"})), Some("at+jwt")) },
        Case { name: "wrong audience", token: rsa.sign(&with(json!({"aud": "https://other.api"})), Some("at+jwt")) },
        Case { name: "alg none", token: alg_none },
        Case { name: "HS256 with the public key", token: hs256 },
        Case { name: "unknown kid", token: stranger.sign(&issuer.claims("mallory"), Some("at+jwt")) },
        Case { name: "tampered payload", token: tampered },
        Case { name: "ID token (nonce, typ JWT, client audience)", token: rsa.sign(&with(json!({"nonce": "n-0S6_WzA2Mj", "aud": "web-client", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ"})), Some("JWT")) },
        Case { name: "ID token shape with the API audience", token: rsa.sign(&with(json!({"nonce": "n-0S6_WzA2Mj"})), Some("at+jwt")) },
        Case { name: "no typ header", token: rsa.sign(&issuer.claims("mallory"), None) },
        Case { name: "missing exp", token: rsa.sign(&with(json!({"exp": null})), Some("at+jwt")) },
        Case { name: "missing sub", token: rsa.sign(&with(json!({"sub": null})), Some("at+jwt")) },
        Case { name: "signature by another key under a known kid", token: wrong_key },
        Case { name: "garbage", token: "eyJhbGciOi.not-a-jwt.at-all".into() },
    ];
    // Every case runs, and every one that is not refused as it should be is
    // named at the end, so one weak check cannot hide behind another.
    let names: std::collections::HashSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "case names are distinct");
    let mut accepted = Vec::new();
    for case in &cases {
        let response = server
            .http
            .get(server.api("/me"))
            .bearer_auth(&case.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let challenge = response.headers().get("www-authenticate").cloned();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status != 401 || challenge.is_none() || body["code"] != "invalid_token" {
            accepted.push(format!("{}: {status} {body}", case.name));
        }
    }
    assert!(
        accepted.is_empty(),
        "not refused as expected: {accepted:#?}"
    );
    // A good token in the query string is refused, with or without a header.
    for header in [None, Some(good.as_str())] {
        let mut request = server
            .http
            .get(format!("{}?access_token={good}", server.api("/me")));
        if let Some(h) = header {
            request = request.bearer_auth(h);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "token in the query string");
        assert!(response.headers().contains_key("www-authenticate"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "token_in_query", "{body}");
    }
    println!("negative cases refused with 401: {}", cases.len() + 2);

    // Random kids cannot hammer the provider: at most one refetch per window.
    let before = issuer.jwks_fetches();
    for _ in 0..20 {
        let mut forged = SigningKey::clone(&stranger);
        forged.kid = uuid::Uuid::new_v4().to_string();
        let (status, _) = me(
            &server,
            &forged.sign(&issuer.claims("mallory"), Some("at+jwt")),
        )
        .await;
        assert_eq!(status, 401);
    }
    let refetches = issuer.jwks_fetches() - before;
    assert!(
        refetches <= 1,
        "{refetches} JWKS fetches for 20 unknown kids"
    );

    // Refusals wrote nothing that breaks the audit chain.
    let (_, trail) = server
        .call(Method::GET, "/audit/verify", Some(&server.admin), None)
        .await;
    assert_eq!(trail["ok"], true, "{trail}");
}
