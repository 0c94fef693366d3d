//! The hourly and daily rollups against real Postgres: every grouping and
//! filter answered from them equals the raw-table answer (partial-hour
//! edges, duplicates, dropped events, pagination, retention), and the
//! rollup path reads indexes, not whole populated partitions.

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, DurationRound, Utc};
use corsair_control_plane::store::Store;
use corsair_control_plane::store::blocked::{
    BlockedCount, BlockedFilter, BlockedPage, BlockedQuery, GroupBy, IngestBatch, Ingested, Source,
};
use corsair_control_plane::testing::TestDb;

fn count(service: &str, origin: &str, reason: &str, would_block: bool, n: i64) -> BlockedCount {
    BlockedCount {
        service: service.into(),
        origin: origin.into(),
        method: if n % 2 == 0 { "GET" } else { "PUT" }.into(),
        reason: reason.into(),
        would_block,
        count: n,
    }
}

fn batch(agent: &str, seq: u32, ts: DateTime<Utc>, counts: Vec<BlockedCount>) -> IngestBatch {
    IngestBatch {
        batch_id: format!("{agent}:{seq}"),
        agent_id: agent.into(),
        ts,
        counts,
        dropped_events: i64::from(seq % 3),
        dropped_service: "orders".into(),
        uses: Vec::new(),
        ts_end: Default::default(),
    }
}

/// Three days of batches from three agents at uneven minutes, some sent
/// twice; returns the hour they start from.
async fn seed(store: &Store) -> Result<DateTime<Utc>> {
    let start = (Utc::now() - Duration::days(3)).duration_trunc(Duration::hours(1))?;
    let services = ["orders", "billing", "search"];
    let origins = [
        "https://a.test",
        "https://b.test",
        "https://c.example",
        "http://localhost:3000",
    ];
    let reasons = ["origin_not_allowed", "method_not_allowed"];
    let mut seq = 0;
    // Every 97 minutes for 3 days: buckets start mid-hour, mid-day.
    for step in 0..(3 * 24 * 60 / 97) {
        let ts = start + Duration::minutes(97 * step) + Duration::seconds(step % 59);
        for (a, agent) in ["gw-1", "gw-2", "gw-3"].iter().enumerate() {
            if (step + a as i64) % 4 == 3 {
                continue;
            }
            seq += 1;
            let counts = (0..6)
                .map(|i| {
                    let k = (step as usize + i + a) % 12;
                    count(
                        services[k % 3],
                        origins[(k / 3) % 4],
                        reasons[k % 2],
                        k.is_multiple_of(5),
                        1 + (k as i64 * 7 + step) % 9,
                    )
                })
                .collect();
            let b = batch(agent, seq, ts, counts);
            assert!(matches!(
                store.ingest_blocked_batch(&b).await?,
                Ingested::Stored { .. }
            ));
            if seq % 5 == 0 {
                assert_eq!(store.ingest_blocked_batch(&b).await?, Ingested::Duplicate);
            }
        }
    }
    Ok(start)
}

/// Every page of `query` from `source`, following the cursors.
async fn all_pages(
    store: &Store,
    query: &BlockedQuery,
    source: Source,
) -> Result<serde_json::Value> {
    let mut query = query.clone();
    let mut pages = Vec::new();
    loop {
        let page = store.query_blocked_from(&query, source).await?;
        let BlockedPage::Groups(groups) = &page else {
            anyhow::bail!("expected groups");
        };
        let next = groups.next.clone();
        pages.push(serde_json::to_value(&page)?);
        match next {
            Some(next) => query.after = Some(next),
            None => return Ok(serde_json::Value::Array(pages)),
        }
    }
}

