//! PolicySync end to end: the real gRPC server on 127.0.0.1:0 against a fresh
//! Postgres database, and the real agent sync client.

mod grpc_support;

use corsair_agent::sync::PolicySource;
use grpc_support::*;
use std::time::Duration;

#[tokio::test]
async fn snapshot_applied_acked_and_changes_pushed() -> TestResult {
    let db = TestDb::new().await?;
    let rev1 = db
        .create_service("payments", &["https://app.example.com"])
        .await?;
    let cp = ControlPlane::start(&db, fast_config()).await?;
    let agent = Agent::fresh(&cp, &db.token(&["payments"]).await?, &["payments"]).await?;

    agent.wait_revision("payments", rev1).await?;
    assert_eq!(
        agent.origins("payments"),
        vec!["https://app.example.com".to_string()]
    );
    db.wait_applied(&agent.id, "payments", rev1).await?;
    assert!(
        db.agent_connected(&agent.id).await?,
        "agent recorded as connected"
    );
    let status = agent.status.borrow().clone();
    assert!(status.connected && status.ready(), "{status:?}");
    assert_eq!(
        status.services["payments"].source,
        PolicySource::ControlPlane
    );

    // A change made in the database is pushed without the agent asking.
    let rev2 = db
        .approve_origin("payments", "https://admin.example.com")
        .await?;
    assert!(rev2 > rev1);
    agent.wait_revision("payments", rev2).await?;
    assert!(
        agent
            .origins("payments")
            .contains(&"https://admin.example.com".to_string())
    );
    db.wait_applied(&agent.id, "payments", rev2).await?;

    // Deleting the service makes the agent fail closed.
    db.exec("DELETE FROM services WHERE name = 'payments'")
        .await?;
    eventually("agent fails closed", || async {
        agent.handle.load().is_none()
    })
    .await?;
    db.wait_applied(&agent.id, "payments", 0).await?;

    let id = agent.id.clone();
    agent.stop().await;
    eventually("agent marked disconnected", || async {
        !db.agent_connected(&id).await.unwrap_or(true)
    })
    .await?;
    cp.stop().await?;
    Ok(())
}

#[tokio::test]
async fn refused_snapshot_is_nacked_and_old_policy_stays() -> TestResult {
    let db = TestDb::new().await?;
    let rev1 = db
        .create_service("orders", &["https://shop.example.com"])
        .await?;
    let cp = ControlPlane::start(&db, fast_config()).await?;
    let agent = Agent::fresh(&cp, &db.token(&["orders"]).await?, &["orders"]).await?;
    agent.wait_revision("orders", rev1).await?;

    // Written behind the API's back: the engine refuses it.
    let bad = db.approve_origin("orders", "not an origin").await?;
    let error = db.wait_nack(&agent.id, "orders", bad).await?;
    assert!(
        error.contains("not an origin"),
        "NACK error names the problem: {error}"
    );
    assert_eq!(
        agent.revision("orders"),
        Some(rev1),
        "old policy stays in force"
    );
    let status = agent.status.borrow().clone();
    assert_eq!(
        status.services["orders"].last_nack.as_ref().map(|n| n.0),
        Some(bad)
    );

    // The next good revision is applied again.
    db.exec("UPDATE origins SET status = 'revoked' WHERE pattern = 'not an origin'")
        .await?;
    let good = db.bump("orders").await?;
    agent.wait_revision("orders", good).await?;
    db.wait_applied(&agent.id, "orders", good).await?;
    agent.stop().await;
    cp.stop().await?;
    Ok(())
}

