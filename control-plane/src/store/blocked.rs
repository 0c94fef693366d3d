//! Blocked-request telemetry: idempotent batch ingestion into the daily
//! partitions of `blocked_events`, partition maintenance (create ahead, drop
//! past the retention) and the query behind `GET /api/v1/blocked`.

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

/// SQLSTATE Postgres uses for "no partition of relation found for row".
const NO_PARTITION: &str = "23514";

impl Store {
    /// Stores `batch` once: the batch id and its rows in one transaction,
    /// so a retried batch is either wholly stored already (→ `Duplicate`) or
    /// not at all. Creates the day's partition when it is missing.
    pub async fn ingest_blocked_batch(&self, batch: &IngestBatch) -> Result<Ingested, StoreError> {
        match self.ingest_once(batch).await {
            Err(StoreError::Database(sqlx::Error::Database(db)))
                if db.code().as_deref() == Some(NO_PARTITION) =>
            {
                let day = batch.ts.date_naive();
                self.ensure_blocked_partitions(day, day).await?;
                self.ingest_once(batch).await
            }
            other => other,
        }
    }

    async fn ingest_once(&self, batch: &IngestBatch) -> Result<Ingested, StoreError> {
        let mut services = Vec::with_capacity(batch.counts.len() + 1);
        let mut origins = Vec::with_capacity(batch.counts.len() + 1);
        let mut methods = Vec::with_capacity(batch.counts.len() + 1);
        let mut reasons = Vec::with_capacity(batch.counts.len() + 1);
        let mut would_block = Vec::with_capacity(batch.counts.len() + 1);
        let mut counts = Vec::with_capacity(batch.counts.len() + 1);
        for c in &batch.counts {
            services.push(c.service.clone());
            origins.push(c.origin.clone());
            methods.push(c.method.clone());
            reasons.push(c.reason.clone());
            would_block.push(c.would_block);
            counts.push(c.count);
        }
        if batch.dropped_events > 0 {
            services.push(batch.dropped_service.clone());
            origins.push(DROPPED_ORIGIN.to_owned());
            methods.push(String::new());
            reasons.push(DROPPED_REASON.to_owned());
            would_block.push(false);
            counts.push(batch.dropped_events);
        }
        let events: i64 = counts.iter().sum();

        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query_scalar!(
            r#"
            INSERT INTO telemetry_batches (batch_id, agent_id, events, dropped_events)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (batch_id) DO NOTHING
            RETURNING batch_id
            "#,
            batch.batch_id,
            batch.agent_id,
            events,
            batch.dropped_events,
        )
        .fetch_optional(&mut *tx)
        .await?;
        if fresh.is_none() {
            return Ok(Ingested::Duplicate);
        }
        if !counts.is_empty() {
            sqlx::query!(
                r#"
                INSERT INTO blocked_events (ts, agent_id, service, origin, method, reason, would_block, count)
                SELECT $1, $2, *
                  FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::int8[])
                "#,
                batch.ts,
                batch.agent_id,
                &services,
                &origins,
                &methods,
                &reasons,
                &would_block,
                &counts,
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ingested::Stored { events })
    }

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
}

pub mod grouped;
pub mod query;
pub use grouped::Source;
pub use query::{
    BlockedFilter, BlockedPage, BlockedQuery, BlockedRow, GroupBy, GroupedRow, Order, QueryError,
    SortBy,
};

/// A page of results plus the cursor for the next one.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The rows.
    pub rows: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next: Option<String>,
}
