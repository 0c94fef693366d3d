//! `/audit`: the change audit log, newest first, with filters, pages and a
//! CSV export of the same selection.

use super::page::{Ctx, Layout, UiResult, when};
use crate::state::AppState;
use crate::store::audit::AuditEntry;
use crate::store::overview::AuditFilter;
use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use http::StatusCode;
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::Value;

/// Rows per page.
pub const PAGE_SIZE: i64 = 50;
/// Most rows one CSV export holds.
pub const CSV_LIMIT: i64 = 50_000;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/audit", get(page))
        .route("/audit.csv", get(csv))
}

/// The filter form (a GET form: filtering changes nothing).
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    service: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    page: Option<i64>,
}

fn day(text: &str) -> Result<Option<DateTime<Utc>>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| Some(n.and_utc()))
        .ok_or_else(|| format!("{t:?} is not a date like 2026-11-22"))
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, String> {
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let until = day(&self.until)?.map(|d| d + chrono::Duration::days(1));
        Ok(AuditFilter {
            service: opt(&self.service),
            actor: opt(&self.actor),
            action: opt(&self.action),
            since: day(&self.since)?,
            until,
        })
    }

    /// `service=…&actor=…&action=…&since=…&until=…&page=N`, encoded by
    /// `serde_urlencoded` (the same crate that parses it back).
    fn query_string(&self, page: i64) -> String {
        let page = page.to_string();
        super::query(&[
            ("service", self.service.as_str()),
            ("actor", &self.actor),
            ("action", &self.action),
            ("since", &self.since),
            ("until", &self.until),
            ("page", &page),
        ])
    }
}

/// One audit row, ready to show.
pub struct AuditRow {
    id: i64,
    at: String,
    actor: String,
    action: String,
    service: String,
    target: String,
    changes: Vec<String>,
}

/// "field: before → after" for each top-level field that differs.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let show = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "∅".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| b.get(*k) != a.get(*k))
                .map(|k| format!("{k}: {} → {}", show(b.get(k)), show(a.get(k))))
                .collect()
        }
        // A creation: its set fields (empty ones say nothing).
        (None, Some(Value::Object(a))) => a
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{k}: {}", show(Some(v))))
            .collect(),
        (Some(Value::Object(b)), None) => b
            .iter()
            .map(|(k, v)| format!("{k}: {} → ∅", show(Some(v))))
            .collect(),
        (b, a) => vec![format!("{} → {}", show(b), show(a))],
    }
}

fn row(e: &AuditEntry) -> AuditRow {
    AuditRow {
        id: e.id,
        at: when(&e.at),
        actor: e.actor.clone(),
        action: e.action.clone(),
        service: e.service.clone().unwrap_or_default(),
        target: e.target.clone(),
        changes: diff(e.before.as_ref(), e.after.as_ref()),
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: Layout,
    service: String,
    actor: String,
    action: String,
    since: String,
    until: String,
    actions: Vec<String>,
    error: String,
    rows: Vec<AuditRow>,
    page_no: i64,
    prev: String,
    next: String,
    csv: String,
}

async fn page(ctx: Ctx, State(state): State<AppState>, Query(q): Query<AuditQuery>) -> UiResult {
    let page_no = q.page.unwrap_or(1).max(1);
    let (rows, more, error, status) = match q.filter() {
        Ok(filter) => {
            let mut entries = state
                .store
                .audit_page(&filter, (page_no - 1) * PAGE_SIZE, PAGE_SIZE + 1)
                .await?;
            let more = entries.len() as i64 > PAGE_SIZE;
            entries.truncate(PAGE_SIZE as usize);
            (
                entries.iter().map(row).collect(),
                more,
                String::new(),
                StatusCode::OK,
            )
        }
        Err(e) => (Vec::new(), false, e, StatusCode::UNPROCESSABLE_ENTITY),
    };
    let page = AuditPage {
        page: ctx.layout("Change audit", "audit"),
        actions: state.store.audit_actions().await?,
        prev: if page_no > 1 {
            format!("/audit?{}", q.query_string(page_no - 1))
        } else {
            String::new()
        },
        next: if more {
            format!("/audit?{}", q.query_string(page_no + 1))
        } else {
            String::new()
        },
        csv: format!("/audit.csv?{}", q.query_string(1)),
        service: q.service,
        actor: q.actor,
        action: q.action,
        since: q.since,
        until: q.until,
        error,
        rows,
        page_no,
    };
    Ok(ctx.render(status, &page))
}

fn csv_field(text: &str) -> String {
    // Quote everything; neutralise spreadsheet formulas.
    let t = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", t.replace('"', "\"\""))
}

async fn csv(ctx: Ctx, State(state): State<AppState>, Query(q): Query<AuditQuery>) -> UiResult {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return Err(crate::service::Error::unprocessable(e).into()),
    };
    let entries = state.store.audit_page(&filter, 0, CSV_LIMIT).await?;
    let mut out = String::from("id,at,actor,action,service,target,before,after\n");
    for e in &entries {
        let cols = [
            e.id.to_string(),
            e.at.to_rfc3339(),
            e.actor.clone(),
            e.action.clone(),
            e.service.clone().unwrap_or_default(),
            e.target.clone(),
            e.before.as_ref().map(Value::to_string).unwrap_or_default(),
            e.after.as_ref().map(Value::to_string).unwrap_or_default(),
        ];
        out.push_str(
            &cols
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    let _ = &ctx;
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                CONTENT_DISPOSITION,
                "attachment; filename=\"corsair-audit.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::diff;
    use serde_json::json;

    #[test]
    fn diff_lists_changed_fields_only() {
        let before = json!({"status": "pending", "note": null, "pattern": "https://a.example.com"});
        let after = json!({"status": "approved", "note": "ok", "pattern": "https://a.example.com"});
        assert_eq!(
            diff(Some(&before), Some(&after)),
            vec!["note: ∅ → ok", "status: pending → approved"]
        );
        assert_eq!(
            diff(None, Some(&json!({"role": "viewer", "x": null}))),
            vec!["role: viewer"]
        );
    }
}
