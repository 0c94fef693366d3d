//! Users, roles and tokens.
//!
//! - [`keys`]: the signing key file and the JWT claims ([`Claims`]).
//! - [`password`]: argon2 password hashing.
//! - [`tokens`]: issuing user (login) and agent tokens.
//! - [`extract`]: [`CurrentUser`] and [`RequireRole`], the extractors every
//!   API and UI handler uses to authenticate and authorise.
//! - [`session`]: the session cookie, CSRF tokens and [`CsrfForm`].
//! - [`csrf`]: the CSRF header REST writes made with the session cookie need.
//! - [`login`]: password check with throttling and lockouts, and whether
//!   password sign-in is on ([`login::LocalLogin`]).
//! - [`oidc`]: OpenID Connect sign-in (discovery, PKCE, ID-token checks).
//! - [`bootstrap`]: the first admin from a Secret, only while no user exists.

pub mod bootstrap;
pub mod csrf;
pub mod extract;
pub mod keys;
pub mod login;
pub mod oidc;
pub mod password;
pub mod session;
pub mod tokens;

pub use crate::domain::Role;
pub use extract::{
    Admin, Approver, AuthRejection, CurrentUser, MinimumRole, Requester, RequireRole, Session,
    Viewer, take_refusal,
};
pub use keys::{Claims, KeyError, SigningKey, TokenKind};
pub use session::CsrfForm;
pub use tokens::{IssuedToken, issue_agent_token, issue_api_token, issue_user_token};
