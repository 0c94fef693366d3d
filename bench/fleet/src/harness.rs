//! The control plane under test: the real `corsair-control-plane serve`
//! binary as a child process on a fresh database, the agent token the
//! simulated agents share, and the REST calls that change the policy.

use anyhow::{Context, Result, bail};
use corsair_control_plane::auth::{Role, issue_agent_token};
use corsair_control_plane::testing::{
    TestDb, seed_users, signing_key, signing_key_hex, user_token,
};
use corsair_test_support::process::Serve;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The one service every simulated agent enforces.
pub const SERVICE: &str = "fleet-bench";

/// Where `cargo` put the control-plane binary of the same profile as the
/// running executable, after building it (a no-op when it is current).
/// For the benchmark binary, run through `cargo run`; tests use
/// `env!("CARGO_BIN_EXE_corsair-control-plane")` instead.
pub fn build_control_plane() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running executable")?;
    let dir = exe.parent().context("executable without a directory")?;
    let release = dir.file_name().is_some_and(|name| name == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args([
        "build",
        "-p",
        "corsair-control-plane",
        "--bin",
        "corsair-control-plane",
    ]);
    if release {
        command.arg("--release");
    }
    let status = command.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build -p corsair-control-plane failed ({status})");
    }
    let binary = dir.join("corsair-control-plane");
    anyhow::ensure!(binary.exists(), "no {} after cargo build", binary.display());
    Ok(binary)
}

/// A running (or killed) control plane and its database.
pub struct Harness {
    /// The serving process; `None` between [`Harness::kill`] and
    /// [`Harness::restart`].
    serve: Option<Serve>,
    binary: String,
    /// HTTP (API) and gRPC listeners, the same across restarts.
    pub addrs: (SocketAddr, SocketAddr),
    db: TestDb,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    /// The agent token every simulated agent sends (one token may act as
    /// any number of fresh agent ids).
    pub agent_token: String,
    origins_requested: u64,
    /// Listening on `corsair_rollout` (see [`Harness::wait_acked`]).
    rollout: sqlx::postgres::PgListener,
}

