//! Telemetry ingestion and queries against real Postgres: idempotency,
//! partitions and retention, keyset pagination, and the gRPC service's
//! authentication and scope checks.

mod e2e_support;

use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use corsair_control_plane::auth::Role;
use corsair_control_plane::store::blocked::{
    BlockedCount, BlockedFilter, BlockedPage, BlockedQuery, GroupBy, IngestBatch, Ingested,
};
use corsair_control_plane::testing::TestDb;
use corsair_proto::v1::telemetry_client::TelemetryClient;
use corsair_proto::v1::{BlockedCount as WireCount, ReportBatch};
use e2e_support::ControlPlane;
use serde_json::json;
use tonic::Code;

fn count(service: &str, origin: &str, n: i64) -> BlockedCount {
    BlockedCount {
        service: service.into(),
        origin: origin.into(),
        method: "GET".into(),
        reason: "origin_not_allowed".into(),
        would_block: false,
        count: n,
    }
}

fn batch(id: &str, counts: Vec<BlockedCount>) -> IngestBatch {
    IngestBatch {
        batch_id: format!("agent-1:{id}"),
        agent_id: "agent-1".into(),
        ts: Utc::now(),
        counts,
        dropped_events: 0,
        dropped_service: "orders".into(),
        uses: Vec::new(),
        ts_end: Utc::now(),
    }
}

fn by_origin() -> BlockedQuery {
    BlockedQuery {
        filter: BlockedFilter::default(),
        group_by: Some(GroupBy::Origin),
        sort: None,
        order: None,
        after: None,
        limit: 100,
    }
}

#[tokio::test]
async fn a_batch_is_counted_once_however_often_it_is_sent() -> Result<()> {
    let db = TestDb::new().await?;
    let b = batch(
        "1",
        vec![
            count("orders", "https://a.test", 3),
            count("orders", "https://b.test", 1),
        ],
    );
    assert_eq!(
        db.store.ingest_blocked_batch(&b).await?,
        Ingested::Stored { events: 4 }
    );
    assert_eq!(
        db.store.ingest_blocked_batch(&b).await?,
        Ingested::Duplicate
    );
    let BlockedPage::Groups(page) = db.store.query_blocked(&by_origin()).await? else {
        anyhow::bail!("expected groups");
    };
    let totals: Vec<(String, i64)> = page.rows.iter().map(|r| (r.key.clone(), r.count)).collect();
    assert_eq!(
        totals,
        vec![
            ("https://a.test".to_string(), 3),
            ("https://b.test".to_string(), 1)
        ]
    );
    Ok(())
}

