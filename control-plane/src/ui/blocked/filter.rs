//! The filter form of `/blocked`: what a person typed (kept as text so the
//! form shows it back), resolved into a store filter and a time range, and
//! the query strings of the page's own links and of the API's CSV export.

use crate::service::validate;
use crate::store::blocked::BlockedFilter;
use crate::ui::query;
use chrono::{DateTime, Duration, NaiveDateTime, SecondsFormat, Utc};
use serde::Deserialize;

/// The longest range one page charts (day buckets: one bar per day).
pub const MAX_RANGE_DAYS: i64 = 366;

/// The presets of the range select: value, label, length.
pub const PRESETS: [(&str, &str, i64); 4] = [
    ("1h", "last hour", 1),
    ("24h", "last 24 hours", 24),
    ("7d", "last 7 days", 24 * 7),
    ("30d", "last 30 days", 24 * 30),
];

/// The GET form, as typed. Unknown fields are ignored (old links keep working).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct BlockedForm {
    /// Exact service name.
    #[serde(default)]
    pub service: String,
    /// Origin, exact or substring.
    #[serde(default)]
    pub origin: String,
    /// `exact` (default) or `substring`.
    #[serde(default)]
    pub origin_match: String,
    /// Exact agent id.
    #[serde(default)]
    pub agent: String,
    /// Exact reason.
    #[serde(default)]
    pub reason: String,
    /// A preset (`1h`, `24h`, `7d`, `30d`) or `custom`; default last 24 h.
    #[serde(default)]
    pub range: String,
    /// From (UTC, `datetime-local` or RFC 3339), with `range=custom`.
    #[serde(default)]
    pub since: String,
    /// Until (UTC), with `range=custom`.
    #[serde(default)]
    pub until: String,
    /// The top-origins table's keyset cursor.
    #[serde(default)]
    pub after: String,
}

/// A form that checked out: the store filter and the range it covers.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Filter with `since` and `until` set.
    pub filter: BlockedFilter,
    /// From (inclusive).
    pub since: DateTime<Utc>,
    /// Until (exclusive).
    pub until: DateTime<Utc>,
}

/// Parses a `datetime-local` value (read as UTC) or an RFC 3339 time.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
                .map(|n| n.and_utc())
        })
}

fn time_field(label: &str, text: &str) -> Result<Option<DateTime<Utc>>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    parse_time(text).map(Some).ok_or_else(|| {
        let shown: String = text.trim().chars().take(40).collect();
        format!("{label}: {shown:?} is not a date and time like 2026-11-22T18:00 (UTC).")
    })
}

fn opt(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

impl BlockedForm {
    /// Whether the range comes from the from/to fields.
    pub fn is_custom(&self) -> bool {
        self.range == "custom"
            || (self.range.is_empty()
                && !(self.since.trim().is_empty() && self.until.trim().is_empty()))
    }

    /// Checks the form against `now`; the error is a message for the page.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<Resolved, String> {
        for (field, value) in [
            ("service", &self.service),
            ("origin", &self.origin),
            ("agent", &self.agent),
            ("reason", &self.reason),
        ] {
            // NUL would make Postgres fail the query: refuse it here.
            validate::text(field, value, false).map_err(|e| format!("{e}."))?;
        }
        let substring = match self.origin_match.as_str() {
            "" | "exact" => false,
            "substring" => true,
            _ => return Err("Origin match must be exact or substring.".into()),
        };
        let (since, until) = if self.is_custom() {
            let until = time_field("To", &self.until)?.unwrap_or(now);
            let since = time_field("From", &self.since)?.unwrap_or(until - Duration::hours(24));
            (since, until)
        } else {
            let hours = match self.range.as_str() {
                "" => 24,
                preset => PRESETS
                    .iter()
                    .find(|(value, ..)| *value == preset)
                    .map(|(.., hours)| *hours)
                    .ok_or("Choose a range: last hour, 24 hours, 7 days, 30 days or custom.")?,
            };
            (now - Duration::hours(hours), now)
        };
        if since >= until {
            return Err("From must be before To.".into());
        }
        if until - since > Duration::days(MAX_RANGE_DAYS) {
            return Err(format!("Choose a range of at most {MAX_RANGE_DAYS} days."));
        }
        Ok(Resolved {
            filter: BlockedFilter {
                service: opt(&self.service),
                origin: opt(&self.origin),
                origin_substring: substring,
                agent: opt(&self.agent),
                reason: opt(&self.reason),
                since: Some(since),
                until: Some(until),
            },
            since,
            until,
        })
    }
}

/// The value of a `datetime-local` input for `t` (UTC, to the second).
pub fn local_input(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn push(out: &mut Vec<(&'static str, String)>, key: &'static str, value: &str) {
    if !value.is_empty() {
        out.push((key, value.to_owned()));
    }
}

fn push_filter(out: &mut Vec<(&'static str, String)>, f: &BlockedFilter) {
    push(out, "service", f.service.as_deref().unwrap_or_default());
    push(out, "origin", f.origin.as_deref().unwrap_or_default());
    if f.origin.is_some() && f.origin_substring {
        push(out, "origin_match", "substring");
    }
    push(out, "agent", f.agent.as_deref().unwrap_or_default());
    push(out, "reason", f.reason.as_deref().unwrap_or_default());
}

impl Resolved {
    /// `/blocked?…` for the same selection with the range pinned to
    /// absolute times, so paging does not drift while "now" moves.
    pub fn page_link(&self, after: Option<&str>) -> String {
        let mut q = Vec::new();
        push_filter(&mut q, &self.filter);
        push(&mut q, "range", "custom");
        push(&mut q, "since", &local_input(self.since));
        push(&mut q, "until", &local_input(self.until));
        push(&mut q, "after", after.unwrap_or_default());
        format!("/blocked?{}", query(&q))
    }

    /// `/api/v1/blocked?…&format=csv` with the same filters (grouped by
    /// `group_by` when given), as large as one API page may be.
    pub fn csv_link(&self, group_by: Option<&str>) -> String {
        let mut q = Vec::new();
        push_filter(&mut q, &self.filter);
        let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        push(&mut q, "since", &rfc(self.since));
        push(&mut q, "until", &rfc(self.until));
        push(&mut q, "group_by", group_by.unwrap_or_default());
        push(
            &mut q,
            "limit",
            &crate::store::blocked::MAX_LIMIT.to_string(),
        );
        push(&mut q, "format", "csv");
        format!("/api/v1/blocked?{}", query(&q))
    }
}

#[cfg(test)]
mod tests;
