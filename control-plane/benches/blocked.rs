//! Blocked-request telemetry at scale: seeds 10 million `blocked_events`
//! rows over the last 30 days and 200 services into a fresh database (the
//! rollup trigger of migration 0004 maintains `blocked_hourly` and
//! `blocked_daily` as it goes), then prints the latency of every query shape
//! the API and UI issue (with the raw-table-only answer beside it, checked
//! equal, and the plan) and the ingest rate of the real ingestion path in
//! rows/s and events/s. Set `CORSAIR_BENCH_NO_RAW` to skip the raw peers. Not a criterion bench: the seed takes
//! minutes, each query is timed over a few runs and the median printed.
//!
//! `cargo bench -p corsair-control-plane --bench blocked` (set
//! `CORSAIR_BENCH_ROWS` to seed fewer rows while trying it out).

use anyhow::Result;
use chrono::{Duration, Utc};
use corsair_control_plane::store::Store;
use corsair_control_plane::store::blocked::{
    BlockedCount, BlockedFilter, BlockedPage, BlockedQuery, GroupBy, IngestBatch, Source,
};
use corsair_control_plane::testing::TestDb;
use std::time::Instant;

const SERVICES: i64 = 200;
const DAYS: i64 = 30;
const RUNS: usize = 5;

/// Median, min and max in ms over `RUNS` runs (JSON encoding included:
/// it is part of what a client waits for), and the last page.
async fn time_query(
    store: &Store,
    query: &BlockedQuery,
    source: Source,
) -> Result<(f64, f64, f64, BlockedPage)> {
    let mut times = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let t = Instant::now();
        let page = store.query_blocked_from(query, source).await?;
        std::hint::black_box(serde_json::to_vec(&page)?);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        last = Some(page);
    }
    times.sort_by(f64::total_cmp);
    let page = last.ok_or_else(|| anyhow::anyhow!("no runs"))?;
    Ok((times[RUNS / 2], times[0], times[RUNS - 1], page))
}

