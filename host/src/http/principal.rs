//! The [`Principal`] extractor: reads the credential from the
//! `Authorization` header (never from the URL: URLs end up in logs and browser
//! histories), checks it with [`Authenticator`](crate::auth::Authenticator),
//! and stamps the request id for the audit trail.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::AppState;
use super::error::Error;
use crate::auth::{AuthError, Principal};

impl From<AuthError> for Error {
    fn from(e: AuthError) -> Error {
        match e {
            AuthError::Refused { code, detail } => Error::unauthenticated(code, detail),
            AuthError::Internal(e) => Error::Internal(e),
        }
    }
}

/// The bearer value of the `Authorization` header, if well formed.
pub(super) fn bearer(headers: &HeaderMap) -> Result<&str, Error> {
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
        let mut principal = state.auth.authenticate(credential(parts)?).await?;
        principal.request_id = request_id(parts);
        Ok(principal)
    }
}

/// The bearer credential of a request, from the `Authorization` header;
/// one sent in the query string is refused.
pub(super) fn credential(parts: &Parts) -> Result<&str, Error> {
    if token_in_query(parts.uri.query()) {
        return Err(Error::unauthenticated(
            "token_in_query",
            "send credentials in the Authorization header, never in the URL",
        ));
    }
    bearer(&parts.headers)
}

/// The id of the request being served, for the audit trail.
pub(super) fn request_id(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<tower_http::request_id::RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .map(str::to_owned)
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
