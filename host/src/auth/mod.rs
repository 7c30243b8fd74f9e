//! Who is calling. Every non-public route takes a [`Principal`], which can only
//! be built from a valid credential: a service API token (`mm_...`) or, when an
//! issuer is configured, an OIDC access token (a JWT). Credentials travel only
//! in the `Authorization` header: a token in the query string is refused, since
//! URLs end up in logs and browser histories.

pub mod oidc;
pub mod tokens;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use uuid::Uuid;

use crate::app::AppState;
use crate::http::error::Error;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The casbin subject, e.g. `token:<id>`.
    pub subject: String,
    /// How the caller proved who they are.
    pub credential: Credential,
    /// The id of the request being served, for the audit trail.
    pub request_id: Option<String>,
}

/// The kind of credential behind a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A service API token.
    ApiToken {
        /// The token's id.
        id: Uuid,
        /// The clinic the token is bound to, if any.
        clinic: Option<Uuid>,
    },
    /// A person signed in through the OIDC provider.
    User {
        /// MedMemory's id for the user.
        id: Uuid,
    },
}

/// The bearer value of the `Authorization` header, if well formed.
fn bearer(headers: &HeaderMap) -> Result<&str, Error> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        Error::unauthenticated("missing_credentials", "send Authorization: Bearer <token>")
    })?;
    let value = value.to_str().map_err(|_| {
        Error::unauthenticated(
            "invalid_credentials",
            "the Authorization header is not text",
        )
    })?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        Error::unauthenticated("invalid_credentials", "expected the Bearer scheme")
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Error::unauthenticated(
            "invalid_credentials",
            "expected the Bearer scheme",
        ));
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if token_in_query(parts.uri.query()) {
            return Err(Error::unauthenticated(
                "token_in_query",
                "send credentials in the Authorization header, never in the URL",
            ));
        }
        let secret = bearer(&parts.headers)?;
        let mut principal = if tokens::looks_like_api_token(secret) {
            tokens::authenticate(&state.db, secret).await?
        } else {
            authenticate_jwt(state, secret).await?
        };
        principal.request_id = parts
            .extensions
            .get::<tower_http::request_id::RequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .map(str::to_owned);
        Ok(principal)
    }
}

/// Whether the query string carries a credential (`access_token=`, RFC 6750 §2.3).
fn token_in_query(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("access_token"))
        })
    })
}

/// Verifies an OIDC access token and maps `(iss, sub)` to a user.
async fn authenticate_jwt(state: &AppState, token: &str) -> Result<Principal, Error> {
    let Some(oidc) = state.oidc.as_ref() else {
        return Err(Error::unauthenticated(
            "invalid_token",
            "the bearer token is not recognised",
        ));
    };
    let identity = oidc.verify(token).await.map_err(|e| {
        metrics::counter!("auth_rejections_total", "reason" => e.code()).increment(1);
        Error::unauthenticated("invalid_token", e.to_string())
    })?;
    let (user, created) = state
        .db
        .user_for(&identity.issuer, &identity.subject)
        .await?;
    if created {
        tracing::info!(user = %user.id, "first sign-in of a user; no roles yet");
    }
    Ok(Principal {
        subject: user.subject_name(),
        credential: Credential::User { id: user.id },
        request_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::token_in_query;

    #[test]
    fn tokens_in_the_query_string_are_spotted() {
        assert!(token_in_query(Some("access_token=abc")));
        assert!(token_in_query(Some("limit=5&ACCESS_TOKEN=abc")));
        assert!(!token_in_query(Some("limit=5")));
        assert!(!token_in_query(None));
    }
}
