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
use http::HeaderMap;
use http::header::COOKIE;
use serde::de::DeserializeOwned;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "corsair_session";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

/// `Set-Cookie` for a new session token valid until `expires_at`.
pub fn session_cookie(token: &str, expires_at: DateTime<Utc>, secure: bool) -> String {
    let max_age = (expires_at - Utc::now()).num_seconds().max(0);
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The CSRF token of session `id`.
pub fn csrf_for(keys: &SigningKey, id: uuid::Uuid) -> String {
    keys.mac_hex(&format!("csrf:{id}"))
}

/// Constant-time comparison, so the token cannot be guessed byte by byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
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
        let expected = user
            .session
            .as_ref()
            .map(|s| s.csrf.clone())
            .unwrap_or_default();
        if expected.is_empty() || !same(&given.csrf, &expected) {
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
