//! `/blocked`: blocked (and would-block) requests with the API's filters as
//! a GET form, a server-side SVG time series, the top origins with a
//! "request approval for this origin" link into the service's request form,
//! and CSV export links; plus the last-24h summary on service pages.

pub mod filter;

use super::chart::{self, Bucket, Chart};
use super::page::{Ctx, Layout, UiResult, when};
use crate::domain::OriginStatus;
use crate::service::{Error, validate};
use crate::state::AppState;
use crate::store::Store;
use crate::store::blocked::{
    BlockedFilter, BlockedPage, BlockedQuery, DROPPED_REASON, GroupBy, GroupedRow, MAX_LIMIT,
    Order, QueryError, SortBy,
};
use crate::store::services::Service;
use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use chrono::{DateTime, Duration, Utc};
use filter::{BlockedForm, PRESETS, Resolved, local_input};
use http::StatusCode;
use std::collections::HashMap;

/// Origins per page of the top-origins table.
pub const PAGE_SIZE: i64 = 25;
/// Longest origin and reason carried into the request form's pre-fill.
pub const PREFILL_ORIGIN_MAX: usize = 300;
/// See [`PREFILL_ORIGIN_MAX`].
pub const PREFILL_REASON_MAX: usize = 500;

/// The engine's reasons, plus the agent's dropped-events marker.
const REASONS: [&str; 6] = [
    "origin_not_allowed",
    "method_not_allowed",
    "header_not_allowed",
    "private_network_not_allowed",
    "no_policy",
    DROPPED_REASON,
];

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/blocked", get(page))
}

/// Maps a query failure to the API error (a bad cursor is the caller's).
pub fn query_error(e: QueryError) -> Error {
    match e {
        QueryError::Cursor(c) => Error::BadRequest(c.to_string()),
        QueryError::Store(s) => Error::from(s),
    }
}

fn groups(page: BlockedPage) -> (Vec<GroupedRow>, Option<String>) {
    match page {
        BlockedPage::Groups(p) => (p.rows, p.next),
        // Only grouped queries are sent from here.
        BlockedPage::Rows(_) => (Vec::new(), None),
    }
}

async fn grouped(
    store: &Store,
    filter: &BlockedFilter,
    group_by: GroupBy,
    limit: i64,
    after: Option<String>,
) -> Result<(Vec<GroupedRow>, Option<String>), Error> {
    let query = BlockedQuery {
        filter: filter.clone(),
        group_by: Some(group_by),
        sort: Some(if group_by.is_time() {
            SortBy::Key
        } else {
            SortBy::Count
        }),
        order: Some(if group_by.is_time() {
            Order::Asc
        } else {
            Order::Desc
        }),
        after,
        limit,
    };
    store
        .query_blocked(&query)
        .await
        .map(groups)
        .map_err(query_error)
}

/// One option of a select.
pub struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// Options for `values`, `current` selected (and added when it is not
/// among them, so the form shows back what the link asked for).
fn choices<'a>(values: impl Iterator<Item = (&'a str, &'a str)>, current: &str) -> Vec<Choice> {
    let mut out: Vec<Choice> = values
        .map(|(value, label)| Choice {
            value: value.to_owned(),
            label: label.to_owned(),
            selected: value == current,
        })
        .collect();
    if !current.is_empty() && !out.iter().any(|c| c.selected) {
        out.push(Choice {
            value: current.to_owned(),
            label: current.to_owned(),
            selected: true,
        });
    }
    out
}

/// One top-origins row, ready to show.
pub struct OriginRow {
    origin: String,
    count: i64,
    would_block: i64,
    first_seen: String,
    last_seen: String,
    agents: String,
    /// The services that refused it.
    services: String,
    /// Per refusing service: a request link or the origin's status there.
    actions: Vec<Action>,
}

/// What a requester can do about one origin on one service.
pub struct Action {
    /// The service ("" when the page is filtered to it: no need to repeat).
    service: String,
    /// Link to the pre-filled request form ("" when not offered).
    request: String,
    /// The origin's status on the service when it is already there.
    status: String,
}

/// Most services a row offers actions for (and distinct services a page
/// loads settings for): beyond that, filter by service.
const MAX_ACTION_SERVICES: usize = 5;

