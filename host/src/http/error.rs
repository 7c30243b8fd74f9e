//! One error type for every handler, rendered as RFC 9457 problem+json with a
//! stable `code`. Internal errors are logged with their cause and sent to the
//! client as a bare 500: no stack traces, no SQL, no patient data.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The problem document sent to clients.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type: `/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the problem type.
    #[schema(value_type = String)]
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request, without patient data.
    pub detail: String,
    /// The stable machine-readable code, e.g. `patient_not_found`.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// The request id, as in the `x-request-id` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An error a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client-visible problem.
    #[error("{code}: {detail}")]
    Problem {
        /// The HTTP status.
        status: StatusCode,
        /// The stable code.
        code: &'static str,
        /// The explanation.
        detail: String,
    },
    /// Anything else: logged, then reported as a bare 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Internal(e.into())
    }
}

impl Error {
    /// A problem with any status.
    pub fn problem(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Error {
        Error::Problem {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Error {
        Self::problem(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 401: no or bad credentials.
    pub fn unauthenticated(code: &'static str, detail: impl Into<String>) -> Error {
        Self::problem(StatusCode::UNAUTHORIZED, code, detail)
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden() -> Error {
        Self::problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your role does not allow this",
        )
    }

    /// 404: not found, or not visible to the caller.
    pub fn not_found(code: &'static str) -> Error {
        Self::problem(
            StatusCode::NOT_FOUND,
            code,
            "no such resource, or it is not visible to you",
        )
    }

    /// 409: conflicts with the current state.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Error {
        Self::problem(StatusCode::CONFLICT, code, detail)
    }

    /// 422: well formed but invalid.
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Error {
        Self::problem(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// The problem document for this error (without request id).
    pub fn to_problem(&self) -> Problem {
        match self {
            Error::Problem {
                status,
                code,
                detail,
            } => Problem {
                kind: format!("/problems/{code}"),
                title: status.canonical_reason().unwrap_or("Error"),
                status: status.as_u16(),
                detail: detail.clone(),
                code,
                request_id: None,
            },
            Error::Internal(_) => Problem {
                kind: "/problems/internal".into(),
                title: "Internal Server Error",
                status: 500,
                detail: "an internal error occurred; quote the request id when reporting it".into(),
                code: "internal",
                request_id: None,
            },
        }
    }
}

/// Attaches the request id to problem responses (see `http::problem_request_id`).
#[derive(Debug, Clone)]
pub struct ProblemBody(pub Problem);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(cause) = &self {
            // The cause may name a table or a path; never a patient value.
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let problem = self.to_problem();
        problem_response(problem)
    }
}

/// Renders a problem document with its headers.
pub fn problem_response(problem: Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(problem.clone())).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        let challenge = match problem.code {
            "missing_credentials" => "Bearer".to_owned(),
            _ => "Bearer error=\"invalid_token\"".to_owned(),
        };
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response.extensions_mut().insert(ProblemBody(problem));
    response
}

/// A handler result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
