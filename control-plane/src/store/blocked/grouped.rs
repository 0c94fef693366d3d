//! Grouped queries: which table answers which part of the time range, and
//! the SQL that merges the parts.
//!
//! `blocked_hourly` and `blocked_daily` (migration 0004) hold exact per-hour
//! and per-day aggregates of `blocked_events`, so any grouping the API
//! offers except `minute` can be answered from them for whole UTC buckets.
//! A range is split into whole days from the daily rollup, whole hours on
//! either side from the hourly one, and ragged edges (less than an hour
//! each) from raw rows. Each part is aggregated per (key, agent, service)
//! and the parts are merged, so counts, first/last seen and the agent and
//! service lists equal what the raw table alone would give.

use super::query::{BlockedFilter, CursorError, GroupBy, Order, SortBy, push_filter};
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

/// Where a grouped query reads its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// The hourly rollup for whole hours, raw rows for the rest (the default).
    #[default]
    Auto,
    /// Raw rows only: the reference answer the rollup must equal.
    Raw,
}

/// The tables a part can be read from, finest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// `blocked_events`: any range.
    Raw,
    /// `blocked_hourly`: whole UTC hours.
    Hourly,
    /// `blocked_daily`: whole UTC days.
    Daily,
}

impl Table {
    /// Bucket length in microseconds (rollups only).
    fn micros(self) -> i64 {
        match self {
            Table::Raw => 1,
            Table::Hourly => 3_600_000_000,
            Table::Daily => 86_400_000_000,
        }
    }
}

/// One part of a split range: a table and a half-open `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    /// Where the part is read.
    pub table: Table,
    /// Inclusive lower bound, if any.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive upper bound, if any.
    pub until: Option<DateTime<Utc>>,
}

fn floor_to(t: DateTime<Utc>, unit: i64) -> Option<DateTime<Utc>> {
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros - micros.rem_euclid(unit))
}

fn ceil_to(t: DateTime<Utc>, unit: i64) -> Option<DateTime<Utc>> {
    let floor = floor_to(t, unit)?;
    if floor == t {
        Some(t)
    } else {
        DateTime::from_timestamp_micros(floor.timestamp_micros() + unit)
    }
}

