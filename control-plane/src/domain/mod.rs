//! Domain types, below the store and every face (REST, UI, gRPC): closed
//! sets as enums, decoded strictly from their `TEXT` columns (each has a
//! `CHECK` constraint), so a row with an unknown value is an error rather
//! than a silent default.
//!
//! - [`Role`]: a user's (or API token's) role, ordered by rights.
//! - [`OriginStatus`]: where an origin request is in its life cycle.
//! - [`SettingsChangeStatus`]: where a held (four-eyes) settings change is.
//! - [`UserSource`]: where a user signs in (local password or OpenID Connect).
//! - [`RoleMap`]: which identity-provider group grants which role.
//! - [`Detail`]: one problem found in some input, e.g. by policy validation.
//!
//! Policy settings are declared once, beside the engine's spec
//! (`corsair_agent::engine::PolicySettings`).

mod origin_status;
mod role;
mod role_map;
mod settings_change_status;
mod user_source;

pub use origin_status::OriginStatus;
pub use role::Role;
pub use role_map::RoleMap;
pub use settings_change_status::SettingsChangeStatus;
pub use user_source::UserSource;

use serde::Serialize;

/// One problem in some input, e.g. one the engine found in a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Detail {
    /// The field, e.g. `origins[2]` or `max_age_secs`.
    pub field: String,
    /// The offending value as given.
    pub value: String,
    /// What is wrong.
    pub message: String,
}