#[tokio::test]
async fn copy_stores_text_with_tabs_newlines_and_backslashes_verbatim() -> Result<()> {
    let db = TestDb::new().await?;
    let awkward = "https://a\tb\\c\nd\re\\N.test";
    let mut c = count("orders", awkward, 2);
    c.method = "G\\ET\t".into();
    let mut b = batch("esc", vec![c, count("orders", "\\N", 1)]);
    b.agent_id = "agent-1\\x".into();
    b.batch_id = "agent-1\\x:esc".into();
    db.store.ingest_blocked_batch(&b).await?;
    let query = BlockedQuery {
        group_by: None,
        ..by_origin()
    };
    let BlockedPage::Rows(page) = db.store.query_blocked(&query).await? else {
        anyhow::bail!("expected rows");
    };
    let mut stored: Vec<(String, String, String, i64)> = page
        .rows
        .iter()
        .map(|r| {
            (
                r.origin.clone(),
                r.method.clone(),
                r.agent_id.clone(),
                r.count,
            )
        })
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        vec![
            ("\\N".into(), "GET".into(), "agent-1\\x".into(), 1),
            (awkward.into(), "G\\ET\t".into(), "agent-1\\x".into(), 2),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn groups_page_through_with_keyset_cursors() -> Result<()> {
    let db = TestDb::new().await?;
    let counts = (1..=7)
        .map(|i| count("orders", &format!("https://o{i}.test"), i % 3 + 1))
        .collect();
    db.store.ingest_blocked_batch(&batch("1", counts)).await?;
    let mut query = BlockedQuery {
        limit: 2,
        ..by_origin()
    };
    let mut seen = Vec::new();
    loop {
        let BlockedPage::Groups(page) = db.store.query_blocked(&query).await? else {
            anyhow::bail!("expected groups");
        };
        seen.extend(page.rows.iter().map(|r| (r.count, r.key.clone())));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(seen, sorted, "count descending, key ascending, no repeats");
    Ok(())
}

#[tokio::test]
async fn retention_drops_old_partitions_and_creates_ahead() -> Result<()> {
    let db = TestDb::new().await?;
    let now = Utc::now();
    // An old batch (its partition is created on demand).
    let mut old = batch("old", vec![count("orders", "https://old.test", 1)]);
    old.ts = now - Duration::days(40);
    db.store.ingest_blocked_batch(&old).await?;
    let old_name = format!("blocked_events_{}", old.ts.format("%Y%m%d"));
    assert!(db.store.blocked_partitions().await?.contains(&old_name));

    let done = db.store.maintain_blocked_partitions(now, 3, 30).await?;
    let (_, dropped) = done.context("no other replica holds the lock")?;
    assert!(dropped >= 1);
    let partitions = db.store.blocked_partitions().await?;
    assert!(!partitions.contains(&old_name), "{partitions:?}");
    let ahead = format!(
        "blocked_events_{}",
        (now + Duration::days(3)).format("%Y%m%d")
    );
    assert!(partitions.contains(&ahead), "{partitions:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_requires_an_agent_token_scoped_to_the_reported_services() -> Result<()> {
    let cp = ControlPlane::start().await?;
    let admin = cp.login_as("admin@example.com", Role::Admin).await?;
    admin.post("/services", json!({"name": "orders"})).await?;
    admin.post("/services", json!({"name": "billing"})).await?;
    let token = admin.agent_token("gw", &["orders"]).await?;
    let mut client = TelemetryClient::connect(cp.grpc_url()).await?;
    let report = |service: &str, token: Option<&str>| {
        let mut request = tonic::Request::new(ReportBatch {
            batch_id: format!("agent-x:{service}"),
            agent_id: "agent-x".into(),
            sequence: 0,
            interval_start_unix_ms: Utc::now().timestamp_millis(),
            interval_end_unix_ms: Utc::now().timestamp_millis(),
            counts: vec![WireCount {
                service: service.into(),
                origin: "https://a.test".into(),
                method: "GET".into(),
                reason: "origin_not_allowed".into(),
                would_block: false,
                count: 2,
            }],
            dropped_events: 0,
            dropped_service: String::new(),
            allowed: Vec::new(),
        });
        if let Some(token) = token
            && let Ok(value) = format!("Bearer {token}").parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    };
    let err = client
        .report(report("orders", None))
        .await
        .err()
        .context("accepted without a token")?;
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut nul = report("orders", Some(&token));
    nul.get_mut().counts[0].origin = "https://a\0.test".into();
    let err = client
        .report(nul)
        .await
        .err()
        .context("accepted a NUL byte")?;
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = client
        .report(report("billing", Some(&token)))
        .await
        .err()
        .context("accepted out of scope")?;
    assert_eq!(err.code(), Code::PermissionDenied);
    let ack = client
        .report(report("orders", Some(&token)))
        .await?
        .into_inner();
    assert!(!ack.duplicate);
    let ack = client
        .report(report("orders", Some(&token)))
        .await?
        .into_inner();
    assert!(
        ack.duplicate,
        "a resent batch is acknowledged as a duplicate"
    );
    let page = admin.get("/blocked?group_by=service").await?;
    assert_eq!(
        page["rows"],
        json!([{
            "key": "orders", "count": 2, "would_block": 0, "agents": ["agent-x"], "services": ["orders"],
            "first_seen": page["rows"][0]["first_seen"], "last_seen": page["rows"][0]["last_seen"],
        }])
    );
    // Bad input is a 4xx, never a 500.
    let r = admin
        .http
        .get(cp.api("/blocked?group_by=color"))
        .bearer_auth(&admin.token)
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let r = admin
        .http
        .get(cp.api("/blocked?limit=0"))
        .bearer_auth(&admin.token)
        .send()
        .await?;
    assert_eq!(r.status(), 422);
    let r = admin
        .http
        .get(cp.api("/blocked?group_by=origin&after=nonsense"))
        .bearer_auth(&admin.token)
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let r = reqwest::get(cp.api("/blocked")).await?;
    assert_eq!(r.status(), 401);
    Ok(())
}
