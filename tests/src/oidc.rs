//! Identity providers for the auth tests.
//!
//! - [`Provider`]: node-oidc-provider (certified), from `tests/oidc`, started
//!   as a child process on a loopback port: client-credentials and
//!   authorization-code + PKCE tokens, key rotation by restarting it.
//! - [`Issuer`]: a minimal in-process issuer (discovery document and JWKS over
//!   HTTP) whose keys the test holds, so it can forge every kind of bad token.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::repo_root;

/// The API audience every test server and provider agree on.
pub const AUDIENCE: &str = "https://api.medmemory.test";

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The server settings that trust `issuer`.
pub fn server_env(issuer: &str, refetch_min_ms: u64) -> Vec<(String, String)> {
    vec![
        ("MEDMEMORY_OIDC_ISSUER".into(), issuer.into()),
        ("MEDMEMORY_OIDC_AUDIENCE".into(), AUDIENCE.into()),
        (
            "MEDMEMORY_OIDC_JWKS_REFETCH_MIN_MS".into(),
            refetch_min_ms.to_string(),
        ),
        ("MEDMEMORY_OIDC_LEEWAY_SECS".into(), "5".into()),
    ]
}

fn oidc_dir() -> std::path::PathBuf {
    repo_root().join("tests/oidc")
}

/// node-oidc-provider on `127.0.0.1:port`.
pub struct Provider {
    child: Child,
    /// The issuer URL.
    pub issuer: String,
    /// The port (kept across restarts, since the issuer names it).
    pub port: u16,
    /// The current signing key id.
    pub kid: String,
}

impl Provider {
    /// Starts the provider with a fresh key `kid` and waits until it serves.
    pub fn start(port: u16, kid: &str) -> Provider {
        assert!(
            oidc_dir().join("node_modules/oidc-provider").exists(),
            "tests/oidc/node_modules is missing: run `cargo xtask setup` (cargo xtask test does)"
        );
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(oidc_dir())
            .env("PORT", port.to_string())
            .env("AUDIENCE", AUDIENCE)
            .env("KID", kid)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node oidc-provider");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("listening") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("oidc-provider did not start");
        Provider {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
            port,
            kid: kid.to_owned(),
        }
    }

    /// Stops it and starts it again on the same port with a new key.
    pub fn rotate(mut self, kid: &str) -> Provider {
        self.stop();
        Provider::start(self.port, kid)
    }

    /// Stops the provider.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A client-credentials access token for the API.
    pub async fn client_credentials(&self, http: &reqwest::Client) -> String {
        let response = http
            .post(format!("{}/token", self.issuer))
            .basic_auth("service", Some("service-secret"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "api"),
                ("resource", AUDIENCE),
            ])
            .send()
            .await
            .expect("token request");
        let body: Value = response.json().await.expect("token response");
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {body}"))
            .to_owned()
    }

    /// Signs `login_hint` in through authorization code + PKCE (S256), as a
    /// browser would, following the provider's redirects with its cookies.
    /// Returns the access token and the ID token.
    pub async fn authorization_code(&self, login_hint: &str) -> (String, String) {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut url = reqwest::Url::parse_with_params(
            &format!("{}/auth", self.issuer),
            &[
                ("client_id", "web"),
                ("response_type", "code"),
                ("scope", "openid"),
                ("redirect_uri", "http://127.0.0.1/callback"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("state", "medmemory-test"),
                ("login_hint", login_hint),
                ("resource", AUDIENCE),
            ],
        )
        .expect("auth url");
        let mut cookies: HashMap<String, String> = HashMap::new();
        let code = loop {
            let cookie = cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let response = http
                .get(url.clone())
                .header("cookie", cookie)
                .send()
                .await
                .expect("authorization step");
            for value in response.headers().get_all("set-cookie") {
                let pair = value.to_str().unwrap_or_default();
                let pair = pair.split(';').next().unwrap_or_default();
                if let Some((k, v)) = pair.split_once('=') {
                    cookies.insert(k.to_owned(), v.to_owned());
                }
            }
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or_else(|| panic!("no redirect from {url}: {}", response.status()))
                .to_owned();
            let next = url.join(&location).expect("redirect url");
            if next.as_str().starts_with("http://127.0.0.1/callback") {
                let code = next
                    .query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_else(|| panic!("no code in {next}"));
                break code;
            }
            url = next;
        };
        let body: Value = http
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("client_id", "web"),
                ("redirect_uri", "http://127.0.0.1/callback"),
                ("code_verifier", verifier.as_str()),
                ("resource", AUDIENCE),
            ])
            .send()
            .await
            .expect("code exchange")
            .json()
            .await
            .expect("token response");
        let access = body["access_token"].as_str();
        let id = body["id_token"].as_str();
        match (access, id) {
            (Some(a), Some(i)) => (a.to_owned(), i.to_owned()),
            _ => panic!("code exchange gave no tokens: {body}"),
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    let seed = uuid::Uuid::new_v4();
    let more = uuid::Uuid::new_v4();
    out[..16].copy_from_slice(seed.as_bytes());
    out[16..].copy_from_slice(more.as_bytes());
    out
}

