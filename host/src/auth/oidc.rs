//! OIDC bearer access tokens from the clinic's identity provider.
//!
//! Discovery (openidconnect) pins the issuer: a provider whose metadata names
//! another issuer is refused. Access tokens are then checked on every request
//! against the provider's JWKS, held in memory and swapped atomically:
//!
//! - the algorithm comes from the key, never from the token alone: RS256 and
//!   PS256 for RSA keys, ES256 for P-256 keys, narrowed by the key's own `alg`;
//!   `none` and every HMAC algorithm are refused outright;
//! - exact `iss` and `aud`, required `exp`, `sub`, `iss` and `aud`, `nbf`
//!   honoured, a bounded leeway, and the `typ` header (`at+jwt`, RFC 9068)
//!   when configured;
//! - ID tokens (they carry `nonce`, `at_hash` or `c_hash`) are refused;
//! - an unknown `kid` triggers one refetch of the JWKS, shared by every
//!   request waiting on it (single flight) and at most one per
//!   `refetch_min`, so random kids cannot hammer the provider; a periodic
//!   refresh picks up rotations too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openidconnect::core::CoreProviderMetadata;
use openidconnect::{IssuerUrl, reqwest};
use serde::Deserialize;

/// How the API checks access tokens.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer URL, exactly as the provider names itself.
    pub issuer: String,
    /// The API's audience: tokens must name it in `aud`.
    pub audience: String,
    /// The required `typ` header (compared case-insensitively, with or without
    /// `application/`); `None` accepts any.
    pub token_type: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// How often the JWKS is refreshed in the background.
    pub refresh: Duration,
    /// The least time between two refetches caused by unknown key ids.
    pub refetch_min: Duration,
}

impl OidcSettings {
    /// How access tokens are checked, when an issuer is configured. An issuer
    /// without an audience is a configuration error.
    pub fn from_settings(
        settings: &crate::config::Settings,
    ) -> Result<Option<OidcSettings>, String> {
        let Some(issuer) = settings.oidc_issuer.clone().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let audience = settings
            .oidc_audience
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or("MEDMEMORY_OIDC_AUDIENCE is required with MEDMEMORY_OIDC_ISSUER")?;
        let token_type = Some(settings.oidc_token_type.trim().to_owned()).filter(|t| !t.is_empty());
        Ok(Some(OidcSettings {
            issuer,
            audience,
            token_type,
            leeway: Duration::from_secs(settings.oidc_leeway_secs),
            refresh: Duration::from_secs(settings.oidc_jwks_refresh_secs.max(1)),
            refetch_min: Duration::from_millis(settings.oidc_jwks_refetch_min_ms),
        }))
    }
}

/// The longest leeway accepted, whatever the settings say.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Why a token was refused. The messages name no claim values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWS compact token, or its header is unreadable.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The algorithm is not one the key allows.
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// The `typ` header is not the required one.
    #[error("the token is not an access token (typ)")]
    Type,
    /// An ID token was presented where an access token is required.
    #[error("ID tokens are not accepted; send an access token")]
    IdToken,
    /// No key of the provider has this `kid`.
    #[error("the token is signed with an unknown key")]
    UnknownKey,
    /// The signature or a claim (iss, aud, exp, nbf, sub) does not hold.
    #[error("the token is invalid: {0}")]
    Invalid(&'static str),
    /// The provider's keys are not loaded yet.
    #[error("the identity provider's keys are not loaded yet")]
    NotReady,
}

impl TokenError {
    /// A stable label for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::Algorithm => "algorithm",
            TokenError::Type => "type",
            TokenError::IdToken => "id_token",
            TokenError::UnknownKey => "unknown_key",
            TokenError::Invalid(_) => "invalid",
            TokenError::NotReady => "not_ready",
        }
    }
}

/// A verified caller: who the provider says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The issuer.
    pub issuer: String,
    /// The provider's subject id.
    pub subject: String,
}

/// One verification key and the algorithms it may verify.
pub(super) struct Key {
    pub(super) decoding: DecodingKey,
    pub(super) algorithms: Vec<Algorithm>,
}

