//! Issue 2's end-to-end path: an origin approved over REST reaches a real
//! agent over gRPC and is enforced; revoking it takes it away again; every
//! step is in the change audit.

mod e2e_support;

use corsair_control_plane::auth::Role;
use e2e_support::{Agent, ControlPlane, Upstream, eventually, header};
use serde_json::json;

const ORIGIN: &str = "https://app.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_origin_reaches_the_agent_and_revocation_removes_it() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let upstream = Upstream::start().await?;
    let admin = cp.login_as("admin@example.com", Role::Admin).await?;
    let requester = cp.login_as("dev@example.com", Role::Requester).await?;
    let approver = cp.login_as("sec@example.com", Role::Approver).await?;

    admin
        .post(
            "/services",
            json!({
                "name": "payments-api",
                "description": "payments",
                "allow_methods": ["PUT"],
                "allow_headers": ["X-Request-Id"],
                "expose_headers": ["X-Trace"],
                "allow_credentials": true,
                "max_age_secs": 600,
            }),
        )
        .await?;
    let token = admin.agent_token("gw-1", &["payments-api"]).await?;
    let cache = tempfile::tempdir()?;
    let agent = Agent::start(
        &cp.grpc_url(),
        &token,
        "payments-api",
        &upstream.url,
        cache.path().to_path_buf(),
    )
    .await?;

    // The agent gets the (empty) policy, then refuses the origin.
    eventually("the agent to be ready", || async {
        reqwest::get(format!("{}/readyz", agent.admin_url))
            .await
            .ok()
            .filter(|r| r.status() == 200)
    })
    .await?;
    let refused = agent
        .preflight("/api/items/1", ORIGIN, "PUT", "x-request-id")
        .await?;
    assert_eq!(refused.status(), 403);
    assert_eq!(header(&refused, "access-control-allow-origin"), "");

    // Request, approve.
    let origin = requester
        .post(
            "/services/payments-api/origins",
            json!({"pattern": ORIGIN, "reason": "the web app"}),
        )
        .await?;
    assert_eq!(origin["status"], "pending");
    let id = origin["id"].as_i64().unwrap_or_default();
    approver
        .post(
            &format!("/origins/{id}/approve"),
            json!({"note": "reviewed"}),
        )
        .await?;

    // The agent answers the preflight itself, with exactly these headers.
    let granted = agent
        .await_preflight(ORIGIN, "PUT", "x-request-id", 204)
        .await?;
    assert_eq!(header(&granted, "access-control-allow-origin"), ORIGIN);
    assert_eq!(header(&granted, "access-control-allow-credentials"), "true");
    assert_eq!(header(&granted, "access-control-allow-methods"), "PUT");
    assert_eq!(
        header(&granted, "access-control-allow-headers").to_ascii_lowercase(),
        "x-request-id"
    );
    assert_eq!(header(&granted, "access-control-max-age"), "600");
    assert!(
        header(&granted, "vary").contains("Origin"),
        "vary: {}",
        header(&granted, "vary")
    );

    // An actual request is forwarded and granted.
    let actual = reqwest::Client::new()
        .get(format!("{}/api/hello", agent.url))
        .header("origin", ORIGIN)
        .send()
        .await?;
    assert_eq!(actual.status(), 200);
    assert_eq!(header(&actual, "access-control-allow-origin"), ORIGIN);
    assert_eq!(
        header(&actual, "access-control-expose-headers").to_ascii_lowercase(),
        "x-trace"
    );
    let body: serde_json::Value = actual.json().await?;
    assert_eq!(body["message"], "hello from the demo upstream");
    // The upstream learns who the client was.
    let whoami: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/whoami", agent.url))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(whoami["forwarded_for"], "127.0.0.1", "{whoami}");

    // Another origin gets nothing, before and after.
    let other = agent
        .preflight("/api/items/1", "https://evil.example.net", "PUT", "")
        .await?;
    assert_eq!(other.status(), 403);

    // The REST view of the effective policy and the agent agree.
    let policy = approver.get("/services/payments-api/policy").await?;
    assert_eq!(
        policy["spec"]["origins"],
        json!([ORIGIN]),
        "policy: {policy}"
    );
    let revision = policy["revision"].as_i64().unwrap_or_default();
    eventually("the agent's ACK to be recorded", || async {
        let agents = approver.get("/agents").await.ok()?;
        let applied = agents.get(0)?["service_states"].get(0)?["applied_revision"].as_i64()?;
        (applied == revision).then_some(())
    })
    .await?;

    // Revoke: the agent refuses again.
    approver
        .post(
            &format!("/origins/{id}/revoke"),
            json!({"note": "app retired"}),
        )
        .await?;
    let revoked = agent
        .await_preflight(ORIGIN, "PUT", "x-request-id", 403)
        .await?;
    assert_eq!(header(&revoked, "access-control-allow-origin"), "");

    // Every step is in the audit log, newest first.
    let audit = approver.get("/audit?service=payments-api").await?;
    let actions: Vec<&str> = audit
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["action"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        actions,
        [
            "origin.revoke",
            "origin.approve",
            "origin.request",
            "service.create"
        ],
        "audit: {audit}"
    );
    Ok(())
}
