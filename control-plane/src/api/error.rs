//! How the API shows an error: every failure (the service layer's
//! face-neutral [`Error`]) becomes `{"error": {"code", "message"}}` with its
//! status. Bad input is always a 4xx; only our own faults are 500s, logged
//! with their cause and shown without it.

pub use crate::domain::Detail;
pub use crate::service::Error;
use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
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
        Error::Unavailable(_) => "unavailable",
        Error::Internal(_) => "internal",
    }
}

/// The body of every error response: `{"error": {"code", "message", "details"?}}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorResponse)]
pub struct Body<'a> {
    /// What went wrong.
    pub error: ErrorBody<'a>,
}

/// The `error` member of an error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// Machine-readable: `bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `invalid_state`, `invalid`,
    /// `method_not_allowed`, `unsupported_media_type`, `unavailable` (503:
    /// the database cannot be reached; retry after `Retry-After` seconds)
    /// or `internal`.
    #[schema(example = "not_found")]
    pub code: &'a str,
    /// For people: what is wrong and, where there is one, what to do.
    pub message: String,
    /// Each problem, when the request had several (422 only).
    #[serde(skip_serializing_if = "<[Detail]>::is_empty")]
    pub details: &'a [Detail],
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
    if let Error::Unavailable(_) = error {
        response.headers_mut().insert(
            RETRY_AFTER,
            http::HeaderValue::from(crate::service::RETRY_AFTER_SECS),
        );
    }
    response
}