#[tokio::test]
async fn bad_credentials_get_the_right_codes() -> TestResult {
    use tonic::Code;
    let db = TestDb::new().await?;
    db.create_service("billing", &["https://app.example.com"])
        .await?;
    db.create_service("other", &[]).await?;
    let cp = ControlPlane::start(&db, fast_config()).await?;
    let good = db.token(&["billing"]).await?;

    assert_eq!(
        raw_code(&cp, None, hello(&["billing"], &[])).await,
        Code::Unauthenticated,
        "missing"
    );
    assert_eq!(
        raw_code(&cp, Some("garbage"), hello(&["billing"], &[])).await,
        Code::Unauthenticated,
        "garbage"
    );
    let expired = db.token_expiring(&["billing"], -60).await?;
    assert_eq!(
        raw_code(&cp, Some(&expired), hello(&["billing"], &[])).await,
        Code::Unauthenticated,
        "expired"
    );
    let foreign = other_key_token(&["billing"])?;
    assert_eq!(
        raw_code(&cp, Some(&foreign), hello(&["billing"], &[])).await,
        Code::Unauthenticated,
        "wrong key"
    );
    let revoked = db.token(&["billing"]).await?;
    db.revoke_token(&revoked).await?;
    assert_eq!(
        raw_code(&cp, Some(&revoked), hello(&["billing"], &[])).await,
        Code::Unauthenticated,
        "revoked"
    );
    let unlisted = db.unlisted_token(&["billing"])?;
    assert_eq!(
        raw_code(&cp, Some(&unlisted), hello(&["billing"], &[])).await,
        Code::Unauthenticated,
        "no row"
    );
    assert_eq!(
        raw_code(&cp, Some(&good), hello(&["billing", "other"], &[])).await,
        Code::PermissionDenied,
        "unscoped service"
    );
    assert_eq!(
        raw_code(&cp, Some(&good), not_hello()).await,
        Code::InvalidArgument,
        "no hello first"
    );
    assert_eq!(
        raw_code(&cp, Some(&good), hello(&["billing"], &[])).await,
        Code::Ok,
        "the good token works"
    );

    // The real client keeps going and reports the refusal.
    let dir = tempdir()?;
    let agent = Agent::start(&cp, &revoked, &["billing"], dir.path()).await?;
    eventually("refusal reported", || async {
        agent
            .status
            .borrow()
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("Unauthenticated"))
    })
    .await?;
    assert!(!agent.status.borrow().connected);
    agent.stop().await;
    cp.stop().await?;
    Ok(())
}

#[tokio::test]
async fn agent_holding_the_current_revision_gets_only_newer_ones() -> TestResult {
    let db = TestDb::new().await?;
    let rev1 = db
        .create_service("quiet", &["https://a.example.com"])
        .await?;
    let cp = ControlPlane::start(&db, fast_config()).await?;
    let token = db.token(&["quiet"]).await?;
    let mut stream = raw_stream(&cp, &token, hello(&["quiet"], &[("quiet", rev1)])).await?;
    let rev2 = db.approve_origin("quiet", "https://b.example.com").await?;
    let first = next_snapshot(&mut stream).await?;
    assert_eq!(
        (first.service.as_str(), first.revision),
        ("quiet", rev2),
        "rev1 is not re-sent"
    );
    assert_eq!(
        first.origins,
        vec!["https://a.example.com", "https://b.example.com"]
    );
    drop(stream);
    cp.stop().await?;
    Ok(())
}

#[tokio::test]
async fn converges_after_the_listen_connection_is_killed() -> TestResult {
    let db = TestDb::new().await?;
    let rev1 = db
        .create_service("search", &["https://a.example.com"])
        .await?;
    // No periodic resync during the test: recovery must come from the reconnect.
    let config = corsair_control_plane::grpc::GrpcConfig {
        resync_interval: Duration::from_secs(3600),
        ..fast_config()
    };
    let cp = ControlPlane::start(&db, config).await?;
    let agent = Agent::fresh(&cp, &db.token(&["search"]).await?, &["search"]).await?;
    agent.wait_revision("search", rev1).await?;

    for round in 0..2 {
        eventually("listening", || async {
            db.listeners().await.unwrap_or(0) >= 1
        })
        .await?;
        let killed = db.kill_listeners().await?;
        assert!(
            killed >= 1,
            "round {round}: a LISTEN connection was terminated"
        );
        // Possibly while nobody listens: the reconnect must resynchronise.
        let rev = db
            .approve_origin("search", &format!("https://r{round}.example.com"))
            .await?;
        agent.wait_revision("search", rev).await?;
    }
    agent.stop().await;
    cp.stop().await?;
    Ok(())
}

