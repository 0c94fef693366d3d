//! Batch ingestion: the idempotency row, then the batch's rows streamed with
//! `COPY`, in one transaction. `COPY` parses less per row than an `UNNEST`
//! insert; the rollups are maintained by the statement trigger of migration
//! 0004 in the same transaction, so a duplicate batch adds to none of them.

use super::{DROPPED_ORIGIN, DROPPED_REASON, IngestBatch, Ingested};
use crate::store::{Store, StoreError};
use std::fmt::Write as _;

/// SQLSTATE Postgres uses for "no partition of relation found for row".
const NO_PARTITION: &str = "23514";

/// Appends `value` as one field of `COPY`'s text format: backslash, tab,
/// newline and carriage return are the only bytes that need escaping.
fn push_field(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ => out.push(ch),
        }
    }
}

/// Appends one row: ts, agent_id, service, origin, method, reason,
/// would_block, count (the column list of the `COPY` statement below).
#[allow(clippy::too_many_arguments)]
fn push_row(
    out: &mut String,
    ts: &str,
    agent: &str,
    service: &str,
    origin: &str,
    method: &str,
    reason: &str,
    would_block: bool,
    count: i64,
) {
    out.push_str(ts);
    for field in [agent, service, origin, method, reason] {
        out.push('\t');
        push_field(out, field);
    }
    // Writing to a String cannot fail.
    let _ = writeln!(out, "\t{}\t{count}", if would_block { 't' } else { 'f' });
}

/// The batch's rows in `COPY` text format, and its event total.
pub(super) fn encode(batch: &IngestBatch) -> (String, i64) {
    let ts = batch.ts.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
    let mut out = String::with_capacity(batch.counts.len() * 96);
    let mut events = 0i64;
    for c in &batch.counts {
        push_row(
            &mut out,
            &ts,
            &batch.agent_id,
            &c.service,
            &c.origin,
            &c.method,
            &c.reason,
            c.would_block,
            c.count,
        );
        events = events.saturating_add(c.count);
    }
    if batch.dropped_events > 0 {
        push_row(
            &mut out,
            &ts,
            &batch.agent_id,
            &batch.dropped_service,
            DROPPED_ORIGIN,
            "",
            DROPPED_REASON,
            false,
            batch.dropped_events,
        );
        events = events.saturating_add(batch.dropped_events);
    }
    (out, events)
}

impl Store {
    /// Stores `batch` once: the batch id and its rows in one transaction,
    /// so a retried batch is either wholly stored already (→ `Duplicate`) or
    /// not at all. Creates the day's partitions when they are missing.
    pub async fn ingest_blocked_batch(&self, batch: &IngestBatch) -> Result<Ingested, StoreError> {
        let (rows, events) = encode(batch);
        match self.ingest_once(batch, &rows, events).await {
            Err(StoreError::Database(sqlx::Error::Database(db)))
                if db.code().as_deref() == Some(NO_PARTITION) =>
            {
                let day = batch.ts.date_naive();
                self.ensure_blocked_partitions(day, day).await?;
                self.ingest_once(batch, &rows, events).await
            }
            other => other,
        }
    }

    async fn ingest_once(
        &self,
        batch: &IngestBatch,
        rows: &str,
        events: i64,
    ) -> Result<Ingested, StoreError> {
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
        if !rows.is_empty() {
            let mut copy = tx
                .copy_in_raw(
                    "COPY blocked_events (ts, agent_id, service, origin, method, reason, would_block, count) \
                     FROM STDIN (FORMAT text)",
                )
                .await?;
            // On a failed send the transaction is rolled back when `tx`
            // drops; `abort` tells the server why first.
            if let Err(e) = copy.send(rows.as_bytes()).await {
                let _ = copy.abort("sending the batch failed").await;
                return Err(e.into());
            }
            copy.finish().await?;
        }
        crate::store::usage::add(&mut tx, batch.ts.date_naive(), batch.ts_end, &batch.uses).await?;
        tx.commit().await?;
        Ok(Ingested::Stored { events })
    }
}
