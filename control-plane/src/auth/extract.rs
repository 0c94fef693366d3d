//! Authentication and authorisation as axum extractors, so handlers state
//! what they need in their signature and never check roles themselves.

use super::{Role, SigningKey, TokenKind};
use crate::api::Error;
use crate::store::Store;
use axum::extract::{FromRef, FromRequestParts};
use http::header::AUTHORIZATION;
use http::request::Parts;
use std::marker::PhantomData;

/// The caller, from a valid user token in `Authorization: Bearer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    /// The user's email: the actor recorded in the audit log.
    pub email: String,
    /// The user's role as stored now (not as when the token was issued).
    pub role: Role,
}

/// The bearer token in `parts`, or why there is none.
fn bearer(parts: &Parts) -> Result<&str, Error> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| Error::Unauthorized("missing Authorization: Bearer token".into()))?
        .to_str()
        .map_err(|_| Error::Unauthorized("the Authorization header is not valid text".into()))?;
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(Error::Unauthorized(
            "expected Authorization: Bearer <token>".into(),
        )),
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    S: Send + Sync,
    SigningKey: FromRef<S>,
    Store: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let claims = SigningKey::from_ref(state)
            .verify(token, TokenKind::User)
            .map_err(|e| Error::Unauthorized(e.to_string()))?;
        // The token proves who the caller is; the database says what they
        // may do now (a disabled user or a lowered role takes effect at once).
        let role = Store::from_ref(state)
            .active_user_role(&claims.sub)
            .await?
            .ok_or_else(|| {
                Error::Unauthorized(format!("user {} does not exist or is disabled", claims.sub))
            })?;
        Ok(CurrentUser {
            email: claims.sub,
            role,
        })
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
/// token) or 403 (role too low).
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
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        // Roles are ordered: each includes the rights of the ones before it.
        if user.role < R::ROLE {
            return Err(Error::Forbidden(format!(
                "this needs the {} role; you are {}",
                R::ROLE.as_str(),
                user.role.as_str()
            )));
        }
        Ok(RequireRole {
            user,
            role: PhantomData,
        })
    }
}
