//! Shared by the `e2e_*` tests: the whole system in one process, each part on
//! its own loopback socket — a control-plane node (HTTP + gRPC), the demo
//! upstream, and a real agent sidecar that syncs over real gRPC — on a fresh
//! database. Every wait polls with a deadline.
#![allow(dead_code)]

use anyhow::{Context, Result, bail};
use corsair_agent::control_plane::ControlPlaneConfig;
use corsair_agent::proxy::sidecar::{self, SidecarConfig};
use corsair_control_plane::auth::{Role, SigningKey, password};
use corsair_control_plane::dev::demo;
use corsair_control_plane::grpc::GrpcConfig;
use corsair_control_plane::node::Node;
use corsair_control_plane::server::Shutdown;
use corsair_control_plane::testing::TestDb;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How long any convergence may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` every 50 ms until it returns `Some`, or fails after `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {DEADLINE:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running control-plane node that can be stopped and started again on
/// the same ports.
pub struct ControlPlane {
    pub db: TestDb,
    pub keys: SigningKey,
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    running: Option<(Shutdown, JoinHandle<Result<()>>)>,
}

impl ControlPlane {
    pub async fn start() -> Result<Self> {
        let db = TestDb::new().await?;
        let keys = SigningKey::from_bytes(&[7; 32]);
        let http = TcpListener::bind("127.0.0.1:0").await?;
        let grpc = TcpListener::bind("127.0.0.1:0").await?;
        let mut cp = Self {
            db,
            keys,
            http_addr: http.local_addr()?,
            grpc_addr: grpc.local_addr()?,
            running: None,
        };
        cp.run(http, grpc);
        Ok(cp)
    }

    fn run(&mut self, http: TcpListener, grpc: TcpListener) {
        let node = Node {
            store: self.db.store.clone(),
            keys: self.keys.clone(),
            http,
            grpc,
            grpc_config: GrpcConfig {
                resync_interval: Duration::from_secs(2),
                ..GrpcConfig::default()
            },
            // These tests exercise sync, not the four-eyes rule: one admin
            // requests and approves.
            single_operator: true,
            secure_cookies: false,
            retention: Default::default(),
        };
        let stop = Shutdown::new();
        let task = tokio::spawn(node.run(stop.wait()));
        self.running = Some((stop, task));
    }

    /// Stops the node and waits until it has drained.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some((stop, task)) = self.running.take() {
            stop.trigger();
            task.await??;
        }
        Ok(())
    }

    /// Starts the node again on the same ports.
    pub async fn restart(&mut self) -> Result<()> {
        let http = eventually("the HTTP port to be free", || async {
            TcpListener::bind(self.http_addr).await.ok()
        })
        .await?;
        let grpc = eventually("the gRPC port to be free", || async {
            TcpListener::bind(self.grpc_addr).await.ok()
        })
        .await?;
        self.run(http, grpc);
        Ok(())
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://{}/api/v1{path}", self.http_addr)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Creates a user with `role` and logs in over REST; returns a client.
    pub async fn login_as(&self, email: &str, role: Role) -> Result<Client> {
        let pw = "correct horse battery staple";
        let hash = password::hash(pw).map_err(anyhow::Error::msg)?;
        self.db
            .store
            .create_user(email, &hash, role, "test")
            .await?;
        let http = reqwest::Client::new();
        let reply: Value = http
            .post(self.api("/login"))
            .json(&json!({"email": email, "password": pw}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = reply["token"]
            .as_str()
            .context("login returned no token")?
            .to_string();
        Ok(Client {
            http,
            token,
            base: self.api(""),
        })
    }
}

/// A REST client with a bearer token.
pub struct Client {
    pub http: reqwest::Client,
    pub token: String,
    base: String,
}

impl Client {
    /// POSTs JSON; fails unless 2xx; returns the body.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status}: {body}");
        }
        Ok(body)
    }

    /// GETs JSON; fails unless 2xx.
    pub async fn get(&self, path: &str) -> Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("GET {path}: {status}: {body}");
        }
        Ok(body)
    }
}

/// The demo upstream on its own port; counts requests so tests can tell
/// whether the agent forwarded.
pub struct Upstream {
    pub url: String,
    stop: Shutdown,
}

impl Upstream {
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop = Shutdown::new();
        let shutdown = stop.wait();
        tokio::spawn(async move {
            axum::serve(listener, demo::upstream_router())
                .with_graceful_shutdown(shutdown)
                .await
        });
        Ok(Self { url, stop })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

/// A real agent sidecar (sync client + proxy + admin endpoints).
pub struct Agent {
    pub url: String,
    pub admin_url: String,
    pub cache_dir: PathBuf,
    running: Option<(Shutdown, JoinHandle<Result<()>>)>,
}

impl Agent {
    pub async fn start(
        control_plane: &str,
        token: &str,
        service: &str,
        upstream: &str,
        cache_dir: PathBuf,
    ) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let admin = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let admin_url = format!("http://{}", admin.local_addr()?);
        let config = SidecarConfig {
            control_plane: ControlPlaneConfig::new(control_plane, token),
            service: service.to_string(),
            upstream: upstream.to_string(),
            cache_dir: cache_dir.clone(),
            agent_name: "e2e-agent".to_string(),
            proxy: Default::default(),
        };
        let stop = Shutdown::new();
        let task = tokio::spawn(sidecar::run(config, listener, Some(admin), stop.wait()));
        Ok(Self {
            url,
            admin_url,
            cache_dir,
            running: Some((stop, task)),
        })
    }

    pub async fn stop(&mut self) -> Result<()> {
        if let Some((stop, task)) = self.running.take() {
            stop.trigger();
            task.await??;
        }
        Ok(())
    }

    /// Sends a preflight for `method` + `headers` from `origin`.
    pub async fn preflight(
        &self,
        path: &str,
        origin: &str,
        method: &str,
        headers: &str,
    ) -> Result<reqwest::Response> {
        let mut req = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{}{path}", self.url))
            .header("origin", origin)
            .header("access-control-request-method", method);
        if !headers.is_empty() {
            req = req.header("access-control-request-headers", headers);
        }
        Ok(req.send().await?)
    }

    /// Polls until a preflight answers `status`.
    pub async fn await_preflight(
        &self,
        origin: &str,
        method: &str,
        headers: &str,
        status: u16,
    ) -> Result<reqwest::Response> {
        eventually(
            &format!("a preflight from {origin} to answer {status}"),
            || async {
                self.preflight("/api/items/1", origin, method, headers)
                    .await
                    .ok()
                    .filter(|r| r.status().as_u16() == status)
            },
        )
        .await
    }
}

/// A response header's value as text ("" when absent).
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}
