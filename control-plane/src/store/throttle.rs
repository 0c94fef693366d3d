//! Login throttling: recent failures per account and per client address,
//! kept in the database so every replica sees the same counts.

use super::audit::{self, AuditRecord};
use super::{Store, StoreError};

impl Store {
    /// Failures recorded for `key` in the last `window_secs` seconds.
    pub async fn recent_login_failures(
        &self,
        key: &str,
        window_secs: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query!(
            r#"SELECT count(*) AS "n!" FROM login_failures WHERE key = $1 AND at > now() - make_interval(secs => $2)"#,
            key,
            window_secs as f64
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.n)
    }

    /// Records one failed login under each of `keys`.
    pub async fn record_login_failure(&self, keys: &[String]) -> Result<(), StoreError> {
        sqlx::query!(
            "INSERT INTO login_failures (key) SELECT * FROM unnest($1::text[])",
            keys
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the failures of `key` (after a successful login).
    pub async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query!("DELETE FROM login_failures WHERE key = $1", key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Writes an `auth.lockout` row to the change audit log.
    pub async fn audit_lockout(
        &self,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        audit::append(
            &mut conn,
            AuditRecord {
                actor: "system",
                action: "auth.lockout",
                service: None,
                target,
                before: None,
                after: Some(&detail),
            },
        )
        .await
    }
}