/// A signing key the test holds.
#[derive(Clone)]
pub struct SigningKey {
    /// The key id published in the JWKS.
    pub kid: String,
    /// The algorithm it signs with.
    pub alg: jsonwebtoken::Algorithm,
    /// The private key.
    pub encoding: jsonwebtoken::EncodingKey,
    /// The public JWK (with kid, alg and use).
    pub jwk: Value,
}

impl SigningKey {
    /// A fresh key: RS256, RS384 or PS256 (RSA 2048), ES256 (P-256) or
    /// ES384 (P-384).
    pub fn generate(alg: jsonwebtoken::Algorithm) -> SigningKey {
        let kind = match alg {
            jsonwebtoken::Algorithm::ES256 => "EC",
            jsonwebtoken::Algorithm::ES384 => "EC384",
            _ => "RSA",
        };
        let out = Command::new("node")
            .arg("keygen.mjs")
            .arg(kind)
            .current_dir(oidc_dir())
            .output()
            .expect("node keygen.mjs");
        assert!(out.status.success(), "keygen failed");
        let v: Value = serde_json::from_slice(&out.stdout).expect("keygen output");
        let der = STANDARD
            .decode(v["der"].as_str().expect("der"))
            .expect("base64 der");
        let encoding = if kind != "RSA" {
            jsonwebtoken::EncodingKey::from_ec_der(&der)
        } else {
            jsonwebtoken::EncodingKey::from_rsa_der(&der)
        };
        let kid = uuid::Uuid::new_v4().to_string();
        let mut jwk = v["jwk"].clone();
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(format!("{alg:?}"));
        jwk["use"] = json!("sig");
        SigningKey {
            kid,
            alg,
            encoding,
            jwk,
        }
    }

    /// Signs `claims` with this key and its kid; `typ` as given.
    pub fn sign(&self, claims: &Value, typ: Option<&str>) -> String {
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// An in-process issuer: `/.well-known/openid-configuration` and `/jwks` on
/// a loopback port, serving whatever keys the test sets.
pub struct Issuer {
    /// The issuer URL.
    pub issuer: String,
    keys: Arc<Mutex<Vec<Value>>>,
    jwks_fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Issuer {
    /// Starts serving `keys`.
    pub async fn start(keys: &[&SigningKey]) -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind issuer");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let keys: Arc<Mutex<Vec<Value>>> =
            Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let (k, f, iss) = (keys.clone(), jwks_fetches.clone(), issuer.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (k, f, iss) = (k.clone(), f.clone(), iss.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]);
                    let path = head.split_whitespace().nth(1).unwrap_or("/");
                    let body = match path {
                        "/.well-known/openid-configuration" => json!({
                            "issuer": iss,
                            "authorization_endpoint": format!("{iss}/auth"),
                            "token_endpoint": format!("{iss}/token"),
                            "jwks_uri": format!("{iss}/jwks"),
                            "response_types_supported": ["code"],
                            "subject_types_supported": ["public"],
                            "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
                        }),
                        "/jwks" => {
                            f.fetch_add(1, Ordering::SeqCst);
                            json!({ "keys": k.lock().unwrap().clone() })
                        }
                        _ => Value::Null,
                    };
                    let (status, text) = if body.is_null() {
                        ("404 Not Found", String::new())
                    } else {
                        ("200 OK", body.to_string())
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Issuer {
            issuer,
            keys,
            jwks_fetches,
            task,
        }
    }

    /// Replaces the published keys.
    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Claims of a good access token for `sub`, valid for five minutes.
    pub fn claims(&self, sub: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "nbf": now - 1,
            "exp": now + 300,
            "scope": "api",
        })
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