#[tokio::test]
async fn agent_reconnects_to_a_restarted_control_plane() -> TestResult {
    let db = TestDb::new().await?;
    let rev1 = db
        .create_service("catalog", &["https://a.example.com"])
        .await?;
    let cp = ControlPlane::start(&db, fast_config()).await?;
    let addr = cp.addr;
    let agent = Agent::fresh(&cp, &db.token(&["catalog"]).await?, &["catalog"]).await?;
    agent.wait_revision("catalog", rev1).await?;
    db.wait_applied(&agent.id, "catalog", rev1).await?;

    // Stopping drains the stream and records the disconnect.
    cp.stop().await?;
    eventually("agent sees the control plane gone", || async {
        !agent.status.borrow().connected
    })
    .await?;
    assert!(!db.agent_connected(&agent.id).await?);
    assert_eq!(agent.revision("catalog"), Some(rev1), "still enforcing");

    let rev2 = db
        .approve_origin("catalog", "https://b.example.com")
        .await?;
    let cp = ControlPlane::start_on(&db, fast_config(), addr).await?;
    agent.wait_revision("catalog", rev2).await?;
    db.wait_applied(&agent.id, "catalog", rev2).await?;
    assert!(agent.status.borrow().reconnects >= 1);
    assert!(db.agent_connected(&agent.id).await?);
    agent.stop().await;
    cp.stop().await?;
    Ok(())
}

#[tokio::test]
async fn agent_started_while_the_control_plane_is_down_enforces_its_cache() -> TestResult {
    let db = TestDb::new().await?;
    let rev1 = db
        .create_service("profile", &["https://a.example.com"])
        .await?;
    let cp = ControlPlane::start(&db, fast_config()).await?;
    let token = db.token(&["profile"]).await?;
    let cache = tempdir()?;
    let agent = Agent::start(&cp, &token, &["profile"], cache.path()).await?;
    agent.wait_revision("profile", rev1).await?;
    db.wait_applied(&agent.id, "profile", rev1).await?;
    let first_id = agent.id.clone();
    agent.stop().await;
    let addr = cp.addr;
    cp.stop().await?;

    // A new agent, same cache dir, nothing listening.
    let agent = Agent::start_at(addr, &token, &["profile"], cache.path())?;
    assert_eq!(agent.id, first_id, "agent id is stable across restarts");
    assert_eq!(
        agent.revision("profile"),
        Some(rev1),
        "enforcing before any connection"
    );
    assert_eq!(
        agent.origins("profile"),
        vec!["https://a.example.com".to_string()]
    );
    let status = agent.status.borrow().clone();
    assert!(status.ready() && !status.connected, "{status:?}");
    assert_eq!(status.services["profile"].source, PolicySource::Cache);
    eventually("failed attempts counted", || async {
        agent.status.borrow().reconnects >= 2
    })
    .await?;

    // The control plane comes back with a change made meanwhile.
    let rev2 = db
        .approve_origin("profile", "https://b.example.com")
        .await?;
    let cp = ControlPlane::start_on(&db, fast_config(), addr).await?;
    agent.wait_revision("profile", rev2).await?;
    agent.stop().await;
    cp.stop().await?;
    Ok(())
}

