//! The geometry of the blocked-requests time-series chart: bucket choice,
//! zero-filled series, stacked bars (blocked under would-block), nice axis
//! ticks and a text summary. Pure numbers and plain strings; the template
//! turns them into SVG, so every label is escaped there.

use crate::store::blocked::GroupBy;
use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc, Weekday};

/// SVG width in user units.
pub const WIDTH: f64 = 720.0;
/// SVG height in user units.
pub const HEIGHT: f64 = 240.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 36.0;
/// Most labelled ticks on the time axis (more would overlap).
const X_LABELS: usize = 6;

/// The size of one time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl Bucket {
    /// The bucket for a range: minutes up to 2 h, hours up to 7 days, days
    /// beyond, so a chart has between a few and a few hundred bars.
    pub fn for_range(since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        let span = until - since;
        if span <= Duration::hours(2) {
            Bucket::Minute
        } else if span <= Duration::days(7) {
            Bucket::Hour
        } else {
            Bucket::Day
        }
    }

    /// The matching `group_by` of the blocked query.
    pub fn group_by(self) -> GroupBy {
        match self {
            Bucket::Minute => GroupBy::Minute,
            Bucket::Hour => GroupBy::Hour,
            Bucket::Day => GroupBy::Day,
        }
    }

    /// The length of one bucket.
    pub fn step(self) -> Duration {
        match self {
            Bucket::Minute => Duration::minutes(1),
            Bucket::Hour => Duration::hours(1),
            Bucket::Day => Duration::days(1),
        }
    }

    /// The word for one bucket ("minute", …).
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Minute => "minute",
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }

    /// The start of the bucket holding `t` (the store truncates in UTC too).
    pub fn start_of(self, t: DateTime<Utc>) -> DateTime<Utc> {
        t.duration_trunc(self.step()).unwrap_or(t)
    }

    /// Label strides, in buckets, that land on round clock times.
    fn strides(self) -> &'static [i64] {
        match self {
            Bucket::Minute => &[1, 2, 5, 10, 15, 30, 60],
            Bucket::Hour => &[1, 2, 3, 6, 12, 24, 48, 72],
            Bucket::Day => &[1, 2, 7, 14, 28],
        }
    }

    /// Whether a tick `stride` buckets apart falls on `t` (round minutes,
    /// hours of the day, midnights, or Mondays for weekly day ticks).
    fn on_stride(self, t: DateTime<Utc>, stride: i64) -> bool {
        let minute_of_day = i64::from(t.hour() * 60 + t.minute());
        match self {
            Bucket::Minute => minute_of_day % stride == 0,
            Bucket::Hour if stride <= 24 => i64::from(t.hour()) % stride == 0,
            Bucket::Hour => t.hour() == 0 && i64::from(t.ordinal0()) % (stride / 24) == 0,
            Bucket::Day if stride % 7 == 0 => {
                t.weekday() == Weekday::Mon && i64::from(t.iso_week().week()) % (stride / 7) == 0
            }
            Bucket::Day => i64::from(t.ordinal0()) % stride == 0,
        }
    }

    fn axis_label(self, t: DateTime<Utc>) -> String {
        match self {
            Bucket::Minute => t.format("%H:%M").to_string(),
            Bucket::Hour => t.format("%m-%d %H:00").to_string(),
            Bucket::Day => t.format("%Y-%m-%d").to_string(),
        }
    }

    fn long_label(self, t: DateTime<Utc>) -> String {
        match self {
            Bucket::Day => t.format("%Y-%m-%d").to_string(),
            _ => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

/// One bucket's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// The bucket's start.
    pub start: DateTime<Utc>,
    /// Enforced blocks.
    pub blocked: i64,
    /// Report-only: would have been blocked.
    pub would_block: i64,
}

/// Every bucket from the one holding `since` up to `until`, with the counts
/// of `rows` (start, all events, would-block events) and zero elsewhere.
/// Rows outside the range are ignored.
pub fn fill(
    bucket: Bucket,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    rows: &[(DateTime<Utc>, i64, i64)],
) -> Vec<Point> {
    let mut points = Vec::new();
    let mut start = bucket.start_of(since);
    while start < until {
        points.push(Point {
            start,
            blocked: 0,
            would_block: 0,
        });
        start += bucket.step();
    }
    for &(at, count, would) in rows {
        let at = bucket.start_of(at);
        if let Some(p) = points.iter_mut().find(|p| p.start == at) {
            p.would_block += would;
            p.blocked += count - would;
        }
    }
    points
}

/// One drawn bar: the blocked part at the bottom, would-block stacked on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Left edge.
    pub x: f64,
    /// Width.
    pub width: f64,
    /// Top of the blocked part.
    pub blocked_y: f64,
    /// Height of the blocked part (0 when none).
    pub blocked_h: f64,
    /// Top of the would-block part.
    pub would_y: f64,
    /// Height of the would-block part (0 when none).
    pub would_h: f64,
    /// Blocked count.
    pub blocked: i64,
    /// Would-block count.
    pub would_block: i64,
    /// Hover text, e.g. "2026-11-22 18:00 UTC: 3 blocked, 1 would-block".
    pub title: String,
}

