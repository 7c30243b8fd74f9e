//! Who is calling. Every non-public route takes a [`Principal`], which can only
//! be built from a valid credential: a service API token today, an OIDC bearer
//! JWT when an issuer is configured (the `Bearer` value decides which).

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
        let secret = bearer(&parts.headers)?;
        if tokens::looks_like_api_token(secret) {
            return tokens::authenticate(&state.db, secret).await;
        }
        // OIDC access tokens slot in here once an issuer is configured.
        Err(Error::unauthenticated(
            "invalid_token",
            "the bearer token is not recognised",
        ))
    }
}
