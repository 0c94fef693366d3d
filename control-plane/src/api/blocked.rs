//! `GET /blocked`: the audit log of blocked (and would-block) requests, with
//! filters, grouping, sorting, keyset pagination and CSV export.

use super::extract::{Json, Query};
use super::schema::AnyBlockedPage;
use super::{AppState, Error};
use crate::auth::{RequireRole, Viewer};
use crate::store::blocked::{
    BlockedFilter, BlockedPage, BlockedQuery, GroupBy, MAX_LIMIT, Order, QueryError, SortBy,
};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Rows returned when no limit is given.
const DEFAULT_LIMIT: i64 = 100;

/// The routes of this module, with their OpenAPI entries.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(blocked))
}

/// How `origin` is matched.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OriginMatch {
    /// The whole origin.
    #[default]
    Exact,
    /// A case-insensitive substring.
    Substring,
}

/// Response format.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = BlockedFormat)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `{"rows": [...], "next": "..."}`.
    #[default]
    Json,
    /// `text/csv` with a header line; the next page's cursor in the `Link`-like `X-Next-Cursor` header.
    Csv,
}

/// Query of `GET /blocked`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BlockedParams {
    /// Exact service.
    pub service: Option<String>,
    /// Origin (see `origin_match`).
    pub origin: Option<String>,
    /// `exact` (default) or `substring`.
    #[serde(default)]
    #[param(inline)]
    pub origin_match: OriginMatch,
    /// Exact agent id.
    pub agent: Option<String>,
    /// Exact reason, e.g. `origin_not_allowed` or `telemetry_dropped`.
    pub reason: Option<String>,
    /// From (RFC 3339, inclusive).
    pub since: Option<DateTime<Utc>>,
    /// Until (RFC 3339, exclusive).
    pub until: Option<DateTime<Utc>>,
    /// `origin`, `service`, `agent`, `reason`, `minute`, `hour` or `day`.
    #[param(inline)]
    pub group_by: Option<GroupBy>,
    /// `count` or `key` (grouped only).
    #[param(inline)]
    pub sort: Option<SortBy>,
    /// `asc` or `desc`.
    #[param(inline)]
    pub order: Option<Order>,
    /// Page size, 1..=10000 (default 100).
    #[param(minimum = 1, maximum = 10000, default = 100)]
    pub limit: Option<i64>,
    /// The previous page's `next`.
    pub after: Option<String>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    #[param(inline)]
    pub format: Format,
}

/// Blocked and would-block requests reported by agents: rows newest first,
/// or grouped with totals, first/last seen and agents (role: viewer).
#[utoipa::path(
    get,
    path = "/blocked",
    tag = "observe",
    params(BlockedParams),
    responses(
        (status = 200, description = "A page (`rows` and `next`); with `format=csv`, text/csv with the next cursor in `X-Next-Cursor`",
            content(
                (AnyBlockedPage = "application/json"),
                (String = "text/csv"),
            )),
        (status = 400, description = "An unknown or malformed query parameter, or a cursor that is not one of ours"),
        (status = 422, description = "`limit` out of range, `since` not before `until`, or `sort`/`order` without `group_by`"),
    ),
)]
async fn blocked(
    _: RequireRole<Viewer>,
    State(state): State<AppState>,
    Query(p): Query<BlockedParams>,
) -> Result<Response, Error> {
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::unprocessable(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    if let (Some(since), Some(until)) = (p.since, p.until)
        && since >= until
    {
        return Err(Error::unprocessable("since must be before until"));
    }
    if p.group_by.is_none() && (p.sort.is_some() || p.order.is_some()) {
        return Err(Error::unprocessable(
            "sort and order apply to grouped results (group_by); rows are newest first",
        ));
    }
    let query = BlockedQuery {
        filter: BlockedFilter {
            service: p.service,
            origin: p.origin,
            origin_substring: matches!(p.origin_match, OriginMatch::Substring),
            agent: p.agent,
            reason: p.reason,
            since: p.since,
            until: p.until,
        },
        group_by: p.group_by,
        sort: p.sort,
        order: p.order,
        after: p.after,
        limit,
    };
    let page = state
        .store
        .query_blocked(&query)
        .await
        .map_err(|e| match e {
            QueryError::Cursor(c) => Error::BadRequest(c.to_string()),
            QueryError::Store(s) => Error::from(s),
        })?;
    Ok(match p.format {
        Format::Json => Json(page).into_response(),
        Format::Csv => csv_response(&page),
    })
}

fn csv_response(page: &BlockedPage) -> Response {
    let mut out = String::new();
    let next = match page {
        BlockedPage::Rows(p) => {
            out.push_str("ts,service,origin,method,reason,would_block,agent_id,count\n");
            for r in &p.rows {
                let fields = [
                    r.ts.to_rfc3339(),
                    r.service.clone(),
                    r.origin.clone(),
                    r.method.clone(),
                    r.reason.clone(),
                    r.would_block.to_string(),
                    r.agent_id.clone(),
                    r.count.to_string(),
                ];
                push_record(&mut out, &fields);
            }
            p.next.clone()
        }
        BlockedPage::Groups(p) => {
            out.push_str("key,count,would_block,first_seen,last_seen,agents,services\n");
            for r in &p.rows {
                let fields = [
                    r.key.clone(),
                    r.count.to_string(),
                    r.would_block.to_string(),
                    r.first_seen.to_rfc3339(),
                    r.last_seen.to_rfc3339(),
                    r.agents.join(" "),
                    r.services.join(" "),
                ];
                push_record(&mut out, &fields);
            }
            p.next.clone()
        }
    };
    let mut response = (
        [(http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        out,
    )
        .into_response();
    if let Some(value) = next.and_then(|n| http::HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert("x-next-cursor", value);
    }
    response
}

/// One CSV record (RFC 4180 quoting). Fields starting with a formula
/// character get a leading `'` so a spreadsheet does not evaluate an
/// attacker-chosen origin. Every CSV export of the API writes with it.
pub(super) fn push_record(out: &mut String, fields: &[String]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let field = if field.starts_with(['=', '+', '-', '@']) {
            format!("'{field}")
        } else {
            field.clone()
        };
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&field);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::push_record;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut out = String::new();
        push_record(
            &mut out,
            &[
                "a,b".into(),
                "say \"hi\"".into(),
                "=cmd()".into(),
                "plain".into(),
            ],
        );
        assert_eq!(out, "\"a,b\",\"say \"\"hi\"\"\",'=cmd(),plain\n");
    }
}