#[tokio::test]
async fn every_replica_pushes_every_change() -> TestResult {
    let db = TestDb::new().await?;
    let rev1 = db
        .create_service("shared", &["https://a.example.com"])
        .await?;
    let config = corsair_control_plane::grpc::GrpcConfig {
        resync_interval: Duration::from_secs(3600),
        ..fast_config()
    };
    let cp1 = ControlPlane::start(&db, config.clone()).await?;
    let cp2 = ControlPlane::start(&db, config).await?;
    let token = db.token(&["shared"]).await?;
    let a1 = Agent::fresh(&cp1, &token, &["shared"]).await?;
    let a2 = Agent::fresh(&cp2, &token, &["shared"]).await?;
    a1.wait_revision("shared", rev1).await?;
    a2.wait_revision("shared", rev1).await?;
    eventually("both replicas listening", || async {
        db.listeners().await.unwrap_or(0) >= 2
    })
    .await?;

    let rev2 = db.approve_origin("shared", "https://b.example.com").await?;
    a1.wait_revision("shared", rev2).await?;
    a2.wait_revision("shared", rev2).await?;
    a1.stop().await;
    a2.stop().await;
    cp1.stop().await?;
    cp2.stop().await?;
    Ok(())
}

#[tokio::test]
async fn periodic_resync_catches_a_change_that_was_never_notified() -> TestResult {
    let db = TestDb::new().await?;
    let rev1 = db
        .create_service("silent", &["https://a.example.com"])
        .await?;
    let config = corsair_control_plane::grpc::GrpcConfig {
        resync_interval: Duration::from_millis(300),
        ..fast_config()
    };
    let cp = ControlPlane::start(&db, config).await?;
    let agent = Agent::fresh(&cp, &db.token(&["silent"]).await?, &["silent"]).await?;
    agent.wait_revision("silent", rev1).await?;

    // This database is the test's own: silence the NOTIFY trigger.
    db.exec("ALTER TABLE services DISABLE TRIGGER services_notify")
        .await?;
    let rev2 = db.approve_origin("silent", "https://b.example.com").await?;
    agent.wait_revision("silent", rev2).await?;
    agent.stop().await;
    cp.stop().await?;
    Ok(())
}

#[tokio::test]
async fn revoking_the_token_cuts_off_a_connected_agent() -> TestResult {
    let db = TestDb::new().await?;
    let rev1 = db
        .create_service("cutoff", &["https://a.example.com"])
        .await?;
    let config = corsair_control_plane::grpc::GrpcConfig {
        token_recheck_interval: Duration::from_millis(200),
        ..fast_config()
    };
    let cp = ControlPlane::start(&db, config).await?;
    let token = db.token(&["cutoff"]).await?;
    let agent = Agent::fresh(&cp, &token, &["cutoff"]).await?;
    agent.wait_revision("cutoff", rev1).await?;
    db.wait_applied(&agent.id, "cutoff", rev1).await?;

    db.revoke_token(&token).await?;
    eventually("agent cut off", || async {
        let status = agent.status.borrow().clone();
        !status.connected
            && status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("Unauthenticated"))
    })
    .await?;
    assert!(!db.agent_connected(&agent.id).await?);
    assert_eq!(
        agent.revision("cutoff"),
        Some(rev1),
        "the agent keeps enforcing what it had"
    );
    agent.stop().await;
    cp.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_change_reaches_every_one_of_many_streams() -> TestResult {
    const CHANNELS: usize = 8;
    const STREAMS_PER_CHANNEL: usize = 25;
    let db = TestDb::new().await?;
    let rev1 = db
        .create_service("fleet", &["https://a.example.com"])
        .await?;
    let cp = ControlPlane::start(&db, fast_config()).await?;
    let token = db.token(&["fleet"]).await?;
    let mut streams = Vec::new();
    for _ in 0..CHANNELS {
        let channel = tonic::transport::Endpoint::from_shared(cp.url())?
            .connect()
            .await?;
        for _ in 0..STREAMS_PER_CHANNEL {
            streams.push(raw_stream_on(channel.clone(), &token, hello(&["fleet"], &[])).await?);
        }
    }
    for stream in &mut streams {
        assert_eq!(next_snapshot(stream).await?.revision, rev1);
    }
    let rev2 = db.approve_origin("fleet", "https://b.example.com").await?;
    for stream in &mut streams {
        let snapshot = next_snapshot(stream).await?;
        assert_eq!((snapshot.revision, snapshot.origins.len()), (rev2, 2));
    }
    drop(streams);
    cp.stop().await?;
    Ok(())
}

