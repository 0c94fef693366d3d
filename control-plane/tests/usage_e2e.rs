//! Origin usage end to end: a real agent sidecar grants cross-origin
//! requests from an exact and a wildcard pattern, counts them per pattern,
//! and uploads the counts over real gRPC in its telemetry batches; the
//! service's origins listing shows exactly the requests sent — through a
//! control-plane outage, an agent restart with batches queued, and a
//! policy update while requests are counted.

mod e2e_support;

use anyhow::{Context, Result};
use corsair_agent::control_plane::ControlPlaneConfig;
use corsair_agent::proxy::sidecar::SidecarConfig;
use corsair_agent::report::ReportConfig;
use corsair_control_plane::auth::Role;
use e2e_support::{Client, ControlPlane, Upstream, eventually};
use serde_json::json;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

const APP: &str = "https://app.test";
const WILDCARD: &str = "https://*.shop.test";
const EVIL: &str = "https://evil.test";

async fn start_agent(
    cp: &ControlPlane,
    token: &str,
    upstream: &str,
    cache: PathBuf,
) -> Result<e2e_support::Agent> {
    let config = SidecarConfig {
        control_plane: ControlPlaneConfig::new(cp.grpc_url(), token),
        service: "orders".to_string(),
        upstream: upstream.to_string(),
        cache_dir: cache,
        agent_name: "usage-agent".to_string(),
        proxy: Default::default(),
    };
    let report = ReportConfig {
        interval: Duration::from_millis(200),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
        request_timeout: Duration::from_secs(2),
        ..ReportConfig::default()
    };
    e2e_support::Agent::start_ready(config, report).await
}

/// `n` actual GETs from `origin`, each checked to be granted (or, for a
/// refused origin, not).
async fn get(agent: &e2e_support::Agent, origin: &str, n: usize) -> Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..n {
        let r = http
            .get(format!("{}/api/hello", agent.url))
            .header("origin", origin)
            .send()
            .await?;
        let granted = r.headers().get("access-control-allow-origin").is_some();
        anyhow::ensure!(
            granted == (origin != EVIL),
            "{origin}: granted {granted}, status {}",
            r.status()
        );
    }
    Ok(())
}

/// `n` granted preflights for PUT from `origin`.
async fn preflight(agent: &e2e_support::Agent, origin: &str, n: usize) -> Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..n {
        let r = http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/items/1", agent.url),
            )
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .send()
            .await?;
        anyhow::ensure!(r.status() == 204, "preflight from {origin}: {}", r.status());
    }
    Ok(())
}

