//! [`Role`]: what a user or API token may do.

use serde::{Deserialize, Serialize};

/// A user's role. Each role includes the rights of the ones before it.
///
/// Stored as `TEXT` (`users.role`, `api_tokens.role`, `CHECK`ed to these
/// four spellings); read with `role AS "role: Role"`, so an unknown value
/// fails the query instead of becoming a `Viewer`.
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
    sqlx::Type,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
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

    /// Parses the database/wire spelling; `None` for anything else.
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