impl Harness {
    /// Creates a fresh database (migrated, one user per role), starts
    /// `binary serve` on free loopback ports and waits until it serves,
    /// creates [`SERVICE`] and an agent token for it.
    pub async fn start(binary: &Path) -> Result<Self> {
        let db = TestDb::new().await.context("creating the database")?;
        seed_users(&db.store).await?;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("signing.key"), signing_key_hex())?;
        let binary = binary.to_str().context("non-UTF-8 binary path")?.to_owned();
        let serve = Serve::spawn(
            &binary,
            &db.url,
            &dir.path().join("signing.key"),
            EXTRA,
            dir.path(),
        )?
        .serving()
        .await?;
        let addrs = (serve.http, serve.grpc);
        let id = uuid::Uuid::new_v4();
        let services = vec![SERVICE.to_string()];
        let agent_token = issue_agent_token(&signing_key(), id, "fleet", &services, None)?.token;
        db.store
            .create_agent_token(id, "fleet", &services, None, "fleet-bench")
            .await?;
        let mut rollout = sqlx::postgres::PgListener::connect(&db.url).await?;
        rollout.listen("corsair_rollout").await?;
        let harness = Self {
            serve: Some(serve),
            binary,
            addrs,
            db,
            dir,
            http: reqwest::Client::new(),
            agent_token,
            origins_requested: 0,
            rollout,
        };
        harness
            .call(
                Role::Admin,
                "/services",
                json!({ "name": SERVICE, "description": "fleet benchmark" }),
            )
            .await
            .context("creating the service")?;
        Ok(harness)
    }

    /// `http://<grpc addr>`, for the agents.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.addrs.1)
    }

    /// The control plane's process id (`None` while it is killed).
    pub fn pid(&self) -> Option<u32> {
        self.serve.as_ref().and_then(|s| s.process.child.id())
    }

    /// The database the control plane uses (fresh, dropped with this).
    pub fn db(&self) -> &TestDb {
        &self.db
    }

    /// `kill -9`s the control plane and waits until it is gone.
    pub async fn kill(&mut self) -> Result<()> {
        let mut serve = self
            .serve
            .take()
            .context("the control plane is not running")?;
        serve.process.signal("-KILL")?;
        serve.process.child.wait().await?;
        Ok(())
    }

    /// Starts the control plane again on the same addresses, without
    /// waiting until it serves (see [`Harness::wait_serving`]).
    pub fn restart(&mut self) -> Result<()> {
        anyhow::ensure!(self.serve.is_none(), "the control plane is still running");
        let key = self.dir.path().join("signing.key");
        self.serve = Some(Serve::spawn_at(
            &self.binary,
            &self.db.url,
            &key,
            self.addrs,
            EXTRA,
            self.dir.path(),
        )?);
        Ok(())
    }

    /// Waits until the (restarted) control plane logs that it serves.
    pub async fn wait_serving(&mut self) -> Result<()> {
        self.serve
            .as_mut()
            .context("the control plane is not running")?
            .wait_serving()
            .await
    }

    /// Requests a new origin (as requester) and approves it (as approver)
    /// through the REST API; returns the origin. The approval is the last
    /// call: the new revision goes out when it returns (or earlier).
    pub async fn request_and_approve(&mut self) -> Result<String> {
        let origin = self.request_origin().await?;
        self.approve(&origin.0).await?;
        Ok(origin.1)
    }

    /// Requests a fresh origin; returns (its id, its pattern).
    pub async fn request_origin(&mut self) -> Result<(i64, String)> {
        self.origins_requested += 1;
        let pattern = format!("https://app-{}.fleet.example", self.origins_requested);
        let created = self
            .call(
                Role::Requester,
                &format!("/services/{SERVICE}/origins"),
                json!({ "pattern": pattern, "reason": "fleet benchmark" }),
            )
            .await?;
        let id = created["id"].as_i64().context("origin without an id")?;
        Ok((id, pattern))
    }

    /// Approves origin `id` (as approver).
    pub async fn approve(&self, id: &(impl std::fmt::Display + ?Sized)) -> Result<()> {
        self.call(
            Role::Approver,
            &format!("/origins/{id}/approve"),
            json!({ "note": "fleet" }),
        )
        .await?;
        Ok(())
    }

    /// The service's current revision, from the REST API.
    pub async fn revision(&self) -> Result<i64> {
        let url = format!("http://{}/api/v1/services/{SERVICE}/policy", self.addrs.0);
        let body: Value = self
            .http
            .get(url)
            .bearer_auth(user_token(&signing_key(), Role::Viewer)?)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        body["revision"]
            .as_i64()
            .context("policy without a revision")
    }

    /// Waits until `n` agents' ACKs of `revision` (or later) are recorded
    /// in `agent_services`. It counts once at the start and again on each
    /// `corsair_rollout` notification (sent at the commit of every ACK
    /// batch, migration 0011), or every 100 ms if none arrives: the
    /// measurement adds one count per batch, not a query every few
    /// milliseconds over 10,000 rows.
    pub async fn wait_acked(&mut self, revision: i64, n: i64, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let acked: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM agent_services WHERE service = $1 AND applied_revision >= $2",
            )
            .bind(SERVICE)
            .bind(revision)
            .fetch_one(self.db.store.pool())
            .await?;
            if acked >= n {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "ACKs of revision {revision}: {acked} of {n} recorded after {timeout:?}"
            );
            // A timeout or a notification: count again either way.
            let _ = tokio::time::timeout(Duration::from_millis(100), self.rollout.try_recv()).await;
        }
    }

    async fn call(&self, role: Role, path: &str, body: Value) -> Result<Value> {
        let url = format!("http://{}/api/v1{path}", self.addrs.0);
        let response = self
            .http
            .post(&url)
            .bearer_auth(user_token(&signing_key(), role)?)
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {url}: {status}: {body}");
        }
        Ok(body)
    }

    /// The control plane's log so far.
    pub fn log(&self) -> String {
        self.serve
            .as_ref()
            .map(|s| s.process.log())
            .unwrap_or_default()
    }
}

/// `serve` flags beyond the database, listeners and key: none, so the
/// benchmark measures the production defaults (log level `info`).
const EXTRA: [&str; 0] = [];
