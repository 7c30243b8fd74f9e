//! Extractors that turn axum's plain-text rejections into problem documents.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::error::Error;

/// A JSON request body: malformed JSON is 400; anything but an object, or
/// an object of the wrong shape, is 422.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Every body is a JSON object: serde would also read a struct from
        // an array of its fields (`[]` as an empty policy), so anything else
        // is refused before it is read into `T`.
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) if !value.is_object() => Err(Error::invalid(
                "invalid_body",
                "the body must be a JSON object",
            )),
            Ok(axum::Json(value)) => serde_json::from_value::<T>(value)
                .map(Json)
                .map_err(|e| Error::invalid("invalid_body", format!("invalid body: {e}"))),
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(Error::bad_request("malformed_json", e.body_text()))
            }
            Err(JsonRejection::JsonDataError(e)) => {
                Err(Error::invalid("invalid_body", e.body_text()))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(Error::problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            )),
            Err(JsonRejection::BytesRejection(e)) => Err(bytes_rejection(e)),
            Err(e) => Err(Error::bad_request("malformed_body", e.body_text())),
        }
    }
}

/// A raw request body, not read yet: the handler authorizes the caller
/// first, then reads it ([`RawBody::read`]) within the route's size limit, so
/// an unauthorized caller never makes the server buffer megabytes.
pub struct RawBody(Request);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Error;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RawBody(req))
    }
}

impl RawBody {
    /// Reads the whole body; 413 past the route's limit.
    pub async fn read(self) -> Result<Bytes, Error> {
        Bytes::from_request(self.0, &())
            .await
            .map_err(bytes_rejection)
    }
}

/// Marks a refusal on a route with a [`RawBody`] `Connection: close`: the
/// handler may have answered before reading the body, and a client must not
/// send its next request on a connection that still carries those bytes.
pub async fn close_after_refusal(mut response: Response) -> Response {
    if !response.status().is_success() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn bytes_rejection(e: BytesRejection) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is larger than this route accepts",
        )
    } else {
        Error::bad_request("unreadable_body", "the request body could not be read")
    }
}

/// Query parameters; a bad value is 400.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e: QueryRejection| Error::bad_request("invalid_query", e.body_text()))
    }
}
