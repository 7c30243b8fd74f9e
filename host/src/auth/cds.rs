//! CDS Hooks clients (EHRs) prove who they are with a JWT they sign per call
//! ("Trusting CDS Clients", CDS Hooks 2.0 §Security):
//!
//! - the clinic registers the client: its `iss` and its public keys, as a
//!   JWK Set given out of band or an allow-listed `jku` URL (fetched only
//!   there, never from a URL a token names);
//! - header `alg` is ES384, ES256, RS384 or RS256 and must be one the key
//!   allows (`none` and HMAC never), `kid` names a key of the client, `typ`
//!   is `JWT`;
//! - claims: `iss` the registered issuer, `aud` the exact URL called, `exp`
//!   in the future, `iat` not in the future and at most [`MAX_AGE`] old, and
//!   a `jti` never seen before from this client (remembered in SQL, so a
//!   replay to another instance fails too).
//!
//! A token whose `iss` is not a client of the clinic called is not ours to
//! judge: [`CdsVerifier::verify`] says so and the caller tries its other
//! credentials (which refuse it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, Validation};
use openidconnect::reqwest;
use serde::Deserialize;
use uuid::Uuid;

use super::AuthError;
use super::oidc::{KeySet, parse_jwks};
use crate::db::Db;
use crate::db::cds::CdsClient;

/// The algorithms a CDS client may sign with (the spec recommends ES384 and
/// RS384).
pub const ACCEPTED: [Algorithm; 4] = [
    Algorithm::ES384,
    Algorithm::ES256,
    Algorithm::RS384,
    Algorithm::RS256,
];
/// The oldest `iat` accepted.
pub const MAX_AGE: TimeDelta = TimeDelta::minutes(10);
/// Clock skew allowed on `exp` and `iat`.
const LEEWAY_SECS: i64 = 60;
/// How long keys fetched from a `jku` are kept.
const JKU_TTL: Duration = Duration::from_secs(300);
/// The least time between two fetches of one `jku` caused by unknown keys.
const JKU_REFETCH_MIN: Duration = Duration::from_secs(10);
/// The longest `jti` accepted.
const MAX_JTI: usize = 256;

/// Verifies CDS clients' JWTs.
pub struct CdsVerifier {
    db: Db,
    http: reqwest::Client,
    /// Keys fetched from allow-listed `jku` URLs, with when.
    fetched: Mutex<HashMap<String, (Instant, Arc<KeySet>)>>,
}

#[derive(Deserialize)]
struct Unverified {
    iss: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iat: Option<i64>,
    exp: i64,
    jti: Option<String>,
}

fn refused(reason: &'static str, detail: &str) -> AuthError {
    metrics::counter!("cds_auth_rejections_total", "reason" => reason).increment(1);
    AuthError::refused(
        "invalid_token",
        format!("CDS client token refused: {detail}"),
    )
}

/// The issuer a token claims, unverified: only used to find whose keys
/// verify it.
fn claimed_issuer(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload) = (parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Unverified>(&bytes).ok()?.iss
}

impl CdsVerifier {
    /// A verifier over the clients registered in `db`.
    pub fn new(db: Db) -> CdsVerifier {
        let http = reqwest::ClientBuilder::new()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        CdsVerifier {
            db,
            http,
            fetched: Mutex::new(HashMap::new()),
        }
    }

