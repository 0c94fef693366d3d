//! The effective policy: what agents receive for a service.

use super::{Store, StoreError};
use corsair_agent::engine::PolicySpec;

/// A service's effective policy at one revision: its settings and its
/// approved, unexpired origins.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct EffectivePolicy {
    /// Service name.
    pub service: String,
    /// The service's current revision.
    pub revision: i64,
    /// The policy itself.
    pub spec: PolicySpec,
}

impl Store {
    /// The effective policy of `service`, or `None` if there is no such service.
    ///
    /// Reads the service row and its approved, unexpired origins in one
    /// `REPEATABLE READ` transaction (one snapshot), so the revision always
    /// describes exactly the returned origins. The settings columns are
    /// mapped once, by [`Service`](super::services::Service)'s conversion.
    pub async fn effective_policy(
        &self,
        service: &str,
    ) -> Result<Option<EffectivePolicy>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let Some(row) = super::services::find_service(&mut tx, service).await? else {
            return Ok(None);
        };
        let origins = sqlx::query_scalar!(
            r#"SELECT pattern FROM origins
                WHERE service_id = $1
                  AND status = 'approved'
                  AND (expires_at IS NULL OR expires_at > now())
                ORDER BY pattern"#,
            row.id
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(EffectivePolicy {
            spec: row.settings.with_origins(origins),
            service: row.name,
            revision: row.revision,
        }))
    }
}