fn filters(start: DateTime<Utc>) -> Vec<BlockedFilter> {
    let t = |minutes: i64| Some(start + Duration::minutes(minutes));
    let base = BlockedFilter::default();
    vec![
        base.clone(),
        // Ragged at both ends, spanning whole days.
        BlockedFilter {
            since: t(17),
            until: t(2 * 24 * 60 + 41),
            ..base.clone()
        },
        // Aligned to hours; open-ended.
        BlockedFilter {
            since: t(5 * 60),
            ..base.clone()
        },
        BlockedFilter {
            until: t(30 * 60 + 3),
            ..base.clone()
        },
        // Within one hour, and across one boundary with no whole hour.
        BlockedFilter {
            since: t(61),
            until: t(110),
            ..base.clone()
        },
        BlockedFilter {
            since: t(100),
            until: t(150),
            ..base.clone()
        },
        BlockedFilter {
            service: Some("orders".into()),
            since: t(33),
            ..base.clone()
        },
        BlockedFilter {
            origin: Some("https://b.test".into()),
            until: t(50 * 60 + 7),
            ..base.clone()
        },
        BlockedFilter {
            origin: Some("EXAMPLE".into()),
            origin_substring: true,
            since: t(13 * 60 + 59),
            ..base.clone()
        },
        BlockedFilter {
            agent: Some("gw-2".into()),
            since: t(7),
            until: t(3 * 24 * 60),
            ..base.clone()
        },
        BlockedFilter {
            reason: Some("telemetry_dropped".into()),
            ..base.clone()
        },
        BlockedFilter {
            service: Some("billing".into()),
            reason: Some("method_not_allowed".into()),
            since: t(24 * 60 - 1),
            until: t(48 * 60 + 1),
            ..base
        },
    ]
}

#[tokio::test]
async fn rollup_answers_equal_raw_answers() -> Result<()> {
    let db = TestDb::new().await?;
    let start = seed(&db.store).await?;
    let groups = [
        GroupBy::Origin,
        GroupBy::Service,
        GroupBy::Agent,
        GroupBy::Reason,
        GroupBy::Minute,
        GroupBy::Hour,
        GroupBy::Day,
    ];
    let mut compared = 0;
    for filter in filters(start) {
        for group in groups {
            // Small pages: the cursors run over the merged parts too.
            let query = BlockedQuery {
                filter: filter.clone(),
                group_by: Some(group),
                sort: None,
                order: None,
                after: None,
                limit: 3,
            };
            let rolled = all_pages(&db.store, &query, Source::Auto).await?;
            let raw = all_pages(&db.store, &query, Source::Raw).await?;
            assert_eq!(rolled, raw, "{group:?} over {filter:?}");
            compared += 1;
        }
    }
    assert_eq!(compared, 12 * 7);

    // The comparison is not vacuous: the whole range has events, several
    // agents per group, and the plan really reads the rollups.
    let whole = BlockedQuery {
        filter: BlockedFilter::default(),
        group_by: Some(GroupBy::Service),
        sort: None,
        order: None,
        after: None,
        limit: 100,
    };
    let BlockedPage::Groups(page) = db.store.query_blocked(&whole).await? else {
        anyhow::bail!("expected groups");
    };
    assert_eq!(page.rows.len(), 3, "{:?}", page.rows);
    assert!(
        page.rows
            .iter()
            .all(|r| r.agents.len() == 3 && r.count > 100)
    );
    assert!(page.rows.iter().any(|r| r.would_block > 0));
    let ragged = BlockedQuery {
        filter: filters(start)[1].clone(),
        ..whole
    };
    let plan = db.store.explain_blocked(&ragged).await?.join("\n");
    for table in ["blocked_daily_", "blocked_hourly_", "blocked_events_"] {
        assert!(plan.contains(table), "{table} missing from\n{plan}");
    }
    Ok(())
}

