//! [`OriginStatus`]: the life cycle of an origin request.

use serde::{Deserialize, Serialize};

/// Where an origin request is: `pending` → `approved` | `rejected`,
/// `approved` → `revoked`.
///
/// Stored as `origins.status` (`TEXT`, `CHECK`ed to these four spellings);
/// read with `status AS "status: OriginStatus"`, so an unknown value fails
/// the query.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum OriginStatus {
    /// Requested, waiting for an approver.
    Pending,
    /// Approved: agents enforce it (until it expires).
    Approved,
    /// Refused by an approver.
    Rejected,
    /// Approved once, withdrawn since.
    Revoked,
}

impl OriginStatus {
    /// The database/wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OriginStatus::Pending => "pending",
            OriginStatus::Approved => "approved",
            OriginStatus::Rejected => "rejected",
            OriginStatus::Revoked => "revoked",
        }
    }

    /// Whether the request still counts (pending or approved): a second
    /// request for the same pattern would conflict with it.
    pub fn is_live(self) -> bool {
        matches!(self, OriginStatus::Pending | OriginStatus::Approved)
    }
}

impl std::fmt::Display for OriginStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with the wire spelling, e.g. `origin.status == "pending"` in a
/// test against a JSON body.
impl PartialEq<&str> for OriginStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
