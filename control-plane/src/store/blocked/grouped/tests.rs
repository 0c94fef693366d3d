use super::{Part, Source, Table, split};
use crate::store::blocked::{BlockedFilter, GroupBy};
use chrono::{DateTime, TimeZone, Utc};

fn at(d: u32, h: u32, m: u32) -> Option<DateTime<Utc>> {
    Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).single()
}

fn range(since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> BlockedFilter {
    BlockedFilter {
        since,
        until,
        ..BlockedFilter::default()
    }
}

fn part(table: Table, since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Part {
    Part {
        table,
        since,
        until,
    }
}

#[test]
fn days_in_the_middle_hours_beside_them_raw_at_the_edges() {
    let f = range(at(18, 21, 30), at(20, 2, 15));
    assert_eq!(
        split(&f, GroupBy::Origin, Source::Auto),
        vec![
            part(Table::Raw, at(18, 21, 30), at(18, 22, 0)),
            part(Table::Hourly, at(18, 22, 0), at(19, 0, 0)),
            part(Table::Daily, at(19, 0, 0), at(20, 0, 0)),
            part(Table::Hourly, at(20, 0, 0), at(20, 2, 0)),
            part(Table::Raw, at(20, 2, 0), at(20, 2, 15)),
        ]
    );
}

#[test]
fn hour_buckets_never_read_the_daily_rollup() {
    let f = range(at(18, 21, 30), at(20, 2, 15));
    assert_eq!(
        split(&f, GroupBy::Hour, Source::Auto),
        vec![
            part(Table::Raw, at(18, 21, 30), at(18, 22, 0)),
            part(Table::Hourly, at(18, 22, 0), at(20, 2, 0)),
            part(Table::Raw, at(20, 2, 0), at(20, 2, 15)),
        ]
    );
}

#[test]
fn aligned_and_open_bounds_need_no_finer_part() {
    let f = range(at(18, 0, 0), at(20, 0, 0));
    assert_eq!(
        split(&f, GroupBy::Day, Source::Auto),
        vec![part(Table::Daily, at(18, 0, 0), at(20, 0, 0))]
    );
    assert_eq!(
        split(&range(None, None), GroupBy::Service, Source::Auto),
        vec![part(Table::Daily, None, None)]
    );
    let f = range(at(18, 23, 0), None);
    assert_eq!(
        split(&f, GroupBy::Agent, Source::Auto),
        vec![
            part(Table::Hourly, at(18, 23, 0), at(19, 0, 0)),
            part(Table::Daily, at(19, 0, 0), None),
        ]
    );
    let f = range(None, at(18, 9, 5));
    assert_eq!(
        split(&f, GroupBy::Reason, Source::Auto),
        vec![
            part(Table::Daily, None, at(18, 0, 0)),
            part(Table::Hourly, at(18, 0, 0), at(18, 9, 0)),
            part(Table::Raw, at(18, 9, 0), at(18, 9, 5)),
        ]
    );
}

#[test]
fn minutes_raw_source_and_short_ranges_stay_raw() {
    let f = range(at(18, 9, 30), at(19, 14, 15));
    let raw = vec![part(Table::Raw, f.since, f.until)];
    assert_eq!(split(&f, GroupBy::Minute, Source::Auto), raw);
    assert_eq!(split(&f, GroupBy::Origin, Source::Raw), raw);
    // Crossing one hour boundary without a whole hour inside.
    let across = range(at(18, 9, 50), at(18, 10, 10));
    assert_eq!(
        split(&across, GroupBy::Origin, Source::Auto),
        vec![part(Table::Raw, across.since, across.until)]
    );
}
