//! Blocked-request telemetry at scale: seeds 10 million `blocked_events`
//! rows over 30 days and 200 services into a fresh database, then prints
//! the latency of the main queries (with their plans) and the ingest rate
//! of the real ingestion path. Not a criterion bench: the seed takes
//! minutes, each query is timed over a few runs and the median printed.
//!
//! `cargo bench -p corsair-control-plane --bench blocked` (set
//! `CORSAIR_BENCH_ROWS` to seed fewer rows while trying it out).

use anyhow::Result;
use chrono::{Duration, Utc};
use corsair_control_plane::store::blocked::{
    BlockedCount, BlockedFilter, BlockedPage, BlockedQuery, GroupBy, IngestBatch,
};
use corsair_control_plane::testing::TestDb;
use std::time::Instant;

const SERVICES: i64 = 200;
const DAYS: i64 = 30;
const RUNS: usize = 5;

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
        .ensure_blocked_partitions(today - Duration::days(DAYS), today)
        .await?;

    // Seed with generate_series, one day per statement (the bench's only
    // SQL outside store/: it fabricates data, it is not product code).
    let started = Instant::now();
    let per_day = rows / DAYS;
    for day in 0..DAYS {
        sqlx::query(
            "INSERT INTO blocked_events (ts, service, origin, method, reason, would_block, agent_id, count)
             SELECT date_trunc('day', now()) - make_interval(days => $1::int) + (i % 86400) * interval '1 second',
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
    sqlx::query("VACUUM ANALYZE blocked_events")
        .execute(store.pool())
        .await?;
    println!("VACUUM ANALYZE in {:.1} s", started.elapsed().as_secs_f64());

    let now = Utc::now();
    let service = |days: i64| BlockedFilter {
        service: Some("svc-42".into()),
        since: Some(now - Duration::days(days)),
        ..BlockedFilter::default()
    };
    let queries = [
        (
            "top origins, one service, 24 h",
            BlockedQuery {
                filter: service(1),
                group_by: Some(GroupBy::Origin),
                sort: None,
                order: None,
                after: None,
                limit: 20,
            },
        ),
        (
            "time series (hourly), one service, 7 days",
            BlockedQuery {
                filter: service(7),
                group_by: Some(GroupBy::Hour),
                sort: None,
                order: None,
                after: None,
                limit: 10_000,
            },
        ),
        (
            "time series (daily), one service, 30 days",
            BlockedQuery {
                filter: service(31),
                group_by: Some(GroupBy::Day),
                sort: None,
                order: None,
                after: None,
                limit: 10_000,
            },
        ),
        (
            "top services, all, 24 h",
            BlockedQuery {
                filter: BlockedFilter {
                    since: Some(now - Duration::days(1)),
                    ..BlockedFilter::default()
                },
                group_by: Some(GroupBy::Service),
                sort: None,
                order: None,
                after: None,
                limit: 20,
            },
        ),
        (
            "one origin, all services, 7 days, by day",
            BlockedQuery {
                filter: BlockedFilter {
                    origin: Some("https://o42.example.com".into()),
                    since: Some(now - Duration::days(7)),
                    ..BlockedFilter::default()
                },
                group_by: Some(GroupBy::Day),
                sort: None,
                order: None,
                after: None,
                limit: 10_000,
            },
        ),
        (
            "CSV export page: 10,000 newest rows, one service",
            BlockedQuery {
                filter: service(31),
                group_by: None,
                sort: None,
                order: None,
                after: None,
                limit: 10_000,
            },
        ),
        (
            "raw rows, all services, newest 100",
            BlockedQuery {
                filter: BlockedFilter::default(),
                group_by: None,
                sort: None,
                order: None,
                after: None,
                limit: 100,
            },
        ),
    ];
    for (name, query) in &queries {
        let mut times = Vec::new();
        let mut returned = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let page = store.query_blocked(query).await?;
            // The CSV/JSON encoding is part of what a client waits for.
            let bytes = serde_json::to_vec(&page)?.len();
            times.push(t.elapsed());
            returned = match &page {
                BlockedPage::Rows(p) => p.rows.len(),
                BlockedPage::Groups(p) => p.rows.len(),
            };
            let _ = bytes;
        }
        times.sort();
        println!(
            "{name}: median {:.1} ms, min {:.1} ms, max {:.1} ms ({returned} rows)",
            times[RUNS / 2].as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[RUNS - 1].as_secs_f64() * 1e3
        );
        for line in store.explain_blocked(query).await? {
            println!("    {line}");
        }
    }

    // Ingest through the real path (idempotency row + UNNEST insert, one
    // transaction per batch), batches of 1,000 rows as a busy agent sends:
    // first one sender, then four at once (several agents reporting).
    for senders in [1usize, 4] {
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
                            origin: format!("https://n{}.example.com", (b * per_batch + i) % 9973),
                            method: "GET".into(),
                            reason: "origin_not_allowed".into(),
                            would_block: false,
                            count: 1,
                        })
                        .collect();
                    store
                        .ingest_blocked_batch(&IngestBatch {
                            batch_id: format!("bench-{senders}-{s}:{b}"),
                            agent_id: format!("bench-{senders}-{s}"),
                            ts: Utc::now(),
                            counts,
                            dropped_events: 0,
                            dropped_service: "svc-0".into(),
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
        println!(
            "ingest, {senders} sender(s): {} batches x {per_batch} rows in {:.2} s = {:.0} rows/s (= events/s at one event per row)",
            senders * batches_each,
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64(),
        );
    }
    Ok(())
}
