//! Users, roles and tokens.
//!
//! - [`keys`]: the signing key file and the JWT claims ([`Claims`]).
//! - [`password`]: argon2 password hashing.
//! - [`tokens`]: issuing user (login) and agent tokens.
//! - [`extract`]: [`CurrentUser`] and [`RequireRole`], the extractors every
//!   API and UI handler uses to authenticate and authorise.
//! - [`session`]: the session cookie, CSRF tokens and [`CsrfForm`].
//! - [`login`]: password check with throttling and lockouts.
//! - [`bootstrap`]: the first admin from a Secret, only while no user exists.

pub mod bootstrap;
pub mod extract;
pub mod keys;
pub mod login;
pub mod password;
pub mod session;
pub mod tokens;

pub use extract::{
    Admin, Approver, AuthRejection, CurrentUser, MinimumRole, Requester, RequireRole, Session,
    Viewer,
};
pub use keys::{Claims, KeyError, SigningKey, TokenKind};
use serde::{Deserialize, Serialize};
pub use session::CsrfForm;
pub use tokens::{IssuedToken, issue_agent_token, issue_api_token, issue_user_token};

/// A user's role. Each role includes the rights of the ones before it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Requests origins, edits service descriptions.
    Requester,
    /// Approves, rejects and revokes origins; edits policy settings.
    Approver,
    /// Users, tokens and services.
    Admin,
}

impl Role {
    /// The database/wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Requester => "requester",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Parses the database/wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "requester" => Some(Role::Requester),
            "approver" => Some(Role::Approver),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}