/// Rounds an optional bound; `Err` when it cannot be (year ±262,000).
fn round(
    t: Option<DateTime<Utc>>,
    f: impl Fn(DateTime<Utc>) -> Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, ()> {
    t.map(|t| f(t).ok_or(())).transpose()
}

/// Splits `[since, until)` over `tables` (coarsest first, raw implied last):
/// the coarsest table takes the whole buckets inside the range, and the
/// ragged edges on either side are split the same way over the finer ones.
fn split_over(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    tables: &[Table],
    out: &mut Vec<Part>,
) {
    let raw = Part {
        table: Table::Raw,
        since,
        until,
    };
    let Some((&table, finer)) = tables.split_first() else {
        out.push(raw);
        return;
    };
    let unit = table.micros();
    let (Ok(first), Ok(last)) = (
        round(since, |t| ceil_to(t, unit)),
        round(until, |t| floor_to(t, unit)),
    ) else {
        out.push(raw);
        return;
    };
    if let (Some(first), Some(last)) = (first, last)
        && first >= last
    {
        split_over(since, until, finer, out);
        return;
    }
    if since < first {
        split_over(since, first, finer, out);
    }
    out.push(Part {
        table,
        since: first,
        until: last,
    });
    // `None` is "no bound": only a real bound leaves a ragged tail.
    if let (Some(until), Some(last)) = (until, last)
        && last < until
    {
        split_over(Some(last), Some(until), finer, out);
    }
}

/// Splits the filter's range into parts answered from the coarsest table
/// that can: minute buckets and `Source::Raw` stay on raw rows, hour
/// buckets cannot use the daily rollup.
pub(crate) fn split(filter: &BlockedFilter, group: GroupBy, source: Source) -> Vec<Part> {
    let tables: &[Table] = match (source, group) {
        (Source::Raw, _) | (_, GroupBy::Minute) => &[],
        (_, GroupBy::Hour) => &[Table::Hourly],
        _ => &[Table::Daily, Table::Hourly],
    };
    let mut parts = Vec::with_capacity(5);
    split_over(filter.since, filter.until, tables, &mut parts);
    parts
}

/// One part's partial aggregate per (key, agent, service).
fn push_part(qb: &mut QueryBuilder<Postgres>, filter: &BlockedFilter, group: GroupBy, part: Part) {
    let (table, time) = match part.table {
        Table::Raw => {
            qb.push(format!(
                "SELECT {} AS key, agent_id, service, sum(count)::int8 AS count, \
                 coalesce(sum(count) FILTER (WHERE would_block), 0)::int8 AS would_block, \
                 min(ts) AS first_seen, max(ts) AS last_seen FROM blocked_events",
                group.key_sql("ts")
            ));
            push_filter(qb, filter, "ts", part.since, part.until);
            qb.push(" GROUP BY 1, 2, 3");
            return;
        }
        Table::Hourly => ("blocked_hourly", "hour"),
        Table::Daily => ("blocked_daily", "day"),
    };
    qb.push(format!(
        "SELECT {} AS key, agent_id, service, sum(count)::int8 AS count, \
         sum(would_block)::int8 AS would_block, \
         min(first_seen) AS first_seen, max(last_seen) AS last_seen FROM {table}",
        group.key_sql(time)
    ));
    push_filter(qb, filter, time, part.since, part.until);
    qb.push(" GROUP BY 1, 2, 3");
}

/// Grouped rows; `after` is `"<count>:<key>"` (sort by count) or the key.
pub(crate) fn groups_query(
    prefix: &str,
    filter: &BlockedFilter,
    group: GroupBy,
    (sort, order): (SortBy, Order),
    source: Source,
    after: Option<&str>,
    limit: i64,
) -> Result<QueryBuilder<Postgres>, CursorError> {
    let mut qb = QueryBuilder::new(format!(
        "{prefix}SELECT key, sum(count)::int8 AS count, sum(would_block)::int8 AS would_block, \
         min(first_seen) AS first_seen, max(last_seen) AS last_seen, \
         array_agg(DISTINCT agent_id ORDER BY agent_id) AS agents, \
         array_agg(DISTINCT service ORDER BY service) AS services FROM ("
    ));
    for (i, part) in split(filter, group, source).into_iter().enumerate() {
        if i > 0 {
            qb.push(" UNION ALL ");
        }
        push_part(&mut qb, filter, group, part);
    }
    qb.push(") parts GROUP BY key");
    let (cmp, dir) = match order {
        Order::Asc => (">", "ASC"),
        Order::Desc => ("<", "DESC"),
    };
    if let Some(after) = after {
        match sort {
            SortBy::Count => {
                let (count, last_key) = after
                    .split_once(':')
                    .ok_or(CursorError("expected <count>:<key>"))?;
                let count: i64 = count.parse().map_err(|_| CursorError("bad count"))?;
                qb.push(format!(" HAVING (sum(count) {cmp} "))
                    .push_bind(count)
                    .push(" OR (sum(count) = ")
                    .push_bind(count)
                    .push(" AND key > ")
                    .push_bind(last_key.to_owned())
                    .push("))");
            }
            SortBy::Key => {
                qb.push(format!(" HAVING key {cmp} "))
                    .push_bind(after.to_owned());
            }
        }
    }
    match sort {
        SortBy::Count => qb.push(format!(" ORDER BY 2 {dir}, 1 ASC")),
        SortBy::Key => qb.push(format!(" ORDER BY 1 {dir}")),
    };
    qb.push(" LIMIT ").push_bind(limit + 1);
    Ok(qb)
}

#[cfg(test)]
mod tests;
