//! The read side of `blocked_events`: filters, grouping, sorting and keyset
//! pagination, built with `QueryBuilder` (every value is a bind parameter;
//! only fixed SQL fragments chosen from enums are pushed as text).

use super::grouped::{Source, groups_query};
use super::{MAX_LIMIT, Page};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};

/// Which rows to look at. Every field is optional; `since`/`until` bound
/// `ts` (inclusive, exclusive) and let Postgres prune partitions.
#[derive(Debug, Clone, Default)]
pub struct BlockedFilter {
    /// Exact service name.
    pub service: Option<String>,
    /// Origin: exact, or a substring when `origin_substring`.
    pub origin: Option<String>,
    /// Match `origin` as a case-insensitive substring.
    pub origin_substring: bool,
    /// Exact agent id.
    pub agent: Option<String>,
    /// Exact reason.
    pub reason: Option<String>,
    /// From (inclusive).
    pub since: Option<DateTime<Utc>>,
    /// Until (exclusive).
    pub until: Option<DateTime<Utc>>,
}

/// What to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// Per origin.
    Origin,
    /// Per service.
    Service,
    /// Per agent.
    Agent,
    /// Per reason.
    Reason,
    /// Per minute (UTC).
    Minute,
    /// Per hour (UTC).
    Hour,
    /// Per day (UTC).
    Day,
}

impl GroupBy {
    /// The key's SQL over the time column `time` (`ts` in raw rows, `hour`
    /// in the rollup); `time` is one of those two fixed names, never input.
    pub(crate) fn key_sql(self, time: &str) -> String {
        // Text keys that sort like the times they name.
        let bucket = |unit: &str, format: &str| {
            format!("to_char(date_trunc('{unit}', {time} AT TIME ZONE 'UTC'), '{format}')")
        };
        match self {
            GroupBy::Origin => "origin".into(),
            GroupBy::Service => "service".into(),
            GroupBy::Agent => "agent_id".into(),
            GroupBy::Reason => "reason".into(),
            GroupBy::Minute => bucket("minute", "YYYY-MM-DD\"T\"HH24:MI:00\"Z\""),
            GroupBy::Hour => bucket("hour", "YYYY-MM-DD\"T\"HH24:00:00\"Z\""),
            GroupBy::Day => bucket("day", "YYYY-MM-DD\"T\"00:00:00\"Z\""),
        }
    }

    /// Time buckets sort by key by default, the rest by count.
    pub fn is_time(self) -> bool {
        matches!(self, GroupBy::Minute | GroupBy::Hour | GroupBy::Day)
    }
}

/// Sort column for grouped results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// The total count (ties broken by key, ascending).
    Count,
    /// The group key.
    Key,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// One stored row (no grouping), newest first.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct BlockedRow {
    /// Row id (with `ts`, the pagination key).
    pub id: i64,
    /// Start of the agent's interval.
    pub ts: DateTime<Utc>,
    /// Service.
    pub service: String,
    /// Origin.
    pub origin: String,
    /// Method.
    pub method: String,
    /// Reason.
    pub reason: String,
    /// Report-only: would have been blocked.
    pub would_block: bool,
    /// Reporting agent.
    pub agent_id: String,
    /// Events.
    pub count: i64,
}

/// One group.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct GroupedRow {
    /// The group's key (an origin, a service, … or an RFC 3339 bucket start).
    pub key: String,
    /// Events, all kinds.
    pub count: i64,
    /// Of which report-only (would have been blocked).
    pub would_block: i64,
    /// Earliest interval start.
    pub first_seen: DateTime<Utc>,
    /// Latest interval start.
    pub last_seen: DateTime<Utc>,
    /// The agents that reported it.
    pub agents: Vec<String>,
    /// The services that refused it (one origin may be refused by several;
    /// the UI offers an approval request per service).
    pub services: Vec<String>,
}

/// A page of either shape.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum BlockedPage {
    /// No grouping.
    Rows(Page<BlockedRow>),
    /// Grouped.
    Groups(Page<GroupedRow>),
}

