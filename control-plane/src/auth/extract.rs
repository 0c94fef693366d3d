//! Authentication and authorisation as axum extractors, so handlers state
//! what they need in their signature and never check roles themselves.
//!
//! One place for the UI and the REST API: a caller is recognised from
//! `Authorization: Bearer` (a session or API token) or from the session
//! cookie. A refusal is an [`AuthRejection`], which each face renders in the
//! caller's language (JSON 401/403 under `/api/`, a redirect to `/login` or
//! a 403 page elsewhere).

use super::session::{SESSION_COOKIE, cookie};
use super::{Role, SigningKey, TokenKind};
use crate::service::Error;
use crate::store::Store;
use axum::extract::{FromRef, FromRequestParts, OriginalUri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::header::AUTHORIZATION;
use http::request::Parts;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use uuid::Uuid;

/// The caller, from a valid session (cookie or bearer) or API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    /// The user's email (or `token:<name>` for an API token): the actor
    /// recorded in the audit log.
    pub email: String,
    /// The person behind the caller: the user's email for a session, the
    /// email of the person who created it (`api_tokens.created_by`) for an
    /// API token. Rules about people (four eyes) compare this, never
    /// `email`, so a token cannot stand in for a second person.
    pub person: String,
    /// The role as stored now (not as when the token was issued).
    pub role: Role,
    /// The session, when the caller presented one (not an API token).
    pub session: Option<Session>,
}

/// A signed-in session: what logout revokes and CSRF tokens are bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The token id (`jti`).
    pub id: Uuid,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    /// Whether it came in the cookie (a browser) rather than a header.
    pub from_cookie: bool,
    /// The CSRF token every form of this session must carry.
    pub csrf: String,
}

/// Why a request was refused: face-neutral. Its response is the bare
/// status and message with the refusal itself in the response's extensions;
/// each face's router takes it out again ([`take_refusal`]) and renders it
/// in its own language (JSON 401/403 for the REST API, a redirect to
/// `/login` or an error page for the UI).
#[derive(Debug)]
pub struct AuthRejection {
    /// Why (401 or 403, 400 for a malformed form, 500 if the database failed).
    pub error: Error,
    /// For a 403 page: who was refused.
    pub user: Option<CurrentUser>,
    /// For the login redirect: where to come back to.
    pub path: String,
}

/// The refusal riding in a response's extensions (which must be `Clone`).
#[derive(Debug, Clone)]
struct Refusal(Arc<Mutex<Option<AuthRejection>>>);

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let status = self.error.status();
        // Only what a face that does not render refusals would show; the
        // faces replace this response entirely.
        let message = match &self.error {
            Error::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        let mut response = (status, message).into_response();
        response
            .extensions_mut()
            .insert(Refusal(Arc::new(Mutex::new(Some(self)))));
        response
    }
}

/// The [`AuthRejection`] behind `response`, if it is one (taking it out).
pub fn take_refusal(response: &mut Response) -> Option<AuthRejection> {
    let Refusal(slot) = response.extensions_mut().remove::<Refusal>()?;
    let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
    slot.take()
}

impl From<AuthRejection> for Error {
    fn from(r: AuthRejection) -> Self {
        r.error
    }
}

/// The path the client asked for (before any router nesting stripped it).
pub(super) fn request_path(parts: &Parts) -> String {
    parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.path().to_owned(), |u| u.0.path().to_owned())
}

/// The bearer token in `parts`, if any; `Err` if the header is malformed.
fn bearer(parts: &Parts) -> Result<Option<&str>, Error> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthorized("the Authorization header is not valid text".into()))?;
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(Error::Unauthorized(
            "expected Authorization: Bearer <token>".into(),
        )),
    }
}

