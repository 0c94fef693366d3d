//! [`Error`]: why a write (or an extractor) refused, without saying how to
//! show it. Each face renders it its own way, in one place: the REST API as
//! `{"error": {"code", "message"}}` (`api/error.rs`), the admin UI as an
//! error page or a flash message (`ui/page.rs`).

use crate::auth::KeyError;
use crate::domain::Detail;
use crate::store::StoreError;
use http::StatusCode;

/// Everything a write, a check or an extractor can refuse with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (not JSON, a bad path, query or form).
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials, not allowed (role too low, four eyes, CSRF).
    #[error("{0}")]
    Forbidden(String),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// It exists already.
    #[error("{0}")]
    Conflict(String),
    /// Not allowed in the current state (e.g. approving a rejected origin).
    #[error("{0}")]
    InvalidState(String),
    /// Well-formed but invalid; `details` lists every problem found (e.g.
    /// the engine's, field by field).
    #[error("{message}")]
    Unprocessable {
        /// Summary.
        message: String,
        /// Each problem.
        details: Vec<Detail>,
    },
    /// Another 4xx refused by the HTTP layer before any rule ran (405, 413,
    /// 415), with a machine-readable code.
    #[error("{message}")]
    Status {
        /// The status.
        status: StatusCode,
        /// Machine-readable code.
        code: &'static str,
        /// Message.
        message: String,
    },
    /// The database cannot be reached right now (down, restarting, or no
    /// connection free within the pool's acquire timeout): nothing was
    /// written; the same request may be retried shortly. Both HTTP faces
    /// answer 503 with `Retry-After: `[`RETRY_AFTER_SECS`].
    #[error("{0}")]
    Unavailable(String),
    /// Our fault. The cause is logged by the face, never shown. Built from
    /// an `anyhow::Error` with `.into()`, which turns a database outage in
    /// the cause chain into [`Error::Unavailable`] instead.
    #[error(transparent)]
    Internal(anyhow::Error),
}

/// Seconds a client is asked to wait (`Retry-After`) after
/// [`Error::Unavailable`]: about how long a database restart takes.
pub const RETRY_AFTER_SECS: u64 = 5;

/// The message of every [`Error::Unavailable`] caused by the database.
const DATABASE_UNAVAILABLE: &str = "the control plane cannot reach its database right now (down, restarting or overloaded); nothing was changed; retry shortly";

impl Error {
    /// An [`Error::Unprocessable`] with a single message and no details.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Error::Unprocessable {
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// The HTTP status both HTTP faces (REST and UI) answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) | Error::InvalidState(_) => StatusCode::CONFLICT,
            Error::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Status { status, .. } => *status,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(cause: anyhow::Error) -> Self {
        let outage = cause.chain().any(|c| {
            c.downcast_ref::<StoreError>()
                .is_some_and(StoreError::is_unavailable)
                || c.downcast_ref::<sqlx::Error>()
                    .is_some_and(crate::store::is_unavailable)
        });
        if outage {
            tracing::warn!(error = format!("{cause:#}"), "database unavailable");
            return Error::Unavailable(DATABASE_UNAVAILABLE.to_owned());
        }
        Error::Internal(cause)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable");
                Error::Unavailable(DATABASE_UNAVAILABLE.to_owned())
            }
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