#[tokio::test]
async fn retention_drops_rollup_partitions_with_the_raw_ones() -> Result<()> {
    let db = TestDb::new().await?;
    let now = Utc::now();
    let old_ts = now - Duration::days(40);
    for (seq, ts) in [(1, old_ts), (2, now - Duration::hours(2))] {
        let b = batch(
            "gw-1",
            seq,
            ts,
            vec![count(
                "orders",
                "https://a.test",
                "origin_not_allowed",
                false,
                4,
            )],
        );
        db.store.ingest_blocked_batch(&b).await?;
    }
    let day = old_ts.format("%Y%m%d").to_string();
    let rollups = db.store.blocked_rollup_partitions().await?;
    assert!(
        rollups.contains(&format!("blocked_hourly_{day}")),
        "{rollups:?}"
    );
    assert!(
        rollups.contains(&format!("blocked_daily_{day}")),
        "{rollups:?}"
    );

    db.store
        .maintain_blocked_partitions(now, 3, 30)
        .await?
        .context("no other replica holds the lock")?;
    let rollups = db.store.blocked_rollup_partitions().await?;
    assert!(!rollups.iter().any(|p| p.ends_with(&day)), "{rollups:?}");
    let ahead = (now + Duration::days(3)).format("%Y%m%d").to_string();
    assert!(
        rollups.contains(&format!("blocked_hourly_{ahead}")),
        "{rollups:?}"
    );
    assert!(
        rollups.contains(&format!("blocked_daily_{ahead}")),
        "{rollups:?}"
    );

    // Only the recent batch is left, in both answers.
    let query = BlockedQuery {
        filter: BlockedFilter::default(),
        group_by: Some(GroupBy::Origin),
        sort: None,
        order: None,
        after: None,
        limit: 10,
    };
    let rolled = all_pages(&db.store, &query, Source::Auto).await?;
    assert_eq!(rolled, all_pages(&db.store, &query, Source::Raw).await?);
    assert_eq!(rolled[0]["rows"][0]["count"], 4, "{rolled}");
    Ok(())
}

#[tokio::test]
async fn rollup_path_reads_indexes_not_populated_partitions() -> Result<()> {
    let db = TestDb::new().await?;
    let today = Utc::now().duration_trunc(Duration::days(1))?;
    // 200 services x 20 origins at two times of day, over four days: enough
    // rows that reading a whole partition would be the wrong plan.
    let mut seq = 0;
    let mut days = Vec::new();
    for day in 1..=4 {
        days.push((today - Duration::days(day)).format("%Y%m%d").to_string());
        for hour in [3, 15] {
            seq += 1;
            let counts = (0..4000)
                .map(|i| {
                    let origin = format!("https://o{}.test", i / 200);
                    count(
                        &format!("svc-{}", i % 200),
                        &origin,
                        "origin_not_allowed",
                        false,
                        1,
                    )
                })
                .collect();
            let ts = today - Duration::days(day) + Duration::hours(hour) + Duration::minutes(7);
            db.store
                .ingest_blocked_batch(&batch("gw-1", seq, ts, counts))
                .await?;
        }
    }
    db.store.analyze_blocked().await?;
    let since = today - Duration::days(4) + Duration::minutes(30);
    let shapes = [
        (
            BlockedFilter {
                service: Some("svc-42".into()),
                ..BlockedFilter::default()
            },
            GroupBy::Origin,
        ),
        (
            BlockedFilter {
                service: Some("svc-42".into()),
                ..BlockedFilter::default()
            },
            GroupBy::Day,
        ),
        (
            BlockedFilter {
                service: Some("svc-42".into()),
                ..BlockedFilter::default()
            },
            GroupBy::Hour,
        ),
        (
            BlockedFilter {
                origin: Some("https://o7.test".into()),
                ..BlockedFilter::default()
            },
            GroupBy::Service,
        ),
    ];
    for (filter, group) in shapes {
        let query = BlockedQuery {
            filter: BlockedFilter {
                since: Some(since),
                ..filter
            },
            group_by: Some(group),
            sort: None,
            order: None,
            after: None,
            limit: 100,
        };
        let plan = db.store.explain_blocked(&query).await?;
        let text = plan.join("\n");
        assert!(
            text.contains("blocked_hourly_") || text.contains("blocked_daily_"),
            "{text}"
        );
        assert!(text.contains("Index"), "{text}");
        for line in &plan {
            let populated = days.iter().any(|d| line.contains(d.as_str()));
            assert!(
                !(line.contains("Seq Scan") && populated),
                "{group:?}: {line}\n{text}"
            );
        }
    }
    Ok(())
}
