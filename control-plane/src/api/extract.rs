//! `Json`, `Path` and `Query` with our error body: axum's own rejections are
//! plain text, and a client must always get `{"error": ...}`.

use super::Error;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A JSON body (requests) or JSON response. A body that is not JSON at all
/// is 400, JSON of the wrong shape is 422, a missing `application/json`
/// content type is 415.
///
/// We parse ourselves rather than wrap `axum::Json`: its syntax/data split
/// depends on which error serde meets first, so truncated JSON of the wrong
/// shape (`[1,2`) came out as 422 instead of 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

fn unsupported_media_type() -> Error {
    Error::Status {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        code: "unsupported_media_type",
        message: "expected a request body with `Content-Type: application/json`".into(),
    }
}

/// `application/json`, with parameters, or any `+json` type.
fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Error> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        let status = rejection.status();
        let message = rejection.body_text();
        if status.is_client_error() {
            // e.g. 413 for a body over the limit.
            Error::Status {
                status,
                code: "bad_request",
                message,
            }
        } else {
            Error::Internal(anyhow::anyhow!("reading request body: {message}"))
        }
    })
}

/// Parses `bytes` as a `T`: 400 unless it is JSON, 422 unless it fits `T`.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(Error::BadRequest(format!(
            "malformed JSON in request body: {e}"
        )));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Error::unprocessable(format!("invalid request body: {e}")))
}

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(unsupported_media_type());
        }
        let bytes = body_bytes(req, state).await?;
        parse(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Like [`Json`], but an empty body (or JSON `null`) means `T::default()` —
/// for `POST /origins/{id}/approve` with no note.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonOrEmpty<T>(pub T);

impl<T, S> FromRequest<S> for JsonOrEmpty<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers());
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Ok(JsonOrEmpty(T::default()));
        }
        if !json {
            return Err(unsupported_media_type());
        }
        // `null` is JSON's spelling of "nothing", as the document's optional
        // body allows.
        if serde_json::from_slice::<Option<serde::de::IgnoredAny>>(&bytes)
            .is_ok_and(|v| v.is_none())
        {
            return Ok(JsonOrEmpty(T::default()));
        }
        parse(&bytes).map(JsonOrEmpty)
    }
}

/// Path parameters; a value of the wrong type (e.g. `/origins/abc`) is 400.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|rejection: PathRejection| match rejection.status() {
                s if s.is_server_error() => Error::Internal(anyhow::anyhow!(rejection.body_text())),
                _ => Error::BadRequest(rejection.body_text()),
            })
    }
}

/// Query parameters; a malformed query string is 400.
#[derive(Debug, Clone, Copy)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|rejection: QueryRejection| Error::BadRequest(rejection.body_text()))
    }
}