async fn queue_depth(agent: &e2e_support::Agent) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", agent.admin_url))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.split([' ', '{']).next() == Some("corsair_agent_telemetry_queue_depth"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits until the listing's 30-day counts are exactly `expected` (every
/// other origin at 0), each counted one with a `last_allowed_at`.
async fn await_usage(client: &Client, expected: &[(&str, i64)]) -> Result<()> {
    let expected: BTreeMap<String, i64> = expected
        .iter()
        .map(|(o, c)| ((*o).to_string(), *c))
        .collect();
    let last = RefCell::new(BTreeMap::new());
    let result = eventually("exact per-pattern allowed counts", || async {
        let list = client.get("/services/orders/origins").await.ok()?;
        let mut got = BTreeMap::new();
        for o in list.as_array()? {
            let count = o["allowed_30d"].as_i64()?;
            if count > 0 {
                o["last_allowed_at"].as_str()?;
                got.insert(o["pattern"].as_str()?.to_string(), count);
            }
        }
        *last.borrow_mut() = got.clone();
        (got == expected).then_some(())
    })
    .await;
    result.with_context(|| format!("expected {expected:?}, last seen {:?}", last.borrow()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_counts_are_exact_through_outages_restarts_and_policy_updates() -> Result<()> {
    let mut cp = ControlPlane::start().await?;
    let upstream = Upstream::start().await?;
    let admin = cp.login_as("admin@example.com", Role::Admin).await?;
    admin
        .post(
            "/services",
            json!({"name": "orders", "allow_methods": ["PUT"]}),
        )
        .await?;
    for pattern in [APP, WILDCARD] {
        let origin = admin
            .post(
                "/services/orders/origins",
                json!({"pattern": pattern, "reason": "test"}),
            )
            .await?;
        let id = origin["id"].as_i64().context("id")?;
        admin
            .post(&format!("/origins/{id}/approve"), json!({}))
            .await?;
    }
    let token = admin.agent_token("gw", &["orders"]).await?;
    let cache = tempfile::tempdir()?;
    let mut agent = start_agent(&cp, &token, &upstream.url, cache.path().to_path_buf()).await?;

    // An exact origin, two origins under the wildcard (counted together,
    // under the pattern), preflights, and a refused origin (not counted).
    get(&agent, APP, 3).await?;
    get(&agent, "https://a.shop.test", 2).await?;
    get(&agent, "https://b.c.shop.test", 1).await?;
    preflight(&agent, APP, 2).await?;
    get(&agent, EVIL, 2).await?;
    await_usage(&admin, &[(APP, 5), (WILDCARD, 3)]).await?;

    // Control plane down while traffic continues: batches queue up.
    cp.stop().await?;
    get(&agent, APP, 4).await?;
    get(&agent, "https://x.shop.test", 1).await?;
    eventually("a batch queued while the control plane is down", || async {
        (queue_depth(&agent).await? >= 1.0).then_some(())
    })
    .await?;
    cp.restart().await?;
    await_usage(&admin, &[(APP, 9), (WILDCARD, 4)]).await?;

    // Down again; the agent restarts with batches on disk and counts in
    // its last, partial interval.
    cp.stop().await?;
    get(&agent, APP, 2).await?;
    eventually("a batch queued before the agent restarts", || async {
        (queue_depth(&agent).await? >= 1.0).then_some(())
    })
    .await?;
    get(&agent, "https://y.shop.test", 3).await?;
    agent.stop().await?;
    cp.restart().await?;
    let mut agent = start_agent(&cp, &token, &upstream.url, cache.path().to_path_buf()).await?;
    await_usage(&admin, &[(APP, 11), (WILDCARD, 7)]).await?;
    eventually("the agent's queue to drain", || async {
        (queue_depth(&agent).await? == 0.0).then_some(())
    })
    .await?;

    // A policy update while requests are counted: the replaced policy's
    // counts are drained too.
    get(&agent, APP, 1).await?;
    let extra = admin
        .post(
            "/services/orders/origins",
            json!({"pattern": "https://new.test", "reason": "test"}),
        )
        .await?;
    let id = extra["id"].as_i64().context("id")?;
    admin
        .post(&format!("/origins/{id}/approve"), json!({}))
        .await?;
    eventually("the agent to grant the new origin", || async {
        reqwest::Client::new()
            .get(format!("{}/api/hello", agent.url))
            .header("origin", "https://new.test")
            .send()
            .await
            .ok()?
            .headers()
            .get("access-control-allow-origin")
            .map(|_| ())
    })
    .await?;
    get(&agent, APP, 1).await?;
    agent.stop().await?;
    // Drained, and still exact: nothing counted twice. The new origin's
    // count is 1 (the request that saw it granted).
    await_usage(&admin, &[(APP, 13), (WILDCARD, 7), ("https://new.test", 1)]).await?;

    // Blocked counts are apart: the refused origin (and new.test, before
    // its approval reached the agent), never a granted one.
    let blocked = admin.get("/blocked?group_by=origin").await?;
    let rows = blocked["rows"].as_array().context("rows")?;
    let keys: Vec<&str> = rows.iter().filter_map(|r| r["key"].as_str()).collect();
    assert!(
        keys.iter().all(|k| [EVIL, "https://new.test"].contains(k)),
        "{blocked}"
    );
    let evil = rows
        .iter()
        .find(|r| r["key"] == EVIL)
        .context("evil.test")?;
    assert_eq!(evil["count"], 2, "{blocked}");
    Ok(())
}
