//! Blocked-request telemetry end to end: a real agent sidecar blocks
//! requests, uploads batches over real gRPC, and the control plane's
//! `/api/v1/blocked` shows exact counts — through a control-plane outage,
//! an agent restart with batches queued, and a queue overflow.

mod e2e_support;

use anyhow::{Context, Result};
use corsair_agent::control_plane::ControlPlaneConfig;
use corsair_agent::proxy::sidecar::SidecarConfig;
use corsair_agent::report::ReportConfig;
use corsair_control_plane::auth::Role;
use e2e_support::{Client, ControlPlane, Upstream, eventually};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

const EVIL: &str = "https://evil.test";
const OTHER: &str = "https://other.test";
const INTERVAL: Duration = Duration::from_millis(200);

/// A real agent sidecar with short telemetry intervals.
struct Agent(e2e_support::Agent);

impl Agent {
    async fn start(
        cp: &ControlPlane,
        token: &str,
        service: &str,
        upstream: &str,
        cache: PathBuf,
        queue: usize,
    ) -> Result<Self> {
        let config = SidecarConfig {
            control_plane: ControlPlaneConfig::new(cp.grpc_url(), token),
            service: service.to_string(),
            upstream: upstream.to_string(),
            cache_dir: cache,
            agent_name: "telemetry-agent".to_string(),
            proxy: Default::default(),
        };
        let report = ReportConfig {
            interval: INTERVAL,
            max_queue_batches: queue,
            retry_base: Duration::from_millis(50),
            retry_max: Duration::from_millis(400),
            request_timeout: Duration::from_secs(2),
            ..ReportConfig::default()
        };
        Ok(Self(e2e_support::Agent::start_ready(config, report).await?))
    }

    async fn stop(&mut self) -> Result<()> {
        self.0.stop().await
    }

