//! The agent keeps enforcing while the control plane is away — across its own
//! restart, from its last-known-good cache — and catches up with a change
//! made meanwhile once the control plane is back.

mod e2e_support;

use corsair_control_plane::auth::Role;
use corsair_control_plane::store::origins::Decision;
use e2e_support::{Agent, ControlPlane, Upstream, eventually, header};
use serde_json::json;

const ORIGIN: &str = "https://app.example.com";
const LATER: &str = "https://later.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_policy_survives_agent_restart_while_control_plane_is_down() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start().await?;
    let upstream = Upstream::start().await?;
    let admin = cp.login_as("admin@example.com", Role::Admin).await?;
    admin
        .post(
            "/services",
            json!({"name": "orders", "allow_methods": ["PUT"], "max_age_secs": 60}),
        )
        .await?;
    let origin = admin
        .post(
            "/services/orders/origins",
            json!({"pattern": ORIGIN, "reason": "web"}),
        )
        .await?;
    let id = origin["id"].as_i64().unwrap_or_default();
    admin
        .post(&format!("/origins/{id}/approve"), json!({"note": "ok"}))
        .await?;
    let token = admin.agent_token("gw", &["orders"]).await?;

    let cache = tempfile::tempdir()?;
    let mut agent = Agent::start(
        &cp.grpc_url(),
        &token,
        "orders",
        &upstream.url,
        cache.path().to_path_buf(),
    )
    .await?;
    agent.await_preflight(ORIGIN, "PUT", "", 204).await?;

    // Control plane down, then the agent restarts: it must enforce the
    // cached policy at once, with no control plane to ask.
    cp.stop().await?;
    agent.stop().await?;
    let agent = Agent::start(
        &cp.grpc_url(),
        &token,
        "orders",
        &upstream.url,
        cache.path().to_path_buf(),
    )
    .await?;
    let ready = reqwest::get(format!("{}/readyz", agent.admin_url)).await?;
    assert_eq!(
        ready.status(),
        200,
        "agent not ready from its cache: {}",
        ready.text().await?
    );
    let cached = agent.preflight("/api/items/1", ORIGIN, "PUT", "").await?;
    assert_eq!(cached.status(), 204);
    assert_eq!(header(&cached, "access-control-allow-origin"), ORIGIN);
    let health: serde_json::Value = reqwest::get(format!("{}/healthz", agent.admin_url))
        .await?
        .json()
        .await?;
    assert_eq!(health["sync"]["connected"], false, "health: {health}");
    assert_eq!(
        health["sync"]["services"]["orders"]["source"], "Cache",
        "health: {health}"
    );

    // A change made while the control plane is down (straight into the
    // database, as another replica would): a new origin approved, the old
    // one revoked.
    let store = &cp.db.store;
    let later = store
        .request_origin("orders", LATER, "new app", None, "someone")
        .await?;
    store
        .decide_origin(later.id, Decision::Approve, Some("ok"), "approver")
        .await?;
    store
        .decide_origin(id, Decision::Revoke, Some("gone"), "approver")
        .await?;
    // Still the cached policy: nothing can reach the agent yet.
    assert_eq!(
        agent
            .preflight("/api/items/1", ORIGIN, "PUT", "")
            .await?
            .status(),
        204
    );

    // The control plane comes back; the agent reconnects and catches up.
    cp.restart().await?;
    agent.await_preflight(LATER, "PUT", "", 204).await?;
    agent.await_preflight(ORIGIN, "PUT", "", 403).await?;
    eventually("the agent to report a reconnect", || async {
        let health: serde_json::Value = reqwest::get(format!("{}/healthz", agent.admin_url))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (health["sync"]["connected"] == true
            && health["sync"]["services"]["orders"]["source"] == "ControlPlane")
            .then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_without_any_policy_fails_closed_and_is_not_ready() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start().await?;
    cp.stop().await?;
    let upstream = Upstream::start().await?;
    let cache = tempfile::tempdir()?;
    let agent = Agent::start(
        &cp.grpc_url(),
        "not-a-token",
        "orders",
        &upstream.url,
        cache.path().to_path_buf(),
    )
    .await?;
    let ready = reqwest::get(format!("{}/readyz", agent.admin_url)).await?;
    assert_eq!(ready.status(), 503);
    let preflight = agent.preflight("/api/items/1", ORIGIN, "PUT", "").await?;
    assert_eq!(preflight.status(), 403);
    // Actual requests still reach the upstream, without any CORS grant.
    let actual = reqwest::Client::new()
        .get(format!("{}/api/hello", agent.url))
        .header("origin", ORIGIN)
        .send()
        .await?;
    assert_eq!(actual.status(), 200);
    assert_eq!(header(&actual, "access-control-allow-origin"), "");
    Ok(())
}
