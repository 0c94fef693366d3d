//! [`SettingsChangeStatus`]: the life cycle of a held settings change.

use serde::{Deserialize, Serialize};

/// Where a settings change that needs a second approver is: `pending` →
/// `confirmed` (applied) | `dismissed`.
///
/// Stored as `settings_changes.status` (`TEXT`, `CHECK`ed to these three
/// spellings); read with `status AS "status: SettingsChangeStatus"`, so an
/// unknown value fails the query.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum SettingsChangeStatus {
    /// Requested, waiting for a second approver.
    Pending,
    /// Confirmed by another approver and applied.
    Confirmed,
    /// Dismissed by an approver; never applied.
    Dismissed,
}

impl SettingsChangeStatus {
    /// The database/wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingsChangeStatus::Pending => "pending",
            SettingsChangeStatus::Confirmed => "confirmed",
            SettingsChangeStatus::Dismissed => "dismissed",
        }
    }
}

impl std::fmt::Display for SettingsChangeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
