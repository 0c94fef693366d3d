use super::*;
use chrono::TimeZone;

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0)
        .single()
        .expect("valid time")
}

#[test]
fn bucket_follows_the_range() {
    let since = t(10, 0);
    assert_eq!(
        Bucket::for_range(since, since + Duration::hours(2)),
        Bucket::Minute
    );
    assert_eq!(
        Bucket::for_range(since, since + Duration::hours(2) + Duration::seconds(1)),
        Bucket::Hour
    );
    assert_eq!(
        Bucket::for_range(since, since + Duration::days(7)),
        Bucket::Hour
    );
    assert_eq!(
        Bucket::for_range(since, since + Duration::days(8)),
        Bucket::Day
    );
    assert_eq!(Bucket::Day.group_by(), GroupBy::Day);
}

#[test]
fn fill_zero_fills_gaps_and_splits_would_block() {
    // 10:00:30 .. 10:05:00 → buckets 10:00 … 10:04.
    let since = t(10, 0) + Duration::seconds(30);
    let rows = [(t(10, 1), 5, 2), (t(10, 3), 1, 0), (t(11, 0), 9, 9)];
    let points = fill(Bucket::Minute, since, t(10, 5), &rows);
    let got: Vec<(u32, i64, i64)> = points
        .iter()
        .map(|p| {
            (
                p.start.format("%M").to_string().parse().unwrap_or(99),
                p.blocked,
                p.would_block,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(0, 0, 0), (1, 3, 2), (2, 0, 0), (3, 1, 0), (4, 0, 0)]
    );
}

#[test]
fn nice_steps() {
    assert_eq!(nice_step(0), 1);
    assert_eq!(nice_step(3), 1);
    assert_eq!(nice_step(7), 2);
    assert_eq!(nice_step(23), 5);
    assert_eq!(nice_step(40), 10);
    assert_eq!(nice_step(999), 200);
    assert_eq!(nice_step(1_000_000), 200_000);
}

#[test]
fn bars_are_stacked_proportional_and_inside_the_plot() {
    let points = fill(
        Bucket::Hour,
        t(0, 0),
        t(4, 0),
        &[(t(1, 0), 10, 0), (t(3, 0), 10, 5)],
    );
    let chart = layout(Bucket::Hour, &points);
    assert_eq!(chart.buckets, 4);
    assert_eq!(chart.bars.len(), 2, "empty buckets draw no bar");
    let (a, b) = (&chart.bars[0], &chart.bars[1]);
    // y axis 0..10 in steps of 2: a full bar reaches the top.
    assert_eq!(chart.y_ticks.first().map(|t| t.label.as_str()), Some("0"));
    assert_eq!(chart.y_ticks.last().map(|t| t.label.as_str()), Some("10"));
    let plot_h = chart.bottom - chart.top;
    assert!((a.blocked_h - plot_h).abs() < 0.11, "{a:?}");
    assert_eq!(a.would_h, 0.0);
    assert!((b.blocked_h - plot_h / 2.0).abs() < 0.11);
    assert!((b.would_h - plot_h / 2.0).abs() < 0.11);
    // The would-block part sits on top of the blocked part.
    assert!((b.would_y + b.would_h - b.blocked_y).abs() < 0.11);
    assert!((b.blocked_y + b.blocked_h - chart.bottom).abs() < 0.11);
    for bar in &chart.bars {
        assert!(bar.x >= chart.left && bar.x + bar.width <= chart.right + 0.1);
        assert!(bar.would_y >= chart.top - 0.1);
    }
    // Bars are in time order, second one further right.
    assert!(b.x > a.x);
    assert_eq!(a.title, "2026-11-22 01:00 UTC: 10 blocked, 0 would-block");
    assert_eq!(chart.rows[1], ("2026-11-22 03:00 UTC".to_owned(), 5, 5));
    assert!(
        chart.summary.starts_with("15 blocked and 5 would-block"),
        "{}",
        chart.summary
    );
    assert!(
        chart
            .summary
            .contains("busiest hour began 2026-11-22 01:00 UTC with 10")
    );
}

#[test]
fn empty_range_has_axes_and_says_so() {
    let points = fill(Bucket::Minute, t(10, 0), t(12, 0), &[]);
    let chart = layout(Bucket::Minute, &points);
    assert_eq!(chart.buckets, 120);
    assert!(chart.bars.is_empty());
    assert_eq!(chart.y_ticks.len(), 2, "0 and 1");
    assert!(chart.x_ticks.len() <= X_LABELS && chart.x_ticks.len() >= 2);
    assert_eq!(chart.x_ticks[0].label, "10:00");
    assert!(
        chart.summary.starts_with("No blocked requests between"),
        "{}",
        chart.summary
    );
}

#[test]
fn day_buckets_over_a_month() {
    let since = t(13, 37);
    let points = fill(Bucket::Day, since, since + Duration::days(30), &[]);
    // The partial first day counts as a bucket: 31 in all.
    assert_eq!(points.len(), 31);
    assert_eq!(points[0].start, t(0, 0));
    let chart = layout(Bucket::Day, &points);
    assert!(chart.x_ticks.len() <= X_LABELS);
    // Weekly ticks, on Mondays (2026-11-22 is a Sunday).
    let labels: Vec<&str> = chart.x_ticks.iter().map(|t| t.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "2026-11-23",
            "2026-11-30",
            "2026-12-07",
            "2026-12-14",
            "2026-12-21"
        ]
    );
}

#[test]
fn time_ticks_fall_on_round_clock_times() {
    // An hour starting at an odd minute: ticks every 10 minutes, on the tens.
    let points = fill(Bucket::Minute, t(19, 4), t(20, 4), &[]);
    let chart = layout(Bucket::Minute, &points);
    let labels: Vec<&str> = chart.x_ticks.iter().map(|t| t.label.as_str()).collect();
    assert_eq!(
        labels,
        ["19:10", "19:20", "19:30", "19:40", "19:50", "20:00"]
    );
    // A week of hours: one tick a day, at midnight.
    let points = fill(Bucket::Hour, t(13, 37), t(13, 37) + Duration::days(7), &[]);
    let chart = layout(Bucket::Hour, &points);
    assert!(
        chart.x_ticks.len() <= X_LABELS + 1,
        "{:?}",
        chart.x_ticks.len()
    );
    assert!(chart.x_ticks.iter().all(|t| t.label.ends_with(" 00:00")));
}
