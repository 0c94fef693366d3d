//! Browser sessions: the session cookie, CSRF tokens and the form extractor
//! that checks them.
//!
//! The session is the same signed user JWT the REST login returns, carried
//! in an `HttpOnly`, `SameSite=Strict` cookie; logout puts its id on the
//! revocation list. Every state-changing form carries a `csrf` field: an
//! HMAC of the session id under the signing key, which a page on another
//! site can neither read nor compute.

use super::SigningKey;
use super::extract::{AuthRejection, CurrentUser};
use crate::service::Error;
use crate::store::Store;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use chrono::{DateTime, Utc};
use cookie::time::Duration;
use cookie::{Cookie, SameSite};
use http::HeaderMap;
use http::header::COOKIE;
use serde::de::DeserializeOwned;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "corsair_session";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// The value of cookie `name` in the request's `Cookie` headers
/// (percent-decoded, surrounding quotes removed), parsed by the `cookie`
/// crate; `None` when absent or unparsable.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse_encoded)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value_trimmed().to_owned())
}

/// A `Set-Cookie` value for cookie `name` holding `value` (percent-encoded)
/// under `path`: `HttpOnly`, `SameSite=Strict`, kept `max_age_secs` seconds
/// (0 removes it), `Secure` when `secure`.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age_secs: i64, secure: bool) -> String {
    let mut cookie = Cookie::build((name.to_owned(), value.to_owned()))
        .path(path.to_owned())
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure);
    cookie = if max_age_secs > 0 {
        cookie.max_age(Duration::seconds(max_age_secs))
    } else {
        cookie.removal()
    };
    cookie.build().encoded().to_string()
}

/// `Set-Cookie` for a new session token valid until `expires_at`.
pub fn session_cookie(token: &str, expires_at: DateTime<Utc>, secure: bool) -> String {
    let max_age = (expires_at - Utc::now()).num_seconds().max(0);
    set_cookie(SESSION_COOKIE, token, "/", max_age, secure)
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session_cookie(secure: bool) -> String {
    set_cookie(SESSION_COOKIE, "", "/", 0, secure)
}

/// The CSRF token of session `id`: 64 hex digits.
pub fn csrf_for(keys: &SigningKey, id: uuid::Uuid) -> String {
    keys.mac_hex(&csrf_message(id))
}

/// Whether `given` is the CSRF token of session `id` (constant time; any
/// other value, length or encoding is `false`).
pub fn csrf_valid(keys: &SigningKey, id: uuid::Uuid, given: &str) -> bool {
    keys.verify_mac_hex(&csrf_message(id), given)
}

fn csrf_message(id: uuid::Uuid) -> String {
    format!("csrf:{id}")
}

/// A URL-encoded form whose `csrf` field matches the caller's session;
/// otherwise 403 (page or JSON). `T` is parsed from the same body; a body
/// that does not fit `T` is a 400.
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

#[derive(serde::Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

impl<S, T> FromRequest<S> for CsrfForm<T>
where
    S: Send + Sync,
    SigningKey: FromRef<S>,
    Store: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = AuthRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let user = CurrentUser::from_request_parts(&mut parts, state).await?;
        let refuse = |error: Error, user: Option<CurrentUser>| AuthRejection {
            error,
            user,
            path: parts.uri.path().to_owned(),
        };
        let bytes = axum::body::to_bytes(body, 64 * 1024).await.map_err(|_| {
            refuse(
                Error::BadRequest("form too large".into()),
                Some(user.clone()),
            )
        })?;
        let given: CsrfOnly = serde_urlencoded_from(&bytes).unwrap_or(CsrfOnly {
            csrf: String::new(),
        });
        // API tokens never come from a browser form: they have no CSRF token.
        let keys = SigningKey::from_ref(state);
        let valid = user
            .session
            .as_ref()
            .is_some_and(|s| csrf_valid(&keys, s.id, &given.csrf));
        if !valid {
            return Err(refuse(
                Error::Forbidden(
                    "this form's security token is missing or stale; reload the page and try again"
                        .into(),
                ),
                Some(user),
            ));
        }
        let value = serde_urlencoded_from::<T>(&bytes).map_err(|e| {
            refuse(
                Error::BadRequest(format!("malformed form: {e}")),
                Some(user.clone()),
            )
        })?;
        Ok(CsrfForm(value))
    }
}

/// Parses a URL-encoded body.
fn serde_urlencoded_from<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_urlencoded::from_bytes(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
