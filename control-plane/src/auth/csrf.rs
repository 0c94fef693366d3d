//! CSRF for the REST API: a write under `/api/` that is authenticated by
//! the session cookie (a browser, which sends the cookie on its own) must
//! also carry the session's CSRF token in [`CSRF_HEADER`], which a page on
//! another site can neither read nor compute. Bearer-token requests are not
//! affected: no browser attaches `Authorization` by itself.

use super::extract::{CurrentUser, request_path};
use super::{SigningKey, session::csrf_valid};
use crate::service::Error;
use http::request::Parts;

/// The request header carrying the CSRF token on REST writes made with the
/// session cookie (the same token as the UI forms' `csrf` field).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `Ok` unless `parts` is a write (any method but GET, HEAD, OPTIONS and
/// TRACE) under `/api/` that `user` authenticated with the session cookie
/// and whose [`CSRF_HEADER`] is missing or not this session's token: then
/// 403 with a message saying what to send instead.
pub fn check_api_write(parts: &Parts, user: &CurrentUser, keys: &SigningKey) -> Result<(), Error> {
    let Some(session) = user.session.as_ref().filter(|s| s.from_cookie) else {
        return Ok(());
    };
    // UI forms carry the token in their body (checked by `CsrfForm`).
    let path = request_path(parts);
    let api = path == "/api" || path.starts_with("/api/");
    if parts.method.is_safe() || !api {
        return Ok(());
    }
    let given = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if csrf_valid(keys, session.id, given.trim()) {
        return Ok(());
    }
    Err(Error::Forbidden(
        "this write is authenticated by the session cookie, so it must carry the session's \
         CSRF token in the X-CSRF-Token header (the value of the csrf field in the admin UI's \
         forms); or call the API with Authorization: Bearer <token> instead"
            .into(),
    ))
}