#[tokio::main]
async fn main() -> Result<()> {
    let rows: i64 = std::env::var("CORSAIR_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let db = TestDb::new().await?;
    let store = &db.store;
    let today = Utc::now().date_naive();
    store
        .ensure_blocked_partitions(today - Duration::days(DAYS + 1), today)
        .await?;

    // Seed with generate_series, one day per statement (the bench's only
    // SQL outside store/: it fabricates data, it is not product code).
    let started = Instant::now();
    let per_day = rows / DAYS;
    for day in 0..DAYS {
        sqlx::query(
            "INSERT INTO blocked_events (ts, service, origin, method, reason, would_block, agent_id, count)
             SELECT now() - make_interval(days => $1::int) - (i % 86400) * interval '1 second',
                    'svc-' || (i % $2),
                    'https://o' || ((i * 7919) % 5000) || '.example.com',
                    (ARRAY['GET','POST','PUT','DELETE'])[1 + i % 4],
                    (ARRAY['origin_not_allowed','origin_not_allowed','origin_not_allowed','method_not_allowed','header_not_allowed'])[1 + i % 5],
                    i % 10 = 0,
                    'agent-' || (i % 50),
                    1 + i % 5
               FROM generate_series(1::int8, $3::int8) AS i",
        )
        .bind(i32::try_from(day)?)
        .bind(SERVICES)
        .bind(per_day)
        .execute(store.pool())
        .await?;
    }
    let seed = started.elapsed();
    println!(
        "seeded {} rows in {:.1} s ({:.0} rows/s)",
        per_day * DAYS,
        seed.as_secs_f64(),
        (per_day * DAYS) as f64 / seed.as_secs_f64()
    );
    let started = Instant::now();
    sqlx::query("VACUUM ANALYZE blocked_events, blocked_hourly, blocked_daily")
        .execute(store.pool())
        .await?;
    let (raw, hourly, daily): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM blocked_events), (SELECT count(*) FROM blocked_hourly), \
                (SELECT count(*) FROM blocked_daily)",
    )
    .fetch_one(store.pool())
    .await?;
    println!("rows: {raw} raw, {hourly} hourly rollup, {daily} daily rollup");
    println!("VACUUM ANALYZE in {:.1} s", started.elapsed().as_secs_f64());

    let now = Utc::now();
    let q = |filter: BlockedFilter, group_by: Option<GroupBy>, limit: i64| BlockedQuery {
        filter,
        group_by,
        sort: None,
        order: None,
        after: None,
        limit,
    };
    let service = |since: Duration| BlockedFilter {
        service: Some("svc-42".into()),
        since: Some(now - since),
        ..BlockedFilter::default()
    };
    let all = |since: Duration| BlockedFilter {
        since: Some(now - since),
        ..BlockedFilter::default()
    };
    let (h2, d1, d7, d30) = (
        Duration::hours(2),
        Duration::days(1),
        Duration::days(7),
        Duration::days(30),
    );
    let queries = [
        (
            "top origins, one service, 24 h",
            q(service(d1), Some(GroupBy::Origin), 20),
        ),
        (
            "top origins, one service, 7 days",
            q(service(d7), Some(GroupBy::Origin), 20),
        ),
        (
            "top origins, one service, 30 days",
            q(service(d30), Some(GroupBy::Origin), 20),
        ),
        (
            "time series (minute), one service, 2 h",
            q(service(h2), Some(GroupBy::Minute), 10_000),
        ),
        (
            "time series (hourly), one service, 7 days",
            q(service(d7), Some(GroupBy::Hour), 10_000),
        ),
        (
            "time series (daily), one service, 30 days",
            q(service(d30), Some(GroupBy::Day), 10_000),
        ),
        (
            "top services, all, 24 h",
            q(all(d1), Some(GroupBy::Service), 20),
        ),
        (
            "top services, all, 7 days",
            q(all(d7), Some(GroupBy::Service), 20),
        ),
        (
            "top origins, all services, 24 h",
            q(all(d1), Some(GroupBy::Origin), 20),
        ),
        (
            "top origins, all services, 7 days",
            q(all(d7), Some(GroupBy::Origin), 20),
        ),
        (
            "one origin, all services, 7 days, by day",
            q(
                BlockedFilter {
                    origin: Some("https://o42.example.com".into()),
                    ..all(d7)
                },
                Some(GroupBy::Day),
                10_000,
            ),
        ),
        (
            "CSV export page: 10,000 newest rows, one service",
            q(service(d30), None, 10_000),
        ),
        (
            "raw rows, all services, newest 100",
            q(BlockedFilter::default(), None, 100),
        ),
    ];
    let compare_raw = std::env::var_os("CORSAIR_BENCH_NO_RAW").is_none();
    for (name, query) in &queries {
        let (median, min, max, page) = time_query(store, query, Source::Auto).await?;
        let returned = match &page {
            BlockedPage::Rows(p) => p.rows.len(),
            BlockedPage::Groups(p) => p.rows.len(),
        };
        println!(
            "{name}: median {median:.1} ms, min {min:.1} ms, max {max:.1} ms ({returned} rows)"
        );
        // The raw-table answer beside it: the peer the rollup is measured
        // against, and a check that both say the same.
        if compare_raw && query.group_by.is_some() {
            let (raw_median, _, _, raw_page) = time_query(store, query, Source::Raw).await?;
            let same = serde_json::to_value(&page)? == serde_json::to_value(&raw_page)?;
            println!(
                "    raw table only: median {raw_median:.1} ms; same answer: {}",
                if same { "yes" } else { "NO" }
            );
        }
        for line in store.explain_blocked(query).await? {
            println!("    {line}");
        }
    }

    // Ingest through the real path (idempotency row + COPY, the rollup
    // trigger, one transaction per batch), batches of 1,000 rows as a busy
    // agent sends: first one sender, then four at once (several agents).
    // "new keys": every row of every batch is a (service, origin) the hour
    // has not seen, so each one inserts rollup rows (the worst case);
    // "recurring keys": each batch repeats the same 1,000 keys, as an agent
    // does while the same origins keep being refused (rollup rows updated).
    for (senders, recurring) in [(1usize, false), (4, false), (1, true)] {
        let batches_each = 200 / senders;
        let per_batch = 1_000usize;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for s in 0..senders {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for b in 0..batches_each {
                    let counts: Vec<BlockedCount> = (0..per_batch)
                        .map(|i| BlockedCount {
                            service: format!("svc-{}", i % SERVICES as usize),
                            origin: if recurring {
                                format!("https://r{i}.example.com")
                            } else {
                                format!("https://n{}.example.com", (b * per_batch + i) % 9973)
                            },
                            method: "GET".into(),
                            reason: "origin_not_allowed".into(),
                            would_block: false,
                            // 1..=10, uniform: a blocked origin seen a few
                            // times per agent interval (see BENCHMARKS.md).
                            count: 1 + ((b * 7 + i * 13) % 10) as i64,
                        })
                        .collect();
                    store
                        .ingest_blocked_batch(&IngestBatch {
                            batch_id: format!("bench-{senders}-{recurring}-{s}:{b}"),
                            agent_id: format!("bench-{senders}-{recurring}-{s}"),
                            ts: Utc::now(),
                            counts,
                            dropped_events: 0,
                            dropped_service: "svc-0".into(),
                            uses: Vec::new(),
                            ts_end: Default::default(),
                        })
                        .await?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let took = started.elapsed();
        let rows = senders * batches_each * per_batch;
        let events: usize = (0..batches_each)
            .flat_map(|b| (0..per_batch).map(move |i| 1 + (b * 7 + i * 13) % 10))
            .sum::<usize>()
            * senders;
        println!(
            "ingest, {senders} sender(s), {}: {} batches x {per_batch} rows in {:.2} s = {:.0} rows/s, {:.0} events/s ({events} events)",
            if recurring {
                "recurring keys"
            } else {
                "new keys"
            },
            senders * batches_each,
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64(),
            events as f64 / took.as_secs_f64(),
        );
    }
    Ok(())
}
