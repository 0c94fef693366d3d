//! How the API shows an error: every failure (the service layer's
//! face-neutral [`Error`]) becomes `{"error": {"code", "message"}}` with its
//! status. Bad input is always a 4xx; only our own faults are 500s, logged
//! with their cause and shown without it.

pub use crate::domain::Detail;
pub use crate::service::Error;
use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::WWW_AUTHENTICATE;
use serde::Serialize;

/// The machine-readable `code` of each error in the JSON body.
fn code(error: &Error) -> &'static str {
    match error {
        Error::BadRequest(_) => "bad_request",
        Error::Unauthorized(_) => "unauthorized",
        Error::Forbidden(_) => "forbidden",
        Error::NotFound(_) => "not_found",
        Error::Conflict(_) => "conflict",
        Error::InvalidState(_) => "invalid_state",
        Error::Unprocessable { .. } => "invalid",
        Error::Status { code, .. } => code,
        Error::Internal(_) => "internal",
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "<[Detail]>::is_empty")]
    details: &'a [Detail],
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        render(&self)
    }
}

/// `error` as the API's JSON error response.
pub fn render(error: &Error) -> Response {
    let (status, code) = (error.status(), code(error));
    let message = match error {
        Error::Internal(cause) => {
            tracing::error!(error = ?cause, "internal error serving API request");
            "internal error; the cause is in the control plane's log".to_owned()
        }
        other => other.to_string(),
    };
    let details = match error {
        Error::Unprocessable { details, .. } => details.as_slice(),
        _ => &[],
    };
    let mut response = (
        status,
        Json(Body {
            error: ErrorBody {
                code,
                message,
                details,
            },
        }),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
    }
    response
}