/// A labelled axis tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// Position along its axis.
    pub at: f64,
    /// Label.
    pub label: String,
}

/// A chart ready to draw.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Bars with at least one event (empty buckets are gaps).
    pub bars: Vec<Bar>,
    /// Value ticks (y positions), 0 first.
    pub y_ticks: Vec<Tick>,
    /// Time ticks (x positions).
    pub x_ticks: Vec<Tick>,
    /// Plot area: left, top, right, bottom.
    pub left: f64,
    /// Plot top.
    pub top: f64,
    /// Plot right.
    pub right: f64,
    /// Plot bottom (the x axis).
    pub bottom: f64,
    /// Buckets drawn (empty ones included).
    pub buckets: usize,
    /// The text alternative: totals, range and the busiest bucket.
    pub summary: String,
    /// Non-empty buckets as text rows (label, blocked, would-block), for
    /// the table that stands in for the picture.
    pub rows: Vec<(String, i64, i64)>,
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// A step of 1, 2 or 5 × 10ⁿ giving at most about 5 ticks up to `max`.
pub fn nice_step(max: i64) -> i64 {
    let raw = ((max.max(1) + 4) / 5).max(1);
    let mut magnitude = 1i64;
    while magnitude.saturating_mul(10) <= raw {
        magnitude = magnitude.saturating_mul(10);
    }
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10 * magnitude)
}

/// Lays out `points` (consecutive buckets of `bucket`).
pub fn layout(bucket: Bucket, points: &[Point]) -> Chart {
    let (left, top, right, bottom) = (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM);
    let plot_h = bottom - top;
    let peak = points
        .iter()
        .map(|p| p.blocked + p.would_block)
        .max()
        .unwrap_or(0);
    let step = nice_step(peak);
    let y_max = (peak.max(1) + step - 1) / step * step;
    let scale = |v: i64| v as f64 / y_max as f64 * plot_h;
    let slot = (right - left) / points.len().max(1) as f64;
    let mut bars = Vec::new();
    let mut rows = Vec::new();
    for (i, p) in points.iter().enumerate() {
        if p.blocked + p.would_block == 0 {
            continue;
        }
        let blocked_h = scale(p.blocked);
        let would_h = scale(p.would_block);
        let label = bucket.long_label(p.start);
        bars.push(Bar {
            x: round1(left + i as f64 * slot + slot * 0.1),
            width: round1((slot * 0.8).max(0.5)),
            blocked_y: round1(bottom - blocked_h),
            blocked_h: round1(blocked_h),
            would_y: round1(bottom - blocked_h - would_h),
            would_h: round1(would_h),
            blocked: p.blocked,
            would_block: p.would_block,
            title: format!(
                "{label}: {} blocked, {} would-block",
                p.blocked, p.would_block
            ),
        });
        rows.push((label, p.blocked, p.would_block));
    }
    let y_ticks = (0..=y_max / step)
        .map(|k| Tick {
            at: round1(bottom - scale(k * step)),
            label: (k * step).to_string(),
        })
        .collect();
    // The smallest round stride that keeps the labels apart; ticks sit on
    // round times (19:10, 19:20 …), not wherever the range happens to start.
    let wanted = i64::try_from(points.len().div_ceil(X_LABELS)).unwrap_or(i64::MAX);
    let stride = bucket
        .strides()
        .iter()
        .copied()
        .find(|s| *s >= wanted)
        .unwrap_or(wanted);
    let x_ticks = points
        .iter()
        .enumerate()
        .filter(|(_, p)| bucket.on_stride(p.start, stride))
        .map(|(i, p)| Tick {
            at: round1(left + (i as f64 + 0.5) * slot),
            label: bucket.axis_label(p.start),
        })
        .collect();
    Chart {
        summary: summary(bucket, points),
        bars,
        y_ticks,
        x_ticks,
        left,
        top,
        right,
        bottom,
        buckets: points.len(),
        rows,
    }
}

fn summary(bucket: Bucket, points: &[Point]) -> String {
    let blocked: i64 = points.iter().map(|p| p.blocked).sum();
    let would: i64 = points.iter().map(|p| p.would_block).sum();
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return "No time range to chart.".to_owned();
    };
    let range = format!(
        "between {} and {}",
        bucket.long_label(first.start),
        bucket.long_label(last.start + bucket.step())
    );
    let busiest = points
        .iter()
        .filter(|p| p.blocked + p.would_block > 0)
        .max_by_key(|p| (p.blocked + p.would_block, std::cmp::Reverse(p.start)));
    match busiest {
        None => format!("No blocked requests {range}."),
        Some(p) => format!(
            "{blocked} blocked and {would} would-block (report-only) requests {range}, \
             per {}; the busiest {} began {} with {}.",
            bucket.name(),
            bucket.name(),
            bucket.long_label(p.start),
            p.blocked + p.would_block
        ),
    }
}

#[cfg(test)]
mod tests;
