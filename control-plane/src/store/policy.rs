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
    /// Reads the settings, the revision and the origins in one statement so the
    /// revision always describes exactly the returned origins.
    pub async fn effective_policy(
        &self,
        service: &str,
    ) -> Result<Option<EffectivePolicy>, StoreError> {
        let row = sqlx::query!(
            r#"
            SELECT s.name, s.revision, s.allow_methods, s.allow_headers, s.expose_headers,
                   s.allow_credentials, s.max_age_secs, s.allow_private_network, s.mode,
                   s.strict, s.allow_insecure_http,
                   COALESCE(
                       (SELECT array_agg(o.pattern ORDER BY o.pattern)
                          FROM origins o
                         WHERE o.service_id = s.id
                           AND o.status = 'approved'
                           AND (o.expires_at IS NULL OR o.expires_at > now())),
                       '{}'
                   ) AS "origins!"
              FROM services s
             WHERE s.name = $1
            "#,
            service
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(EffectivePolicy {
                service: r.name,
                revision: r.revision,
                spec: PolicySpec {
                    origins: r.origins,
                    allow_methods: r.allow_methods,
                    allow_headers: r.allow_headers,
                    expose_headers: r.expose_headers,
                    allow_credentials: r.allow_credentials,
                    max_age_secs: i64::from(r.max_age_secs),
                    allow_private_network: r.allow_private_network,
                    mode: super::services::decode_mode(&r.mode)?,
                    strict: r.strict,
                    allow_insecure_http: r.allow_insecure_http,
                },
            })
        })
        .transpose()
    }
}