/// A JWK Set's usable keys, by key id; keys without a `kid` are tried in
/// order.
#[derive(Default)]
pub(super) struct KeySet {
    pub(super) by_kid: HashMap<String, Arc<Key>>,
    pub(super) unnamed: Vec<Arc<Key>>,
}

/// The access-token verifier of one issuer.
pub struct Oidc {
    settings: OidcSettings,
    http: reqwest::Client,
    jwks_uri: RwLock<Option<String>>,
    keys: RwLock<Arc<KeySet>>,
    loaded: AtomicBool,
    /// Held while a refetch runs; remembers when the last one started.
    refetch: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    iss: Option<String>,
    nonce: Option<serde_json::Value>,
    at_hash: Option<serde_json::Value>,
    c_hash: Option<serde_json::Value>,
}

/// The algorithms accepted at all.
const ACCEPTED: [Algorithm; 3] = [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256];

impl Oidc {
    /// A verifier with no keys yet; [`Oidc::refresh`] loads them.
    pub fn new(mut settings: OidcSettings) -> anyhow::Result<Oidc> {
        settings.leeway = settings.leeway.min(MAX_LEEWAY);
        let http = reqwest::ClientBuilder::new()
            // Discovery must not follow redirects (SSRF), per openidconnect.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Oidc {
            settings,
            http,
            jwks_uri: RwLock::new(None),
            keys: RwLock::new(Arc::new(KeySet::default())),
            loaded: AtomicBool::new(false),
            refetch: tokio::sync::Mutex::new(None),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Whether the provider's keys have been loaded at least once.
    pub fn is_ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Discovers the provider (once) and reloads its keys.
    pub async fn refresh(&self) -> anyhow::Result<usize> {
        let known = self
            .jwks_uri
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let uri = match known {
            Some(uri) => uri,
            None => {
                let issuer = IssuerUrl::new(self.settings.issuer.clone())?;
                let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
                    .await
                    .map_err(|e| anyhow::anyhow!("OIDC discovery failed: {e}"))?;
                let uri = metadata.jwks_uri().url().to_string();
                *self.jwks_uri.write().unwrap_or_else(|e| e.into_inner()) = Some(uri.clone());
                uri
            }
        };
        let response = self.http.get(&uri).send().await?.error_for_status()?;
        let body: serde_json::Value = response.json().await?;
        let set = parse_jwks(&body, &ACCEPTED);
        let count = set.by_kid.len() + set.unnamed.len();
        if count == 0 {
            anyhow::bail!("the provider's JWKS has no usable signing key");
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        self.loaded.store(true, Ordering::Release);
        metrics::counter!("oidc_jwks_fetches_total").increment(1);
        Ok(count)
    }

    /// Refreshes the keys forever: quickly until the first load succeeds,
    /// then every `refresh`.
    pub async fn keep_fresh(self: Arc<Self>) {
        let mut retry = Duration::from_millis(250);
        loop {
            match self.refresh().await {
                Ok(keys) => {
                    tracing::info!(keys, "identity provider keys loaded");
                    retry = Duration::from_millis(250);
                    tokio::time::sleep(self.settings.refresh).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "identity provider keys unavailable; retrying");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// A refetch caused by an unknown key id: one at a time, at most one per
    /// `refetch_min`. Callers look the key up again afterwards either way.
    async fn refetch_for_unknown_kid(&self) {
        let mut last = self.refetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.settings.refetch_min) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "JWKS refetch for an unknown key id failed");
        }
    }

    fn key_for(&self, kid: Option<&str>) -> Vec<Arc<Key>> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        match kid {
            Some(kid) => keys.by_kid.get(kid).cloned().into_iter().collect(),
            None => keys
                .unnamed
                .iter()
                .chain(keys.by_kid.values())
                .cloned()
                .collect(),
        }
    }

    /// Verifies an access token and returns who it names.
    pub async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        if !self.is_ready() {
            return Err(TokenError::NotReady);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(TokenError::Algorithm);
        }
        if let Some(required) = &self.settings.token_type
            && !typ_matches(header.typ.as_deref(), required)
        {
            return Err(TokenError::Type);
        }
        let mut candidates = self.key_for(header.kid.as_deref());
        if candidates.is_empty() && header.kid.is_some() {
            self.refetch_for_unknown_kid().await;
            candidates = self.key_for(header.kid.as_deref());
        }
        if candidates.is_empty() {
            return Err(TokenError::UnknownKey);
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway.as_secs();
        let mut last = TokenError::Algorithm;
        for key in candidates {
            if !key.algorithms.contains(&header.alg) {
                continue;
            }
            match jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation) {
                Ok(data) => return identity(data.claims),
                Err(e) => last = TokenError::Invalid(reason(e.kind())),
            }
        }
        Err(last)
    }
}

