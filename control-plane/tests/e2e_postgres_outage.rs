//! A Postgres outage under a running control plane: a private PostgreSQL
//! server (started by this test, never the shared one) is really stopped
//! and started again. Meanwhile the API answers 503 with a JSON reason and
//! `Retry-After` (never a 500, never a hang), the UI a 503 page, `/readyz`
//! 503, and a real agent keeps its policy and answers CORS. Afterwards a
//! change approved through the API reaches the agent over the re-established
//! LISTEN connection, with no control-plane restart.

mod e2e_support;

use anyhow::{Context, Result};
use corsair_control_plane::auth::Role;
use corsair_control_plane::grpc::GrpcConfig;
use corsair_control_plane::pg::PrivatePostgres;
use corsair_control_plane::store::{PoolConfig, Store};
use corsair_control_plane::testing::{self, Options, TestNode};
use e2e_support::{Agent, Upstream, eventually};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use std::time::Duration;

const ORIGIN: &str = "https://app.example.com";
const LATER: &str = "https://later.example.com";

/// A request that takes longer than this hangs, as far as this test is
/// concerned: it fails rather than waits.
const HANG: Duration = Duration::from_secs(15);

struct Caller {
    http: reqwest::Client,
    base: String,
}

impl Caller {
    /// `method path` with `token` and an optional JSON body: (status,
    /// Retry-After, body text).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<(u16, String, String)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.context("request hung or failed")?;
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok((
            response.status().as_u16(),
            retry_after,
            response.text().await?,
        ))
    }

    /// Requests `pattern` on `orders` as `requester` and approves it as
    /// `approver`.
    async fn approve(&self, requester: &str, approver: &str, pattern: &str) -> Result<()> {
        let (status, _, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/services/orders/origins",
                requester,
                Some(json!({"pattern": pattern, "reason": "web"})),
            )
            .await?;
        anyhow::ensure!(status == 201, "request answered {status}: {body}");
        let id = serde_json::from_str::<Value>(&body)?["id"]
            .as_i64()
            .context("no id")?;
        let (status, _, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/origins/{id}/approve"),
                approver,
                None,
            )
            .await?;
        anyhow::ensure!(status == 200, "approve answered {status}: {body}");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_a_running_control_plane() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut pg = tokio::task::block_in_place(|| PrivatePostgres::start(dir.path()))?;
    pg.stop_when_process_exits(std::process::id())?;
    let mut admin = PgConnection::connect(&pg.url("postgres")).await?;
    sqlx::raw_sql("CREATE DATABASE corsair")
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let pool = PoolConfig {
        acquire_timeout: Duration::from_secs(1),
        ..PoolConfig::default()
    };
    let store = Store::connect_with(&pg.url("corsair"), pool).await?;
    store.migrate().await?;
    testing::seed_users(&store).await?;
    // No periodic resync: after the outage, changes must flow through the
    // re-established LISTEN connection.
    let options = Options {
        grpc: GrpcConfig {
            resync_interval: Duration::from_secs(3600),
            ..GrpcConfig::default()
        },
        ..Options::default()
    };
    let keys = testing::signing_key();
    let node = TestNode::start(&store, &keys, &options).await?;
    let api = Caller {
        http: reqwest::Client::builder().timeout(HANG).build()?,
        base: format!("http://{}", node.http_addr),
    };
    let requester = testing::user_token(&keys, Role::Requester)?;
    let approver = testing::user_token(&keys, Role::Approver)?;
    let admin = testing::user_token(&keys, Role::Admin)?;

    let (status, _, body) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/services",
            &admin,
            Some(json!({"name": "orders", "allow_methods": ["PUT"]})),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    api.approve(&requester, &approver, ORIGIN).await?;
    let (status, _, body) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/agent-tokens",
            &admin,
            Some(json!({"name": "gw", "services": ["orders"]})),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let token = serde_json::from_str::<Value>(&body)?["token"]
        .as_str()
        .context("no token")?
        .to_owned();
    let upstream = Upstream::start().await?;
    let cache = tempfile::tempdir()?;
    let mut agent = Agent::start(
        &format!("http://{}", node.grpc_addr),
        &token,
        "orders",
        &upstream.url,
        cache.path().to_path_buf(),
    )
    .await?;
    agent.await_preflight(ORIGIN, "PUT", "", 204).await?;

    // The outage.
    tokio::task::block_in_place(|| pg.stop())?;

    for (method, path, body) in [
        (reqwest::Method::GET, "/api/v1/services", None),
        (
            reqwest::Method::POST,
            "/api/v1/services/orders/origins",
            Some(json!({"pattern": LATER, "reason": "web"})),
        ),
    ] {
        let (status, retry_after, text) = api.call(method, path, &requester, body).await?;
        assert_eq!(status, 503, "{path}: {text}");
        assert!(
            retry_after.parse::<u64>().is_ok(),
            "{path}: Retry-After {retry_after:?}"
        );
        let body: Value = serde_json::from_str(&text)?;
        assert_eq!(body["error"]["code"], "unavailable", "{text}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("database"), "{message}");
    }
    let login = api
        .http
        .post(format!("{}/api/v1/login", api.base))
        .json(&json!({"email": testing::email(Role::Viewer), "password": testing::PASSWORD}))
        .send()
        .await?;
    assert_eq!(login.status(), 503, "{}", login.text().await?);

    let page = api
        .http
        .get(format!("{}/services", api.base))
        .bearer_auth(&requester)
        .send()
        .await?;
    assert_eq!(page.status(), 503);
    assert!(page.headers().contains_key("retry-after"));
    let html = page.text().await?;
    assert!(html.contains("Temporarily unavailable"), "{html}");

    let ready = api.http.get(format!("{}/readyz", api.base)).send().await?;
    assert_eq!(ready.status(), 503);
    let healthy = api.http.get(format!("{}/healthz", api.base)).send().await?;
    assert_eq!(healthy.status(), 200);

    // The agent keeps enforcing what it holds.
    let preflight = agent.preflight("/api/items/1", ORIGIN, "PUT", "").await?;
    assert_eq!(preflight.status(), 204);
    let refused = agent.preflight("/api/items/1", LATER, "PUT", "").await?;
    assert_eq!(refused.status(), 403);

    // Postgres is back: ready again, writes work, and a change approved
    // now reaches the agent with no control-plane restart.
    tokio::task::block_in_place(|| pg.restart())?;
    eventually("/readyz to answer 200 again", || async {
        api.http
            .get(format!("{}/readyz", api.base))
            .send()
            .await
            .ok()
            .filter(|r| r.status() == 200)
    })
    .await?;
    api.approve(&requester, &approver, LATER).await?;
    agent.await_preflight(LATER, "PUT", "", 204).await?;
    let still = agent.preflight("/api/items/1", ORIGIN, "PUT", "").await?;
    assert_eq!(still.status(), 204);

    agent.stop().await?;
    node.stop().await?;
    drop(store);
    tokio::task::block_in_place(|| pg.stop())?;
    Ok(())
}
