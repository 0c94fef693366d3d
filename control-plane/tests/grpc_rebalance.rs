//! `serve --max-stream-age` spreads agents over replicas after a scale-up.
//! Two real `serve` processes on one database behind a round-robin TCP
//! balancer (a Kubernetes Service): agents connect while only replica A
//! runs, replica B joins, and as A's streams reach their age the agents
//! reconnect through the balancer and some land on B. Approvals go on all
//! the while, and every agent holds every one of them. Streams per replica
//! are read from each replica's `corsair_agents_connected` gauge.

mod grpc_support;

use corsair_test_support::balancer::Balancer;
use corsair_test_support::process::Serve;
use grpc_support::{Agent, TestDb, TestResult, eventually, signing_key_hex};
use std::path::Path;

const AGENTS: usize = 12;
/// Seconds: short, so the test sees several generations of streams.
const MAX_STREAM_AGE: &str = "2";

async fn replica(url: &str, key: &Path, dir: &Path) -> anyhow::Result<Serve> {
    Serve::spawn(
        env!("CARGO_BIN_EXE_corsair-control-plane"),
        url,
        key,
        ["--max-stream-age", MAX_STREAM_AGE],
        dir,
    )?
    .serving()
    .await
}

/// The replica's `corsair_agents_connected` gauge.
async fn streams(replica: &Serve) -> anyhow::Result<i64> {
    let text = reqwest::get(replica.url("/metrics")).await?.text().await?;
    text.lines()
        .find_map(|line| line.strip_prefix("corsair_agents_connected "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as i64)
        .ok_or_else(|| anyhow::anyhow!("no corsair_agents_connected in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aged_streams_spread_over_a_new_replica_without_missing_a_revision() -> TestResult {
    let db = TestDb::new().await?;
    let mut revision = db
        .create_service("edge", &["https://a.example.com"])
        .await?;
    let dir = grpc_support::tempdir()?;
    let key = dir.path().join("signing.key");
    std::fs::write(&key, signing_key_hex())?;

    let a = replica(&db.url, &key, dir.path()).await?;
    let balancer = Balancer::start(vec![a.grpc]).await?;
    let token = db.token(&["edge"]).await?;
    let mut agents = Vec::with_capacity(AGENTS);
    for _ in 0..AGENTS {
        let cache = grpc_support::tempdir()?;
        agents.push((
            Agent::start_at(balancer.addr, &token, &["edge"], cache.path())?,
            cache,
        ));
    }
    for (agent, _) in &agents {
        agent.wait_revision("edge", revision).await?;
    }
    eventually("every agent on replica A", || async {
        streams(&a).await.ok() == Some(AGENTS as i64)
    })
    .await?;

    // Scale-up: B joins the Service. Approvals continue while streams age
    // out and move; after each one every agent must hold it.
    let b = replica(&db.url, &key, dir.path()).await?;
    balancer.add(b.grpc);
    let mut approvals = 0;
    loop {
        approvals += 1;
        revision = db
            .approve_origin("edge", &format!("https://n{approvals}.example.com"))
            .await?;
        for (agent, _) in &agents {
            agent.wait_revision("edge", revision).await?;
        }
        let (on_a, on_b) = (streams(&a).await?, streams(&b).await?);
        if on_a > 0 && on_b > 0 && on_a + on_b == AGENTS as i64 && approvals >= 3 {
            break;
        }
        assert!(
            approvals < 200,
            "streams never spread: {on_a} on A, {on_b} on B"
        );
        // Let the streams age between approvals: wait until some stream
        // has moved since this approval (the gauges change).
        eventually("a stream to end or start", || async {
            let now = (streams(&a).await.ok(), streams(&b).await.ok());
            now != (Some(on_a), Some(on_b))
        })
        .await?;
    }

    // Every agent ends at the latest revision, and each ACKed it.
    let last = db
        .approve_origin("edge", "https://last.example.com")
        .await?;
    for (agent, _) in &agents {
        agent.wait_revision("edge", last).await?;
        db.wait_applied(&agent.id, "edge", last).await?;
        assert!(
            agent
                .origins("edge")
                .contains(&"https://last.example.com".to_owned())
        );
    }
    for (agent, _) in agents {
        agent.stop().await;
    }
    Ok(())
}
