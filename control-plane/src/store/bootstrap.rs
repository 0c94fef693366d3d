//! The first admin (`serve --bootstrap-admin-email/--bootstrap-admin-password-file`):
//! created only while the users table is empty.

use super::users::{User, insert_user};
use super::{Store, StoreError};
use crate::domain::Role;

/// Key of the transaction-level advisory lock that serialises bootstrap
/// attempts, so two replicas starting at once cannot both see an empty users
/// table (`"corsairB"` as a big-endian integer; any constant unused by other
/// advisory locks would do).
const BOOTSTRAP_LOCK: i64 = 0x636f_7273_6169_7242;

impl Store {
    /// Whether any user exists (enabled or not).
    pub async fn has_users(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users)")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Creates `email` as an admin, with its `user.create` audit row by
    /// `actor`, if and only if no user exists at all; returns the new user,
    /// or `None` when users already exist (nothing is written).
    ///
    /// The check and the insert run in one transaction holding an advisory
    /// lock, so of several replicas starting at once exactly one creates the
    /// admin and the others see it and do nothing.
    pub async fn create_first_admin(
        &self,
        email: &str,
        password_hash: &str,
        actor: &str,
    ) -> Result<Option<User>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut *tx)
            .await?;
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users)")
            .fetch_one(&mut *tx)
            .await?;
        if any {
            return Ok(None);
        }
        let user = insert_user(&mut tx, email, password_hash, Role::Admin, actor).await?;
        tx.commit().await?;
        Ok(Some(user))
    }
}
