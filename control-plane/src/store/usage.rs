//! Origin usage: allowed-request counts per approved pattern, stored with
//! the telemetry batch that carried them (same transaction, same
//! idempotency row: see [`super::blocked`]'s ingestion), and the reads
//! behind "last used", the 30-day counts and the stale-origins view.

use super::{Store, StoreError};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use std::collections::HashMap;

/// Allowed requests one approved pattern granted in one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginUse {
    /// The service whose policy granted them.
    pub service: String,
    /// The pattern as the policy listed it.
    pub pattern: String,
    /// Requests, > 0.
    pub count: i64,
}

/// Usage of one pattern: when it last let a request through, and how many
/// it let through over the last 30 days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Usage {
    /// End of the newest agent interval with an allowed request from this
    /// pattern (agent clock, never later than the control plane's receipt);
    /// `null` when none was ever reported.
    pub last_allowed_at: Option<DateTime<Utc>>,
    /// Allowed requests (actual requests and granted preflights) over the
    /// last 30 UTC days, today included.
    pub allowed_30d: i64,
}

/// An approved origin unused for the asked number of days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StaleOrigin {
    /// The origin's id (for `/origins/{id}/revocation-request`).
    pub id: i64,
    /// The service's name.
    pub service: String,
    /// The approved pattern.
    pub pattern: String,
    /// When it was approved.
    pub approved_at: DateTime<Utc>,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// The last allowed request ever reported; `null` for never.
    pub last_allowed_at: Option<DateTime<Utc>>,
    /// Who asked for its revocation, when a request is pending.
    pub revocation_requested_by: Option<String>,
}

/// Adds `uses` to the daily counts of `day` and moves the last-allowed
/// times forward to `at`, inside the ingesting transaction. Keys are
/// written in key order so concurrent batches lock them alike (no
/// deadlock); `uses` must not repeat a (service, pattern).
pub(super) async fn add(
    tx: &mut PgConnection,
    day: NaiveDate,
    at: DateTime<Utc>,
    uses: &[OriginUse],
) -> Result<(), StoreError> {
    if uses.is_empty() {
        return Ok(());
    }
    let services: Vec<String> = uses.iter().map(|u| u.service.clone()).collect();
    let patterns: Vec<String> = uses.iter().map(|u| u.pattern.clone()).collect();
    let counts: Vec<i64> = uses.iter().map(|u| u.count).collect();
    sqlx::query!(
        r#"
        INSERT INTO origin_usage_daily AS u (day, service, pattern, count)
        SELECT $1, s, p, c FROM UNNEST($2::text[], $3::text[], $4::int8[]) AS t(s, p, c)
         ORDER BY 2, 3
        ON CONFLICT (service, pattern, day) DO UPDATE SET count = u.count + EXCLUDED.count
        "#,
        day,
        &services,
        &patterns,
        &counts,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        r#"
        INSERT INTO origin_last_allowed AS l (service, pattern, last_allowed_at)
        SELECT s, p, $3 FROM UNNEST($1::text[], $2::text[]) AS t(s, p)
         ORDER BY 1, 2
        ON CONFLICT (service, pattern) DO UPDATE
           SET last_allowed_at = greatest(l.last_allowed_at, EXCLUDED.last_allowed_at)
        "#,
        &services,
        &patterns,
        at,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

impl Store {
    /// Usage of every pattern of `service` that has any, keyed by pattern;
    /// the 30 days end at `now`'s UTC day.
    pub async fn origin_usage(
        &self,
        service: &str,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, Usage>, StoreError> {
        let since = now.date_naive() - Duration::days(29);
        let rows = sqlx::query!(
            r#"
            SELECT l.pattern AS "pattern!", l.last_allowed_at AS "last_allowed_at?",
                   coalesce((SELECT sum(d.count) FROM origin_usage_daily d
                              WHERE d.service = l.service AND d.pattern = l.pattern
                                AND d.day >= $2), 0)::int8 AS "allowed_30d!"
              FROM origin_last_allowed l
             WHERE l.service = $1
            "#,
            service,
            since,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.pattern,
                    Usage {
                        last_allowed_at: r.last_allowed_at,
                        allowed_30d: r.allowed_30d,
                    },
                )
            })
            .collect())
    }

    /// Approved origins, across services, approved at least `unused_days`
    /// before `now` and with no allowed request since then (or ever):
    /// least recently used first (never-used first of all), then by service
    /// and pattern.
    pub async fn stale_origins(
        &self,
        unused_days: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<StaleOrigin>, StoreError> {
        let cutoff = now - Duration::days(unused_days);
        let rows = sqlx::query_as!(
            StaleOrigin,
            r#"
            SELECT o.id, s.name AS service, o.pattern,
                   o.decided_at AS "approved_at!", o.decided_by AS approved_by,
                   l.last_allowed_at AS "last_allowed_at?", o.revocation_requested_by
              FROM origins o
              JOIN services s ON s.id = o.service_id
              LEFT JOIN origin_last_allowed l ON l.service = s.name AND l.pattern = o.pattern
             WHERE o.status = 'approved'
               AND o.decided_at IS NOT NULL AND o.decided_at <= $1
               AND (l.last_allowed_at IS NULL OR l.last_allowed_at < $1)
             ORDER BY l.last_allowed_at ASC NULLS FIRST, s.name, o.pattern
            "#,
            cutoff,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}
