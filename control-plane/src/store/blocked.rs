//! Blocked-request telemetry: idempotent batch ingestion into the daily
//! partitions of `blocked_events` (`ingest`, which also feeds the hourly
//! and daily rollups through migration 0004's trigger), partition
//! maintenance for the three tables (create ahead, drop past the retention)
//! and the query behind `GET /api/v1/blocked` ([`query`], [`grouped`]).

use super::{Store, StoreError};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

/// Reason stored for events an agent had to drop from its full queue.
pub const DROPPED_REASON: &str = "telemetry_dropped";
/// Origin stored for dropped events (the agent no longer knows them).
pub const DROPPED_ORIGIN: &str = "(dropped)";
/// Most rows one query may return (a CSV export page).
pub const MAX_LIMIT: i64 = 10_000;

/// One aggregated count in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedCount {
    /// The service that refused the request.
    pub service: String,
    /// The request's origin (or the agent's overflow bucket).
    pub origin: String,
    /// The (requested) method.
    pub method: String,
    /// Engine reason.
    pub reason: String,
    /// Report-only: passed, but would have been blocked.
    pub would_block: bool,
    /// How many times, > 0.
    pub count: i64,
}

/// One agent batch, already validated.
#[derive(Debug, Clone)]
pub struct IngestBatch {
    /// Unique id (agent id + sequence).
    pub batch_id: String,
    /// The reporting agent.
    pub agent_id: String,
    /// When the interval started; the rows' timestamp.
    pub ts: DateTime<Utc>,
    /// The counts.
    pub counts: Vec<BlockedCount>,
    /// Events dropped by the agent since its last stored batch.
    pub dropped_events: i64,
    /// The service the dropped events are attributed to.
    pub dropped_service: String,
    /// Allowed requests per approved pattern, one entry per (service,
    /// pattern); stored by [`super::usage`] in the same transaction.
    pub uses: Vec<super::usage::OriginUse>,
    /// When the interval ended (the uses' last-allowed time).
    pub ts_end: DateTime<Utc>,
}

/// What ingestion did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored for the first time, with this many events (dropped included).
    Stored {
        /// Events stored.
        events: i64,
    },
    /// Seen before: acknowledged, not counted again.
    Duplicate,
}

impl Store {
    /// Creates the missing daily partitions for `first..=last` (UTC days).
    pub async fn ensure_blocked_partitions(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<i32, StoreError> {
        let created = sqlx::query_scalar!(
            r#"SELECT blocked_events_ensure_partitions($1, $2) AS "created!""#,
            first,
            last
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(created)
    }

    /// One maintenance round: partitions from yesterday to `ahead_days`
    /// ahead exist, partitions wholly older than `retention_days` are
    /// dropped, with the batch ids of that age. Only one replica does this
    /// at a time (a transaction-scoped advisory lock); the others get
    /// `None` and try again on their next tick.
    pub async fn maintain_blocked_partitions(
        &self,
        now: DateTime<Utc>,
        ahead_days: i64,
        retention_days: i64,
    ) -> Result<Option<(i32, i32)>, StoreError> {
        let today = now.date_naive();
        let cutoff = today - Duration::days(retention_days);
        let mut tx = self.pool.begin().await?;
        let locked = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_xact_lock(hashtext('corsair.blocked_events.retention')) AS "locked!""#
        )
        .fetch_one(&mut *tx)
        .await?;
        if !locked {
            return Ok(None);
        }
        let created = sqlx::query_scalar!(
            r#"SELECT blocked_events_ensure_partitions($1, $2) AS "created!""#,
            today - Duration::days(1),
            today + Duration::days(ahead_days)
        )
        .fetch_one(&mut *tx)
        .await?;
        let dropped = sqlx::query_scalar!(
            r#"SELECT blocked_events_drop_before($1) AS "dropped!""#,
            cutoff
        )
        .fetch_one(&mut *tx)
        .await?;
        // Usage days go with the blocked partitions of the same days.
        sqlx::query!("DELETE FROM origin_usage_daily WHERE day < $1", cutoff)
            .execute(&mut *tx)
            .await?;
        let horizon = now - Duration::days(retention_days);
        sqlx::query!(
            "DELETE FROM telemetry_batches WHERE received_at < $1",
            horizon
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some((created, dropped)))
    }

    /// The names of `blocked_events`' partitions, oldest first.
    pub async fn blocked_partitions(&self) -> Result<Vec<String>, StoreError> {
        let names = sqlx::query_scalar!(
            r#"
            SELECT c.relname::text AS "name!"
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'blocked_events'::regclass
             ORDER BY 1
            "#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(names)
    }

    /// The names of the rollups' partitions (`blocked_hourly_*`,
    /// `blocked_daily_*`), sorted by name.
    pub async fn blocked_rollup_partitions(&self) -> Result<Vec<String>, StoreError> {
        let names = sqlx::query_scalar!(
            r#"
            SELECT c.relname::text AS "name!"
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent IN ('blocked_hourly'::regclass, 'blocked_daily'::regclass)
             ORDER BY 1
            "#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(names)
    }

    /// Refreshes the planner statistics of the raw table and the rollups
    /// (autovacuum does this in time; tests and benches need it at once).
    pub async fn analyze_blocked(&self) -> Result<(), StoreError> {
        // A utility statement without parameters or result: nothing for
        // `query!` to check, and it cannot be described.
        sqlx::raw_sql("ANALYZE blocked_events, blocked_hourly, blocked_daily")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

pub mod grouped;
mod ingest;
pub mod query;
pub use grouped::Source;
pub use query::{
    BlockedFilter, BlockedPage, BlockedQuery, BlockedRow, GroupBy, GroupedRow, Order, QueryError,
    SortBy,
};

/// A page of results plus the cursor for the next one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The rows.
    pub rows: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next: Option<String>,
}