fn identity(claims: Claims) -> Result<Identity, TokenError> {
    if claims.nonce.is_some() || claims.at_hash.is_some() || claims.c_hash.is_some() {
        return Err(TokenError::IdToken);
    }
    match (claims.iss, claims.sub) {
        (Some(issuer), Some(subject)) if !subject.is_empty() && subject.len() <= 255 => {
            Ok(Identity { issuer, subject })
        }
        _ => Err(TokenError::Invalid("sub")),
    }
}

fn reason(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not yet valid",
        K::InvalidIssuer => "issuer",
        K::InvalidAudience => "audience",
        K::InvalidSignature => "signature",
        K::MissingRequiredClaim(_) => "missing claim",
        K::InvalidAlgorithm => "algorithm",
        _ => "malformed",
    }
}

fn typ_matches(typ: Option<&str>, required: &str) -> bool {
    let Some(typ) = typ else { return false };
    let strip = |s: &str| {
        let s = s.trim().to_ascii_lowercase();
        s.strip_prefix("application/")
            .map(str::to_owned)
            .unwrap_or(s)
    };
    strip(typ) == strip(required)
}

/// Parses a JWKS leniently: keys that are not signature keys of an accepted
/// kind are skipped rather than failing the whole set.
pub(super) fn parse_jwks(body: &serde_json::Value, accepted: &[Algorithm]) -> KeySet {
    let mut set = KeySet::default();
    let Some(keys) = body.get("keys").and_then(|k| k.as_array()) else {
        return set;
    };
    for raw in keys {
        if raw
            .get("use")
            .and_then(|u| u.as_str())
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            continue;
        };
        let Some(key) = key_of(&jwk, accepted) else {
            continue;
        };
        match jwk.common.key_id {
            Some(kid) => {
                set.by_kid.insert(kid, Arc::new(key));
            }
            None => set.unnamed.push(Arc::new(key)),
        }
    }
    set
}

/// The key of a JWK and the `accepted` algorithms it may verify: those of
/// its family (RSA; EC on P-256 or P-384), narrowed by its own `alg`.
fn key_of(jwk: &Jwk, accepted: &[Algorithm]) -> Option<Key> {
    use Algorithm as A;
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            &[A::RS256, A::RS384, A::RS512, A::PS256, A::PS384, A::PS512]
        }
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => &[A::ES256],
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => &[A::ES384],
        _ => return None,
    };
    let pinned = match jwk.common.key_algorithm {
        None => None,
        Some(alg) => Some(Algorithm::try_from(alg).ok()?),
    };
    let algorithms: Vec<Algorithm> = family
        .iter()
        .copied()
        .filter(|a| accepted.contains(a) && pinned.is_none_or(|p| p == *a))
        .collect();
    if algorithms.is_empty() {
        return None;
    }
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        decoding,
        algorithms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_comparison_ignores_case_and_media_prefix() {
        assert!(typ_matches(Some("at+jwt"), "at+jwt"));
        assert!(typ_matches(Some("application/AT+JWT"), "at+jwt"));
        assert!(!typ_matches(Some("JWT"), "at+jwt"));
        assert!(!typ_matches(None, "at+jwt"));
    }

    #[test]
    fn jwks_parsing_keeps_only_accepted_signature_keys() {
        let body = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": "sXch", "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa", "alg": "PS256", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"}
        ]});
        let set = parse_jwks(&body, &ACCEPTED);
        assert_eq!(set.by_kid.len(), 1, "only the RSA signature key is usable");
        let rsa = &set.by_kid["rsa"];
        assert_eq!(
            rsa.algorithms,
            vec![Algorithm::PS256],
            "the key's alg narrows the family"
        );
    }
}