#[derive(Template)]
#[template(path = "blocked.html")]
struct BlockedPageView {
    page: Layout,
    form: BlockedForm,
    custom: bool,
    since_input: String,
    until_input: String,
    presets: Vec<Choice>,
    services: Vec<Choice>,
    reasons: Vec<Choice>,
    error: String,
    range_text: String,
    chart: Option<Chart>,
    width: f64,
    height: f64,
    rows: Vec<OriginRow>,
    next: String,
    first_page: String,
    csv_rows: String,
    csv_origins: String,
    /// Why the request action is not offered ("" when it is).
    action_note: String,
}

/// The request link for `row` on `service`, or `None` when the engine
/// would refuse the origin (overflow bucket, `null`, malformed, wildcard).
fn request_link(
    service: &str,
    settings: &crate::store::services::ServiceSettings,
    row: &GroupedRow,
) -> Option<(String, String)> {
    if row.key.contains('*') {
        return None;
    }
    let canonical = validate::origin(&row.key, settings, Vec::new()).ok()?;
    let reason = format!(
        "Blocked {} times between {} and {} (seen by {}).",
        row.count,
        when(&row.first_seen),
        when(&row.last_seen),
        row.agents.join(", ")
    );
    let reason: String = reason.chars().take(PREFILL_REASON_MAX).collect();
    let link = format!(
        "/services/{service}?{}#request",
        super::query(&[
            ("request_origin", canonical.as_str()),
            ("request_reason", &reason)
        ])
    );
    Some((canonical, link))
}

async fn page(
    ctx: Ctx,
    State(state): State<AppState>,
    Query(form): Query<BlockedForm>,
) -> UiResult {
    let names: Vec<String> = state
        .store
        .list_services()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let services = choices(
        names.iter().map(|n| (n.as_str(), n.as_str())),
        &form.service,
    );
    let reasons = choices(REASONS.iter().map(|r| (*r, *r)), &form.reason);
    let custom = form.is_custom();
    let range = if custom {
        "custom"
    } else {
        form.range.as_str()
    };
    let range = if range.is_empty() { "24h" } else { range };
    let presets = choices(
        PRESETS
            .iter()
            .map(|(v, l, _)| (*v, *l))
            .chain([("custom", "custom range")]),
        range,
    );
    let mut view = BlockedPageView {
        page: ctx.layout("Blocked requests", "blocked"),
        custom,
        since_input: form.since.clone(),
        until_input: form.until.clone(),
        presets,
        services,
        reasons,
        error: String::new(),
        range_text: String::new(),
        chart: None,
        width: chart::WIDTH,
        height: chart::HEIGHT,
        rows: Vec::new(),
        next: String::new(),
        first_page: String::new(),
        csv_rows: String::new(),
        csv_origins: String::new(),
        action_note: String::new(),
        form,
    };
    let resolved = match view.form.resolve(Utc::now()) {
        Ok(r) => r,
        Err(message) => {
            view.error = message;
            return Ok(ctx.render(StatusCode::BAD_REQUEST, &view));
        }
    };
    if !view.custom {
        view.since_input = local_input(resolved.since);
        view.until_input = local_input(resolved.until);
    }
    let after = (!view.form.after.is_empty()).then(|| view.form.after.clone());
    let top = match grouped(
        &state.store,
        &resolved.filter,
        GroupBy::Origin,
        PAGE_SIZE,
        after,
    )
    .await
    {
        Ok(top) => top,
        Err(Error::BadRequest(message)) => {
            view.error =
                format!("The page link is broken ({message}); start again from the first page.");
            view.first_page = resolved.page_link(None);
            return Ok(ctx.render(StatusCode::BAD_REQUEST, &view));
        }
        Err(e) => return Err(ctx.error(e)),
    };
    fill_view(&mut view, &state.store, &resolved, top)
        .await
        .map_err(|e| ctx.error(e))?;
    Ok(ctx.render(StatusCode::OK, &view))
}

