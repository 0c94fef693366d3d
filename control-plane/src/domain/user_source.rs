//! [`UserSource`]: where a user's identity comes from.

use serde::{Deserialize, Serialize};

/// Where a user signs in: a local password, or the OpenID Connect provider.
///
/// Stored as `TEXT` (`users.source`, `CHECK`ed to these two spellings);
/// an `oidc` user also has `oidc_issuer` and `oidc_subject` and no password.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum UserSource {
    /// Created by an admin (or `user add`, or the bootstrap admin); signs in
    /// with a password.
    Local,
    /// Created at first sign-in through the OpenID Connect provider; its
    /// role follows the provider's groups at every sign-in.
    Oidc,
}

impl UserSource {
    /// The database/wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UserSource::Local => "local",
            UserSource::Oidc => "oidc",
        }
    }
}