    /// The client of `clinic` that signed `token` for a call to `audience`
    /// (the exact URL), or `None` if the token names no client of that
    /// clinic as its issuer.
    pub async fn verify(
        &self,
        clinic: Uuid,
        audience: &str,
        token: &str,
    ) -> Result<Option<CdsClient>, AuthError> {
        let Some(issuer) = claimed_issuer(token) else {
            return Ok(None);
        };
        let Some(client) = self.db.cds_client_by_issuer(clinic, &issuer).await? else {
            return Ok(None);
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| refused("malformed", "the header is unreadable"))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(refused(
                "algorithm",
                "alg must be ES384, ES256, RS384 or RS256",
            ));
        }
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("JWT"))
        {
            return Err(refused("type", "typ must be JWT"));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| refused("kid", "kid is required"))?;
        if let Some(jku) = header.jku.as_deref()
            && client.jku.as_deref() != Some(jku)
        {
            return Err(refused("jku", "jku is not the one registered"));
        }
        let key = self
            .key(&client, kid)
            .await?
            .ok_or_else(|| refused("unknown_key", "kid is not a key of this client"))?;
        if !key.algorithms.contains(&header.alg) {
            return Err(refused("algorithm", "the key does not allow this alg"));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[&client.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = LEEWAY_SECS as u64;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::ExpiredSignature => refused("expired", "the token has expired"),
                    K::InvalidAudience => refused("audience", "aud is not the URL called"),
                    K::InvalidSignature => refused("signature", "the signature does not verify"),
                    K::ImmatureSignature => refused("not_yet_valid", "the token is not yet valid"),
                    _ => refused("invalid", "a claim is missing or malformed"),
                }
            })?
            .claims;
        let now = Utc::now();
        let iat = claims
            .iat
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .ok_or_else(|| refused("iat", "iat is required"))?;
        if iat > now + TimeDelta::seconds(LEEWAY_SECS) || iat < now - MAX_AGE {
            return Err(refused(
                "iat",
                "iat is in the future or more than 10 minutes old",
            ));
        }
        let jti = claims
            .jti
            .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
            .ok_or_else(|| refused("jti", "jti is required"))?;
        // Past this, the token is refused by its age or its expiry anyway.
        let forget_after = DateTime::from_timestamp(claims.exp, 0)
            .unwrap_or(now)
            .min(iat + MAX_AGE)
            + TimeDelta::seconds(LEEWAY_SECS);
        if !self.db.use_jti(client.id, &jti, forget_after).await? {
            return Err(refused("replay", "this jti was used before"));
        }
        Ok(Some(client))
    }

    /// The client's key with this id: from its registered JWK Set, or
    /// fetched from its allow-listed `jku` (again if the kid is unknown and
    /// the last fetch is not too recent).
    async fn key(
        &self,
        client: &CdsClient,
        kid: &str,
    ) -> Result<Option<Arc<super::oidc::Key>>, AuthError> {
        if let Some(jwks) = &client.jwks {
            return Ok(parse_jwks(jwks, &ACCEPTED).by_kid.get(kid).cloned());
        }
        let Some(url) = client.jku.as_deref() else {
            return Ok(None);
        };
        let cached = self
            .fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(url)
            .cloned();
        if let Some((at, set)) = &cached {
            let key = set.by_kid.get(kid).cloned();
            if key.is_some() && at.elapsed() < JKU_TTL
                || key.is_none() && at.elapsed() < JKU_REFETCH_MIN
            {
                return Ok(key);
            }
        }
        let set = match self.fetch(url).await {
            Ok(set) => Arc::new(set),
            Err(e) => {
                tracing::warn!(client = %client.id, error = %e, "a CDS client's jku could not be fetched");
                return Err(refused(
                    "jku_unavailable",
                    "the client's keys are unavailable",
                ));
            }
        };
        self.fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(url.to_owned(), (Instant::now(), set.clone()));
        Ok(set.by_kid.get(kid).cloned())
    }

    async fn fetch(&self, url: &str) -> anyhow::Result<KeySet> {
        let response = self.http.get(url).send().await?.error_for_status()?;
        let body: serde_json::Value = response.json().await?;
        Ok(parse_jwks(&body, &ACCEPTED))
    }
}

/// Why a JWK Set cannot be registered for a client, if it cannot: it must
/// hold 1 to 10 public signature keys, each with a `kid`, of a kind a client
/// may sign with (RSA of at least 2048 bits, EC P-256 or P-384).
pub fn check_jwks(jwks: &serde_json::Value) -> Result<(), String> {
    let keys = jwks
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("a JWK Set is {\"keys\": [...]}")?;
    if keys.is_empty() || keys.len() > 10 {
        return Err("a client's JWK Set holds 1 to 10 keys".into());
    }
    for key in keys {
        if ["d", "p", "q", "k"].iter().any(|f| key.get(f).is_some()) {
            return Err("a JWK Set to register holds public keys only".into());
        }
        let kid = key.get("kid").and_then(|k| k.as_str()).unwrap_or("");
        if kid.is_empty() {
            return Err("every key needs a kid".into());
        }
        if key
            .get("n")
            .and_then(|n| n.as_str())
            .is_some_and(|n| n.len() < 342)
        {
            return Err(format!("key {kid}: RSA keys need at least 2048 bits"));
        }
        let one = serde_json::json!({ "keys": [key] });
        if parse_jwks(&one, &ACCEPTED).by_kid.is_empty() {
            return Err(format!(
                "key {kid} is not an RSA, P-256 or P-384 signature key for ES384, ES256, RS384 or RS256"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_key_sets_hold_public_signature_keys_with_ids() {
        let p384 = serde_json::json!({"kty": "EC", "crv": "P-384", "kid": "k1",
            "x": "iA7lWQLzVrKGEFjfGMfMHfTEZ2KnLiKU7JuNT3E7ygsfE7ygsfE7ygsfE7ygsfE7",
            "y": "iA7lWQLzVrKGEFjfGMfMHfTEZ2KnLiKU7JuNT3E7ygsfE7ygsfE7ygsfE7ygsfE7"});
        let mut private = p384.clone();
        private["d"] = "AA".into();
        let mut unnamed = p384.clone();
        unnamed.as_object_mut().map(|o| o.remove("kid"));
        let hmac = serde_json::json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"});
        assert!(check_jwks(&serde_json::json!({"keys": []})).is_err());
        assert!(check_jwks(&serde_json::json!({"keys": [private]})).is_err());
        assert!(check_jwks(&serde_json::json!({"keys": [unnamed]})).is_err());
        assert!(check_jwks(&serde_json::json!({"keys": [hmac]})).is_err());
        assert!(check_jwks(&serde_json::json!([p384])).is_err());
    }

    #[test]
    fn the_claimed_issuer_is_read_without_trusting_it() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iss":"https://ehr.example.org"}"#);
        assert_eq!(
            claimed_issuer(&format!("e30.{payload}.sig")).as_deref(),
            Some("https://ehr.example.org")
        );
        assert_eq!(claimed_issuer("not a token"), None);
    }
}