async fn fill_view(
    view: &mut BlockedPageView,
    store: &Store,
    resolved: &Resolved,
    (top, next): (Vec<GroupedRow>, Option<String>),
) -> Result<(), Error> {
    let bucket = Bucket::for_range(resolved.since, resolved.until);
    let (series, _) = grouped(store, &resolved.filter, bucket.group_by(), MAX_LIMIT, None).await?;
    let rows: Vec<(DateTime<Utc>, i64, i64)> = series
        .iter()
        .filter_map(|g| {
            let start = DateTime::parse_from_rfc3339(&g.key).ok()?;
            Some((start.with_timezone(&Utc), g.count, g.would_block))
        })
        .collect();
    let points = chart::fill(bucket, resolved.since, resolved.until, &rows);
    view.chart = Some(chart::layout(bucket, &points));
    view.range_text = format!(
        "{} to {}, per {}",
        when(&resolved.since),
        when(&resolved.until),
        bucket.name()
    );
    view.csv_rows = resolved.csv_link(None);
    view.csv_origins = resolved.csv_link(Some("origin"));
    view.first_page = if view.form.after.is_empty() {
        String::new()
    } else {
        resolved.page_link(None)
    };
    view.next = next
        .map(|n| resolved.page_link(Some(&n)))
        .unwrap_or_default();
    // Actions need a role that may request, and the services to request
    // for: the filtered one, or those that refused each origin.
    let mut services: HashMap<String, Service> = HashMap::new();
    let mut statuses: HashMap<(String, String), OriginStatus> = HashMap::new();
    if view.page.can_request {
        let wanted: Vec<String> = match &resolved.filter.service {
            Some(name) => vec![name.clone()],
            None => {
                let mut names: Vec<String> = Vec::new();
                for name in top
                    .iter()
                    .flat_map(|g| g.services.iter().take(MAX_ACTION_SERVICES))
                {
                    if !names.contains(name) && names.len() < 4 * MAX_ACTION_SERVICES {
                        names.push(name.clone());
                    }
                }
                names
            }
        };
        for name in wanted {
            // A service deleted since it refused the origin has no form.
            let Ok(service) = store.get_service(&name).await else {
                if resolved.filter.service.is_some() {
                    view.action_note = format!("There is no service named {name}.");
                }
                continue;
            };
            for o in store.list_origins(&name).await? {
                statuses.insert((name.clone(), o.pattern), o.status);
            }
            services.insert(name, service);
        }
    }
    let filtered = resolved.filter.service.is_some();
    view.rows = top
        .iter()
        .map(|g| {
            let actions = g
                .services
                .iter()
                .take(MAX_ACTION_SERVICES)
                .filter_map(|name| services.get(name))
                .filter_map(|s| {
                    let (canonical, link) = request_link(&s.name, &s.settings, g)?;
                    let status = statuses
                        .get(&(s.name.clone(), canonical))
                        .filter(|st| st.is_live());
                    Some(Action {
                        service: if filtered {
                            String::new()
                        } else {
                            s.name.clone()
                        },
                        request: if status.is_some() {
                            String::new()
                        } else {
                            link
                        },
                        status: status.map(|st| st.as_str().to_owned()).unwrap_or_default(),
                    })
                })
                .collect();
            OriginRow {
                origin: g.key.clone(),
                count: g.count,
                would_block: g.would_block,
                first_seen: when(&g.first_seen),
                last_seen: when(&g.last_seen),
                agents: g.agents.join(", "),
                services: g.services.join(", "),
                actions,
            }
        })
        .collect();
    Ok(())
}

/// A service's blocked requests over the last 24 hours, for its page.
#[derive(Debug, Clone, Default)]
pub struct ServiceSummary {
    /// All events.
    pub total: i64,
    /// Of which would-block (report-only).
    pub would_block: i64,
    /// The busiest origins: origin and count.
    pub top: Vec<(String, i64)>,
    /// `/blocked?service=…`.
    pub link: String,
}

/// Origins listed on a service page.
const SUMMARY_TOP: i64 = 5;

/// The last-24h summary of `service`, composed from two grouped queries.
pub async fn service_summary(store: &Store, service: &str) -> Result<ServiceSummary, Error> {
    let now = Utc::now();
    let filter = BlockedFilter {
        service: Some(service.to_owned()),
        since: Some(now - Duration::hours(24)),
        until: Some(now),
        ..BlockedFilter::default()
    };
    let (totals, _) = grouped(store, &filter, GroupBy::Service, 1, None).await?;
    let (top, _) = grouped(store, &filter, GroupBy::Origin, SUMMARY_TOP, None).await?;
    Ok(ServiceSummary {
        total: totals.first().map_or(0, |t| t.count),
        would_block: totals.first().map_or(0, |t| t.would_block),
        top: top.into_iter().map(|g| (g.key, g.count)).collect(),
        link: format!(
            "/blocked?{}",
            super::query(&[("service", service), ("range", "24h")])
        ),
    })
}
