//! Who is calling. A [`Principal`] can only be built from a valid credential:
//! a service API token (`mm_...`) or, when an issuer is configured, an OIDC
//! access token (a JWT).
//!
//! Owns: credential checks (token hashes, JWT verification against the
//! provider's keys, the first sign-in of a user). Uses: `db` (tokens, users)
//! and `config`. Beside `http`, which reads the `Authorization` header and maps
//! [`AuthError`] to a problem document; nothing here knows about HTTP.

pub mod cds;
pub mod oidc;
pub mod tokens;

use std::sync::Arc;

use uuid::Uuid;

use crate::db::Db;
use crate::db::subject::Subject;

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
    /// An EHR registered as a CDS Hooks client of a clinic.
    CdsClient {
        /// The client's id.
        id: Uuid,
        /// The clinic that registered it.
        clinic: Uuid,
    },
}

/// Why a credential was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The credential is missing, malformed, unknown, expired or revoked.
    #[error("{code}: {detail}")]
    Refused {
        /// A stable code, e.g. `invalid_token`.
        code: &'static str,
        /// What was wrong, naming no claim values.
        detail: String,
    },
    /// A store failed while checking it.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AuthError {
    /// A refused credential.
    pub fn refused(code: &'static str, detail: impl Into<String>) -> AuthError {
        AuthError::Refused {
            code,
            detail: detail.into(),
        }
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::Internal(e.into())
    }
}

/// Checks bearer credentials.
pub struct Authenticator {
    db: Db,
    oidc: Option<Arc<oidc::Oidc>>,
    cds: cds::CdsVerifier,
}

impl Authenticator {
    /// Checks API tokens against `db`, and JWTs with `oidc` when configured.
    pub fn new(db: Db, oidc: Option<Arc<oidc::Oidc>>) -> Authenticator {
        Authenticator {
            cds: cds::CdsVerifier::new(db.clone()),
            db,
            oidc,
        }
    }

    /// The OIDC verifier, when an issuer is configured.
    pub fn oidc(&self) -> Option<&Arc<oidc::Oidc>> {
        self.oidc.as_ref()
    }

    /// The principal a bearer value proves, or why it proves none.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        if tokens::looks_like_api_token(bearer) {
            tokens::authenticate(&self.db, bearer).await
        } else {
            self.authenticate_jwt(bearer).await
        }
    }

    /// The principal a bearer value proves on a CDS Hooks endpoint of
    /// `clinic` whose exact URL is `audience`: a JWT signed by one of the
    /// clinic's CDS clients, or any credential [`Self::authenticate`] takes.
    pub async fn authenticate_cds(
        &self,
        clinic: Uuid,
        audience: &str,
        bearer: &str,
    ) -> Result<Principal, AuthError> {
        if !tokens::looks_like_api_token(bearer)
            && let Some(client) = self.cds.verify(clinic, audience, bearer).await?
        {
            return Ok(Principal {
                subject: client.subject,
                credential: Credential::CdsClient {
                    id: client.id,
                    clinic,
                },
                request_id: None,
            });
        }
        self.authenticate(bearer).await
    }

    /// Verifies an OIDC access token and maps `(iss, sub)` to a user.
    async fn authenticate_jwt(&self, token: &str) -> Result<Principal, AuthError> {
        let Some(oidc) = self.oidc.as_ref() else {
            return Err(AuthError::refused(
                "invalid_token",
                "the bearer token is not recognised",
            ));
        };
        let identity = oidc.verify(token).await.map_err(|e| {
            metrics::counter!("auth_rejections_total", "reason" => e.code()).increment(1);
            AuthError::refused("invalid_token", e.to_string())
        })?;
        let (user, created) = self
            .db
            .user_for(&identity.issuer, &identity.subject)
            .await?;
        if created {
            tracing::info!(user = %user.id, "first sign-in of a user; no roles yet");
        }
        Ok(Principal {
            subject: Subject::User(user.id).to_string(),
            credential: Credential::User { id: user.id },
            request_id: None,
        })
    }
}