/// Why a query could not be run as asked (bad cursor).
#[derive(Debug, thiserror::Error)]
#[error("invalid cursor `after`: {0}")]
pub struct CursorError(pub &'static str);

/// `WHERE` for `filter`'s columns, with the time column `time` bounded by
/// `[since, until)` (the filter's own bounds, or one part of them).
pub(crate) fn push_filter(
    qb: &mut QueryBuilder<Postgres>,
    filter: &BlockedFilter,
    time: &str,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) {
    qb.push(" WHERE true");
    if let Some(service) = &filter.service {
        qb.push(" AND service = ").push_bind(service.clone());
    }
    if let Some(origin) = &filter.origin {
        if filter.origin_substring {
            let escaped = origin
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            qb.push(" AND origin ILIKE ")
                .push_bind(format!("%{escaped}%"));
        } else {
            qb.push(" AND origin = ").push_bind(origin.clone());
        }
    }
    if let Some(agent) = &filter.agent {
        qb.push(" AND agent_id = ").push_bind(agent.clone());
    }
    if let Some(reason) = &filter.reason {
        qb.push(" AND reason = ").push_bind(reason.clone());
    }
    if let Some(since) = since {
        qb.push(format!(" AND {time} >= ")).push_bind(since);
    }
    if let Some(until) = until {
        qb.push(format!(" AND {time} < ")).push_bind(until);
    }
}

/// Raw rows, newest first; `after` is `"<ts micros>:<id>"`.
fn rows_query(
    prefix: &str,
    filter: &BlockedFilter,
    after: Option<&str>,
    limit: i64,
) -> Result<QueryBuilder<Postgres>, CursorError> {
    let mut qb = QueryBuilder::new(format!(
        "{prefix}SELECT id, ts, service, origin, method, reason, would_block, agent_id, count FROM blocked_events"
    ));
    push_filter(&mut qb, filter, "ts", filter.since, filter.until);
    if let Some(after) = after {
        let (micros, id) = after
            .split_once(':')
            .ok_or(CursorError("expected <micros>:<id>"))?;
        let micros: i64 = micros.parse().map_err(|_| CursorError("bad timestamp"))?;
        let id: i64 = id.parse().map_err(|_| CursorError("bad id"))?;
        let ts = DateTime::<Utc>::from_timestamp_micros(micros)
            .ok_or(CursorError("timestamp out of range"))?;
        qb.push(" AND (ts, id) < (")
            .push_bind(ts)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY ts DESC, id DESC LIMIT ")
        .push_bind(limit + 1);
    Ok(qb)
}

/// A full query: filter, optional grouping, sort and page.
#[derive(Debug, Clone)]
pub struct BlockedQuery {
    /// Which rows.
    pub filter: BlockedFilter,
    /// Grouping; `None` lists rows newest first.
    pub group_by: Option<GroupBy>,
    /// Sort column (grouped only); default: key for time buckets, else count.
    pub sort: Option<SortBy>,
    /// Direction; default: asc for time buckets sorted by key, else desc.
    pub order: Option<Order>,
    /// Cursor from the previous page's `next`.
    pub after: Option<String>,
    /// Page size, 1..=[`MAX_LIMIT`].
    pub limit: i64,
}

impl BlockedQuery {
    fn sort_and_order(&self, group: GroupBy) -> (SortBy, Order) {
        let sort = self.sort.unwrap_or(if group.is_time() {
            SortBy::Key
        } else {
            SortBy::Count
        });
        let order = self.order.unwrap_or(match sort {
            SortBy::Key => Order::Asc,
            SortBy::Count => Order::Desc,
        });
        (sort, order)
    }

    fn build(&self, prefix: &str, source: Source) -> Result<QueryBuilder<Postgres>, CursorError> {
        let limit = self.limit.clamp(1, MAX_LIMIT);
        match self.group_by {
            None => rows_query(prefix, &self.filter, self.after.as_deref(), limit),
            Some(group) => groups_query(
                prefix,
                &self.filter,
                group,
                self.sort_and_order(group),
                source,
                self.after.as_deref(),
                limit,
            ),
        }
    }
}

/// Errors of [`Store::query_blocked`].
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The cursor does not parse.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for QueryError {
    fn from(e: sqlx::Error) -> Self {
        QueryError::Store(StoreError::Database(e))
    }
}

impl Store {
    /// Runs `query`, returning one page and the cursor of the next.
    /// Grouped queries read the hourly rollup where it answers exactly.
    pub async fn query_blocked(&self, query: &BlockedQuery) -> Result<BlockedPage, QueryError> {
        self.query_blocked_from(query, Source::Auto).await
    }

    /// [`Store::query_blocked`] reading grouped results from `source`
    /// (`Source::Raw` gives the reference answer the rollup must equal).
    pub async fn query_blocked_from(
        &self,
        query: &BlockedQuery,
        source: Source,
    ) -> Result<BlockedPage, QueryError> {
        let limit = usize::try_from(query.limit.clamp(1, MAX_LIMIT)).unwrap_or(100);
        let mut qb = query.build("", source)?;
        match query.group_by {
            None => {
                let mut rows: Vec<BlockedRow> = qb.build_query_as().fetch_all(&self.pool).await?;
                let next = (rows.len() > limit).then(|| {
                    rows.truncate(limit);
                    rows.last()
                        .map(|r| format!("{}:{}", r.ts.timestamp_micros(), r.id))
                });
                Ok(BlockedPage::Rows(Page {
                    rows,
                    next: next.flatten(),
                }))
            }
            Some(group) => {
                let (sort, _) = query.sort_and_order(group);
                let mut rows: Vec<GroupedRow> = qb.build_query_as().fetch_all(&self.pool).await?;
                let next = (rows.len() > limit).then(|| {
                    rows.truncate(limit);
                    rows.last().map(|r| match sort {
                        SortBy::Count => format!("{}:{}", r.count, r.key),
                        SortBy::Key => r.key.clone(),
                    })
                });
                Ok(BlockedPage::Groups(Page {
                    rows,
                    next: next.flatten(),
                }))
            }
        }
    }

    /// `EXPLAIN` of the SQL `query` runs, one plan line per element (for
    /// tests and the bench note).
    pub async fn explain_blocked(&self, query: &BlockedQuery) -> Result<Vec<String>, QueryError> {
        self.explain_blocked_from(query, Source::Auto).await
    }

    /// `EXPLAIN` of [`Store::query_blocked_from`]'s SQL.
    pub async fn explain_blocked_from(
        &self,
        query: &BlockedQuery,
        source: Source,
    ) -> Result<Vec<String>, QueryError> {
        let mut qb = query.build("EXPLAIN ", source)?;
        let lines: Vec<(String,)> = qb.build_query_as().fetch_all(&self.pool).await?;
        Ok(lines.into_iter().map(|(line,)| line).collect())
    }
}