    /// `n` actual GETs from `origin`; returns the statuses.
    async fn get(&self, origin: &str, n: usize) -> Result<Vec<reqwest::Response>> {
        let http = reqwest::Client::new();
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(
                http.get(format!("{}/api/hello", self.0.url))
                    .header("origin", origin)
                    .send()
                    .await?,
            );
        }
        Ok(out)
    }

    /// `n` preflights for PUT from `origin`.
    async fn preflight(&self, origin: &str, n: usize) -> Result<()> {
        let http = reqwest::Client::new();
        for _ in 0..n {
            let r = http
                .request(
                    reqwest::Method::OPTIONS,
                    format!("{}/api/items/1", self.0.url),
                )
                .header("origin", origin)
                .header("access-control-request-method", "PUT")
                .send()
                .await?;
            anyhow::ensure!(
                r.status() == 403,
                "preflight from {origin} answered {}",
                r.status()
            );
        }
        Ok(())
    }

    /// One value from the agent's `/metrics`.
    async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.0.admin_url))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.split([' ', '{']).next() == Some(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

/// `GET /blocked?group_by=<group>&<extra>` as key → (count, would_block).
async fn grouped(
    client: &Client,
    group: &str,
    extra: &str,
) -> Result<BTreeMap<String, (i64, i64)>> {
    let page = client
        .get(&format!("/blocked?group_by={group}{extra}"))
        .await?;
    let rows = page["rows"].as_array().context("rows")?;
    Ok(rows
        .iter()
        .map(|r| {
            let key = r["key"].as_str().unwrap_or_default().to_string();
            (
                key,
                (
                    r["count"].as_i64().unwrap_or(-1),
                    r["would_block"].as_i64().unwrap_or(-1),
                ),
            )
        })
        .collect())
}

/// Waits until the per-origin counts are exactly `expected`.
async fn await_origins(client: &Client, expected: &[(&str, i64)]) -> Result<()> {
    let expected: BTreeMap<String, i64> = expected
        .iter()
        .map(|(o, c)| ((*o).to_string(), *c))
        .collect();
    let last = RefCell::new(BTreeMap::new());
    let result = eventually("exact per-origin counts", || async {
        let got: BTreeMap<String, i64> = grouped(client, "origin", "")
            .await
            .ok()?
            .into_iter()
            .map(|(k, (c, _))| (k, c))
            .collect();
        *last.borrow_mut() = got.clone();
        (got == expected).then_some(())
    })
    .await;
    result.with_context(|| format!("expected {expected:?}, last seen {:?}", last.borrow()))
}

async fn setup(cp: &ControlPlane, service: Value) -> Result<(Client, String)> {
    let admin = cp.login_as("admin@example.com", Role::Admin).await?;
    let name = service["name"].as_str().unwrap_or_default().to_string();
    admin.post("/services", service).await?;
    let token = admin.agent_token("gw", &[&name]).await?;
    Ok((admin, token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_counts_are_exact_through_outages_and_restarts() -> Result<()> {
    let mut cp = ControlPlane::start().await?;
    let upstream = Upstream::start().await?;
    let (admin, token) = setup(&cp, json!({"name": "orders", "allow_methods": ["PUT"]})).await?;
    let cache = tempfile::tempdir()?;
    let mut agent = Agent::start(
        &cp,
        &token,
        "orders",
        &upstream.url,
        cache.path().to_path_buf(),
        100,
    )
    .await?;

    // Two origins, actual requests and preflights.
    for r in agent.get(EVIL, 3).await? {
        assert_eq!(
            r.status(),
            200,
            "actual requests are forwarded, without grants"
        );
        assert!(r.headers().get("access-control-allow-origin").is_none());
    }
    agent.preflight(OTHER, 2).await?;
    await_origins(&admin, &[(EVIL, 3), (OTHER, 2)]).await?;
    let reasons = grouped(&admin, "reason", "").await?;
    assert_eq!(
        reasons.get("origin_not_allowed"),
        Some(&(5, 0)),
        "{reasons:?}"
    );

    // Control plane down while the agent keeps blocking: batches queue up.
    cp.stop().await?;
    agent.get(EVIL, 4).await?;
    agent.preflight(OTHER, 1).await?;
    eventually("a batch queued while the control plane is down", || async {
        (agent.metric("corsair_agent_telemetry_queue_depth").await? >= 1.0).then_some(())
    })
    .await?;
    cp.restart().await?;
    await_origins(&admin, &[(EVIL, 7), (OTHER, 3)]).await?;

    // The agent restarts with batches queued (control plane down again):
    // they are on disk and sent by the next run.
    cp.stop().await?;
    agent.get(EVIL, 2).await?;
    eventually("a batch queued before the agent restarts", || async {
        (agent.metric("corsair_agent_telemetry_queue_depth").await? >= 1.0).then_some(())
    })
    .await?;
    agent.get(OTHER, 1).await?; // in the partial last interval: flushed at shutdown
    agent.stop().await?;
    cp.restart().await?;
    let agent = Agent::start(
        &cp,
        &token,
        "orders",
        &upstream.url,
        cache.path().to_path_buf(),
        100,
    )
    .await?;
    await_origins(&admin, &[(EVIL, 9), (OTHER, 4)]).await?;
    eventually("the agent's queue to drain", || async {
        (agent.metric("corsair_agent_telemetry_queue_depth").await? == 0.0).then_some(())
    })
    .await?;
    // Drained, and still exact: nothing was counted twice.
    await_origins(&admin, &[(EVIL, 9), (OTHER, 4)]).await?;

    // The other views agree.
    let by_agent = grouped(&admin, "agent", "").await?;
    assert_eq!(
        by_agent.values().map(|(c, _)| c).sum::<i64>(),
        13,
        "{by_agent:?}"
    );
    let by_minute = grouped(&admin, "minute", "").await?;
    assert_eq!(
        by_minute.values().map(|(c, _)| c).sum::<i64>(),
        13,
        "{by_minute:?}"
    );
    let substring = grouped(&admin, "origin", "&origin=EVIL&origin_match=substring").await?;
    assert_eq!(substring.keys().collect::<Vec<_>>(), vec![EVIL]);

    // CSV export of the raw rows.
    let csv = admin
        .http
        .get(cp.api("/blocked?format=csv&service=orders&limit=10000"))
        .bearer_auth(&admin.token)
        .send()
        .await?;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()?
            .starts_with("text/csv")
    );
    let text = csv.text().await?;
    let total: i64 = text
        .lines()
        .skip(1)
        .filter_map(|l| l.rsplit(',').next()?.parse::<i64>().ok())
        .sum();
    assert_eq!(total, 13, "{text}");

    // Control-plane metrics saw the batches.
    let metrics = reqwest::get(format!("http://{}/metrics", cp.http_addr))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("corsair_telemetry_batches_total{result=\"stored\"}"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_overflow_is_reported_as_dropped_events() -> Result<()> {
    let mut cp = ControlPlane::start().await?;
    let upstream = Upstream::start().await?;
    let (admin, token) = setup(&cp, json!({"name": "orders"})).await?;
    let cache = tempfile::tempdir()?;
    let agent = Agent::start(
        &cp,
        &token,
        "orders",
        &upstream.url,
        cache.path().to_path_buf(),
        2,
    )
    .await?;
    cp.stop().await?;

    // Five intervals with one blocked request each, into a queue of two.
    for i in 1..=5u32 {
        agent.get(EVIL, 1).await?;
        eventually("the interval's batch to be queued", || async {
            let depth = agent.metric("corsair_agent_telemetry_queue_depth").await?;
            let dropped = agent
                .metric("corsair_agent_telemetry_batches_dropped_total")
                .await?;
            (depth + dropped == f64::from(i)).then_some(())
        })
        .await?;
    }
    assert_eq!(
        agent
            .metric("corsair_agent_telemetry_batches_dropped_total")
            .await,
        Some(3.0)
    );
    assert_eq!(
        agent
            .metric("corsair_agent_telemetry_events_dropped_total")
            .await,
        Some(3.0)
    );

    cp.restart().await?;
    // Two batches got through; the three dropped events are reported, not lost.
    let last = RefCell::new(BTreeMap::new());
    eventually("the dropped events to be visible", || async {
        let got = grouped(&admin, "reason", "&service=orders").await.ok()?;
        *last.borrow_mut() = got.clone();
        (got.get("telemetry_dropped") == Some(&(3, 0))
            && got.get("origin_not_allowed") == Some(&(2, 0)))
        .then_some(())
    })
    .await
    .with_context(|| format!("last seen {:?}", last.borrow()))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_only_requests_pass_and_are_logged_as_would_block() -> Result<()> {
    let cp = ControlPlane::start().await?;
    let upstream = Upstream::start().await?;
    let (admin, token) = setup(&cp, json!({"name": "checkout"})).await?;
    // Report-only grants every origin, so it waits for a second person.
    let (status, held) = admin
        .patch("/services/checkout", json!({"mode": "report_only"}))
        .await?;
    assert_eq!(status, 202, "{held}");
    let id = held["id"].as_i64().context("no id in the held change")?;
    let second = cp.login_as("second@example.com", Role::Approver).await?;
    second
        .post(
            &format!("/services/checkout/settings-changes/{id}/confirm"),
            json!({}),
        )
        .await?;
    let cache = tempfile::tempdir()?;
    let agent = Agent::start(
        &cp,
        &token,
        "checkout",
        &upstream.url,
        cache.path().to_path_buf(),
        100,
    )
    .await?;
    for r in agent.get(EVIL, 3).await? {
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok()),
            Some(EVIL),
            "report-only answers as if allowed"
        );
    }
    let last = RefCell::new(BTreeMap::new());
    eventually("would-block counts", || async {
        let got = grouped(&admin, "origin", "&service=checkout").await.ok()?;
        *last.borrow_mut() = got.clone();
        (got.get(EVIL) == Some(&(3, 3))).then_some(())
    })
    .await
    .with_context(|| format!("last seen {:?}", last.borrow()))?;
    let rows = admin.get("/blocked?service=checkout").await?;
    let rows = rows["rows"].as_array().context("rows")?;
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r["would_block"] == true && r["origin"] == EVIL),
        "{rows:?}"
    );
    Ok(())
}
