//! Shared by the `e2e_*` tests: the whole system in one process, each part on
//! its own loopback socket — a control-plane node (HTTP + gRPC), the demo
//! upstream, and a real agent sidecar that syncs over real gRPC — on a fresh
//! database. Every wait polls with a deadline ([`eventually`]).
#![allow(dead_code)]

#[allow(unused_imports)] // each test binary uses its own subset
pub use corsair_test_support::eventually;

use anyhow::{Context, Result, bail};
use corsair_agent::control_plane::ControlPlaneConfig;
use corsair_agent::proxy::sidecar::{self, SidecarConfig};
use corsair_agent::report::ReportConfig;
use corsair_control_plane::auth::Role;
use corsair_control_plane::dev::demo;
use corsair_control_plane::server::Shutdown;
use corsair_control_plane::testing::{self, Options};
use serde_json::{Value, json};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A control-plane fixture for the end-to-end tests: one admin may request
/// and approve (these tests exercise sync, not the four-eyes rule).
pub struct ControlPlane(testing::ControlPlane);

impl Deref for ControlPlane {
    type Target = testing::ControlPlane;
    fn deref(&self) -> &testing::ControlPlane {
        &self.0
    }
}

impl DerefMut for ControlPlane {
    fn deref_mut(&mut self) -> &mut testing::ControlPlane {
        &mut self.0
    }
}

impl ControlPlane {
    /// Starts the fixture with `--single-operator`.
    pub async fn start() -> Result<Self> {
        let options = Options {
            single_operator: true,
            ..Options::default()
        };
        Ok(Self(testing::ControlPlane::start(options).await?))
    }

    /// Logs in over REST as `email` (created with `role` unless it is the
    /// fixture's own user for that role); returns a client.
    pub async fn login_as(&self, email: &str, role: Role) -> Result<Client> {
        if email != testing::email(role) {
            self.db
                .store
                .create_user(email, &testing::password_hash()?, role, "test")
                .await?;
        }
        let http = reqwest::Client::new();
        let reply: Value = http
            .post(self.api("/login"))
            .json(&json!({"email": email, "password": testing::PASSWORD}))
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
    /// Sends `method path` with the bearer token (and `body` as JSON);
    /// fails unless 2xx; the status and the JSON body (null if none).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{method} {path}: {status}: {body}");
        }
        Ok((status.as_u16(), body))
    }

    /// POSTs JSON; fails unless 2xx; returns the body.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value> {
        Ok(self.call(reqwest::Method::POST, path, Some(body)).await?.1)
    }

    /// PATCHes JSON; fails unless 2xx; returns the status and the body
    /// (a widening settings change answers 202 with the held change).
    pub async fn patch(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// Issues an agent token named `name` for `services` over REST
    /// (`POST /agent-tokens`); returns the token.
    pub async fn agent_token(&self, name: &str, services: &[&str]) -> Result<String> {
        let reply = self
            .post("/agent-tokens", json!({"name": name, "services": services}))
            .await?;
        Ok(reply["token"]
            .as_str()
            .context("no token in the reply")?
            .to_string())
    }

    /// GETs JSON; fails unless 2xx.
    pub async fn get(&self, path: &str) -> Result<Value> {
        Ok(self.call(reqwest::Method::GET, path, None).await?.1)
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
    /// Starts one named `e2e-agent` with the default telemetry settings,
    /// without waiting for its first policy.
    pub async fn start(
        control_plane: &str,
        token: &str,
        service: &str,
        upstream: &str,
        cache_dir: PathBuf,
    ) -> Result<Self> {
        let config = SidecarConfig {
            control_plane: ControlPlaneConfig::new(control_plane, token),
            service: service.to_string(),
            upstream: upstream.to_string(),
            cache_dir,
            agent_name: "e2e-agent".to_string(),
            proxy: Default::default(),
        };
        Self::spawn(config, ReportConfig::default()).await
    }

    /// Starts `config` with telemetry `report` settings and waits until its
    /// `/readyz` says it holds a policy.
    pub async fn start_ready(config: SidecarConfig, report: ReportConfig) -> Result<Self> {
        let agent = Self::spawn(config, report).await?;
        eventually("the agent to hold a policy", || async {
            reqwest::get(format!("{}/readyz", agent.admin_url))
                .await
                .and_then(|r| r.error_for_status())
        })
        .await?;
        Ok(agent)
    }

    async fn spawn(config: SidecarConfig, report: ReportConfig) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let admin = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let admin_url = format!("http://{}", admin.local_addr()?);
        let cache_dir = config.cache_dir.clone();
        let stop = Shutdown::new();
        let task = tokio::spawn(sidecar::run_with_report(
            config,
            report,
            listener,
            Some(admin),
            stop.wait(),
        ));
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