async fn authenticate<S>(parts: &Parts, state: &S) -> Result<CurrentUser, Error>
where
    SigningKey: FromRef<S>,
    Store: FromRef<S>,
{
    let (token, from_cookie) = match bearer(parts)? {
        Some(t) => (t.to_owned(), false),
        None => match cookie(&parts.headers, SESSION_COOKIE) {
            Some(t) if !t.is_empty() => (t, true),
            _ => {
                return Err(Error::Unauthorized(
                    "missing Authorization: Bearer token (or session cookie)".into(),
                ));
            }
        },
    };
    let claims = SigningKey::from_ref(state)
        .verify_any(&token)
        .map_err(|e| Error::Unauthorized(e.to_string()))?;
    let id = Uuid::parse_str(&claims.jti)
        .map_err(|_| Error::Unauthorized("invalid token: malformed token id".into()))?;
    let store = Store::from_ref(state);
    match claims.kind {
        TokenKind::User => {
            // The token proves who the caller is; the database says what they
            // may do now (a disabled user, a lowered role or a logout takes
            // effect at once, not when the token expires).
            let role = store.session_role(&claims.sub, id).await?.ok_or_else(|| {
                Error::Unauthorized(format!(
                    "session ended, or user {} does not exist or is disabled",
                    claims.sub
                ))
            })?;
            let expires_at = claims
                .exp
                .and_then(|e| DateTime::from_timestamp(e, 0))
                .unwrap_or_else(Utc::now);
            let csrf = super::session::csrf_for(&SigningKey::from_ref(state), id);
            Ok(CurrentUser {
                person: claims.sub.clone(),
                email: claims.sub,
                role,
                session: Some(Session {
                    id,
                    expires_at,
                    from_cookie,
                    csrf,
                }),
            })
        }
        TokenKind::Api if !from_cookie => {
            let token = store.active_api_token(id).await?.ok_or_else(|| {
                Error::Unauthorized(
                    "API token revoked, expired or unknown, or its creator is disabled".into(),
                )
            })?;
            Ok(CurrentUser {
                email: format!("token:{}", token.name),
                person: token.created_by,
                role: token.role,
                session: None,
            })
        }
        _ => Err(Error::Unauthorized(
            "invalid token: not a user or API token".into(),
        )),
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    S: Send + Sync,
    SigningKey: FromRef<S>,
    Store: FromRef<S>,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Several extractors of one request (role, CSRF form) share one lookup.
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(user.clone());
        }
        // A REST write made with the session cookie needs the CSRF header.
        let checked = authenticate(parts, state).await.and_then(|user| {
            super::csrf::check_api_write(parts, &user, &SigningKey::from_ref(state)).map(|()| user)
        });
        match checked {
            Ok(user) => {
                parts.extensions.insert(user.clone());
                Ok(user)
            }
            Err(error) => Err(AuthRejection {
                error,
                user: None,
                path: request_path(parts),
            }),
        }
    }
}

/// A role as a type, for [`RequireRole`].
pub trait MinimumRole: Send + Sync + 'static {
    /// The least role that passes.
    const ROLE: Role;
}

/// Marker: any signed-in user (viewer and up).
#[derive(Debug)]
pub struct Viewer;
/// Marker: requester and up.
#[derive(Debug)]
pub struct Requester;
/// Marker: approver and up.
#[derive(Debug)]
pub struct Approver;
/// Marker: admin only.
#[derive(Debug)]
pub struct Admin;

impl MinimumRole for Viewer {
    const ROLE: Role = Role::Viewer;
}
impl MinimumRole for Requester {
    const ROLE: Role = Role::Requester;
}
impl MinimumRole for Approver {
    const ROLE: Role = Role::Approver;
}
impl MinimumRole for Admin {
    const ROLE: Role = Role::Admin;
}

/// A [`CurrentUser`] whose role is at least `R`; otherwise 401 (no valid
/// token) or 403 (role too low), as JSON or HTML (see [`AuthRejection`]).
#[derive(Debug)]
pub struct RequireRole<R: MinimumRole> {
    /// The caller.
    pub user: CurrentUser,
    role: PhantomData<fn() -> R>,
}

impl<S, R> FromRequestParts<S> for RequireRole<R>
where
    S: Send + Sync,
    SigningKey: FromRef<S>,
    Store: FromRef<S>,
    R: MinimumRole,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        // Roles are ordered: each includes the rights of the ones before it.
        if user.role < R::ROLE {
            return Err(AuthRejection {
                error: Error::Forbidden(format!(
                    "this needs the {} role; you are {}",
                    R::ROLE.as_str(),
                    user.role.as_str()
                )),
                user: Some(user),
                path: request_path(parts),
            });
        }
        Ok(RequireRole {
            user,
            role: PhantomData,
        })
    }
}
