//! `Json`, `Path` and `Query` with our error body: axum's own rejections are
//! plain text, and a client must always get `{"error": ...}`.

use super::Error;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A JSON body (requests) or JSON response. Syntax errors are 400, a body of
/// the wrong shape is 422, a missing `application/json` content type is 415.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

fn json_rejection(rejection: JsonRejection) -> Error {
    let message = rejection.body_text();
    match rejection {
        JsonRejection::JsonSyntaxError(_) => Error::BadRequest(message),
        JsonRejection::JsonDataError(_) => Error::unprocessable(message),
        JsonRejection::MissingJsonContentType(_) => Error::Status {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message,
        },
        other => match other.status() {
            s if s.is_client_error() => Error::Status { status: s, code: "bad_request", message },
            _ => Error::Internal(anyhow::anyhow!("reading request body: {message}")),
        },
    }
}

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Json::<T>::from_request(req, state).await.map(|axum::Json(v)| Json(v)).map_err(json_rejection)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Like [`Json`], but an empty body without a content type means
/// `T::default()` — for `POST /origins/{id}/approve` with no note.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonOrEmpty<T>(pub T);

impl<T, S> FromRequest<S> for JsonOrEmpty<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let no_content_type = !req.headers().contains_key(http::header::CONTENT_TYPE);
        let empty = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
        if no_content_type && empty {
            return Ok(JsonOrEmpty(T::default()));
        }
        if no_content_type {
            // No declared length: look at the body itself.
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e| Error::BadRequest(e.body_text()))?;
            if bytes.is_empty() {
                return Ok(JsonOrEmpty(T::default()));
            }
            return Err(Error::Status {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "unsupported_media_type",
                message: "expected request with `Content-Type: application/json`".into(),
            });
        }
        Json::<T>::from_request(req, state).await.map(|Json(v)| JsonOrEmpty(v))
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
