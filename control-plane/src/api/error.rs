//! The API's one error type: every failure becomes
//! `{"error": {"code", "message"}}` with a fitting status. Bad input is
//! always a 4xx; only our own faults are 500s, logged with their cause and
//! shown without it.

use crate::auth::KeyError;
use crate::store::StoreError;
use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::WWW_AUTHENTICATE;
use serde::Serialize;

/// One problem in a request body, e.g. from policy validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Detail {
    /// The field, e.g. `origins[2]` or `max_age_secs`.
    pub field: String,
    /// The offending value as given.
    pub value: String,
    /// What is wrong.
    pub message: String,
}

/// Everything a handler or extractor can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: the request is malformed (not JSON, bad path or query).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: valid token, insufficient role.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing.
    #[error("{0}")]
    NotFound(String),
    /// 409: it exists already.
    #[error("{0}")]
    Conflict(String),
    /// 409: not allowed in the current state (e.g. approving a rejected origin).
    #[error("{0}")]
    InvalidState(String),
    /// 422: well-formed but invalid; `details` lists every problem found.
    #[error("{message}")]
    Unprocessable {
        /// Summary.
        message: String,
        /// Each problem.
        details: Vec<Detail>,
    },
    /// Another 4xx passed through from an extractor (413, 415, 405).
    #[error("{message}")]
    Status {
        /// The status.
        status: StatusCode,
        /// Machine-readable code.
        code: &'static str,
        /// Message.
        message: String,
    },
    /// 500: our fault. The cause is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// A 422 with a single message and no details.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Error::Unprocessable {
            message: message.into(),
            details: Vec::new(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::InvalidState(_) => (StatusCode::CONFLICT, "invalid_state"),
            Error::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Error::Status { status, code, .. } => (*status, code),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
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
    /// `method_not_allowed`, `unsupported_media_type` or `internal`.
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
        let (status, code) = self.status_and_code();
        let message = match &self {
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error serving API request");
                "internal error; the cause is in the control plane's log".to_owned()
            }
            other => other.to_string(),
        };
        let details = match &self {
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
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Error::NotFound(format!("{what} not found")),
            StoreError::Conflict(m) => Error::Conflict(m),
            StoreError::InvalidState(m) => Error::InvalidState(m),
            // Input is validated before it reaches the database; these are
            // the safety net that keeps a missed case from becoming a 500.
            StoreError::Database(sqlx::Error::Database(db)) if db.is_check_violation() => {
                Error::unprocessable(format!("value refused by the database: {}", db.message()))
            }
            // Postgres text cannot hold NUL (22021) or other untranslatable
            // characters (22P05): that is the client's input, not our fault.
            StoreError::Database(sqlx::Error::Database(db))
                if matches!(db.code().as_deref(), Some("22021" | "22P05")) =>
            {
                Error::unprocessable("text fields must not contain NUL characters")
            }
            StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Error::Conflict(format!("already exists: {}", db.message()))
            }
            other => Error::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::Internal(anyhow::Error::new(e))
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Internal(anyhow::Error::new(e))
    }
}