/// Not a timed test: prints the resident memory per open stream (client and
/// server halves together, so an upper bound for the server's share) and how
/// long one change takes to reach all of them. Run with
/// `cargo test --release -p corsair-control-plane --test grpc_sync -- --ignored --nocapture fleet_of_1000`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn fleet_of_1000_memory_and_propagation() -> TestResult {
    const CHANNELS: usize = 10;
    const PER_CHANNEL: usize = 100;
    let db = TestDb::new().await?;
    let rev1 = db
        .create_service("fleet", &["https://a.example.com"])
        .await?;
    let cp = ControlPlane::start(&db, fast_config()).await?;
    let token = db.token(&["fleet"]).await?;
    let channels: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..CHANNELS {
            v.push(
                tonic::transport::Endpoint::from_shared(cp.url())?
                    .connect()
                    .await?,
            );
        }
        v
    };
    let before = resident_bytes();
    let mut streams = Vec::new();
    for channel in &channels {
        for _ in 0..PER_CHANNEL {
            let mut stream = raw_stream_on(channel.clone(), &token, hello(&["fleet"], &[])).await?;
            assert_eq!(next_snapshot(&mut stream).await?.revision, rev1);
            streams.push(stream);
        }
    }
    let after = resident_bytes();
    let n = streams.len();
    println!(
        "{n} streams: {} KiB resident each (client + server)",
        (after.saturating_sub(before)) / n as u64 / 1024
    );

    let start = std::time::Instant::now();
    let rev2 = db.approve_origin("fleet", "https://b.example.com").await?;
    let mut waits = Vec::with_capacity(n);
    for stream in &mut streams {
        assert_eq!(next_snapshot(stream).await?.revision, rev2);
        waits.push(start.elapsed());
    }
    waits.sort();
    println!(
        "change reached all {n} streams in {:?} (p50 {:?}, p99 {:?})",
        waits[n - 1],
        waits[n / 2],
        waits[n * 99 / 100]
    );
    drop(streams);
    cp.stop().await?;
    Ok(())
}

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// A quiet stream keeps its agent "connected" through the heartbeat, and an
/// agent not heard from for longer than `AGENT_STALE_AFTER` reads as
/// disconnected even with `connected = true` left behind (a replica that
/// died without recording its disconnects).
#[tokio::test]
async fn quiet_streams_heartbeat_and_stale_agents_read_as_disconnected() -> TestResult {
    let db = TestDb::new().await?;
    let rev1 = db
        .create_service("beat", &["https://a.example.com"])
        .await?;
    let config = corsair_control_plane::grpc::GrpcConfig {
        token_recheck_interval: Duration::from_millis(200),
        ..fast_config()
    };
    let cp = ControlPlane::start(&db, config).await?;
    let token = db.token(&["beat"]).await?;
    let agent = Agent::fresh(&cp, &token, &["beat"]).await?;
    agent.wait_revision("beat", rev1).await?;
    db.wait_applied(&agent.id, "beat", rev1).await?;

    let connected = |id: String| {
        let store = db.store.clone();
        async move {
            store
                .list_agent_status()
                .await
                .expect("agent status")
                .into_iter()
                .find(|a| a.id == id)
                .map(|a| a.connected)
        }
    };
    assert_eq!(connected(agent.id.clone()).await, Some(true));
    // Last heard of an hour ago, still flagged connected: stale.
    sqlx::query("UPDATE agents SET last_seen = now() - interval '1 hour' WHERE id = $1")
        .bind(&agent.id)
        .execute(db.store.pool())
        .await?;
    assert!(
        db.agent_connected(&agent.id).await?,
        "the flag is still set"
    );
    assert_eq!(connected(agent.id.clone()).await, Some(false));
    // The stream is quiet (nothing changes), but its heartbeat revives it.
    eventually("heartbeat bumps last_seen", || async {
        connected(agent.id.clone()).await == Some(true)
    })
    .await?;
    agent.stop().await;
    cp.stop().await?;
    Ok(())
}
