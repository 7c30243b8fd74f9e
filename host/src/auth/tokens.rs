//! Service API tokens: `mm_` followed by 256 random bits, base64url. Only the
//! SHA-256 of the whole token is stored, and lookups go by that hash, so the
//! database never holds a usable secret and comparison leaks no timing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{AuthError, Credential, Principal};
use crate::db::Db;
use crate::db::audit::AuditEvent;
use crate::db::tokens::ApiToken;

/// The prefix every MedMemory API token starts with.
pub const PREFIX: &str = "mm_";

/// A new random token secret.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a secret.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether a bearer value has the shape of an API token (not a JWT).
pub fn looks_like_api_token(secret: &str) -> bool {
    secret.starts_with(PREFIX) && secret.len() == PREFIX.len() + 43
}

/// Issues a token with the given scope and optional expiry; returns it with
/// its secret, which is never retrievable again. `audit` is recorded in the
/// same transaction (with the new token's id and role as detail).
pub async fn issue(
    db: &Db,
    name: &str,
    clinic: Option<uuid::Uuid>,
    role: &str,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    audit: &AuditEvent,
) -> sqlx::Result<(ApiToken, String)> {
    let secret = generate();
    let token = db
        .create_token(name, clinic, role, &hash(&secret), expires_at, Some(audit))
        .await?;
    Ok((token, secret))
}

/// Resolves a presented secret to a principal.
pub async fn authenticate(db: &Db, secret: &str) -> Result<Principal, AuthError> {
    let token = db.token_by_hash(&hash(secret)).await?.ok_or_else(|| {
        AuthError::refused("invalid_token", "the token is unknown, expired or revoked")
    })?;
    if let Err(e) = db.touch_token(token.id).await {
        tracing::warn!(error = %e, "could not record token use");
    }
    Ok(Principal {
        subject: token.subject(),
        credential: Credential::ApiToken {
            id: token.id,
            clinic: token.clinic_id,
        },
        request_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape_and_differ() {
        let a = generate();
        let b = generate();
        assert!(looks_like_api_token(&a), "{a}");
        assert_ne!(a, b);
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 64);
    }

    #[test]
    fn jwts_are_not_api_tokens() {
        assert!(!looks_like_api_token("eyJhbGciOiJSUzI1NiJ9.e30.sig"));
        assert!(!looks_like_api_token("mm_short"));
    }
}
