//! The control-plane test fixture: a fresh database with one user per
//! role, and a control-plane [`Node`] (API + UI over HTTP, PolicySync and
//! Telemetry over gRPC) on port-0 loopback listeners of its own, that can
//! be stopped and started again on the same ports.

use super::TestDb;
use crate::auth::{Role, SigningKey, issue_agent_token, issue_user_token, password};
use crate::grpc::GrpcConfig;
use crate::metrics::audit_figures::AUDIT_READ_INTERVAL;
use crate::node::Node;
use crate::server::Shutdown;
use crate::store::Store;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Every fixture user's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// The four roles, least first; the fixture has one user of each.
pub const ROLES: [Role; 4] = [Role::Viewer, Role::Requester, Role::Approver, Role::Admin];

/// The signing key of every fixture (raw bytes, as [`SigningKey::from_bytes`] takes them).
const KEY: &[u8] = b"corsair-test-signing-key-0123456789abcdef";

/// The fixture user with `role`: `<role>@example.com`.
pub fn email(role: Role) -> String {
    format!("{}@example.com", role.as_str())
}

/// The key fixtures sign user and agent tokens with.
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(KEY)
}

/// [`signing_key`] as a `--signing-key-file` holds it (hex), for a `serve`
/// process that must accept the fixture's tokens.
pub fn signing_key_hex() -> String {
    KEY.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Argon2 hash of [`PASSWORD`], computed once per test process.
pub fn password_hash() -> Result<String> {
    static HASH: OnceLock<Result<String, String>> = OnceLock::new();
    HASH.get_or_init(|| password::hash(PASSWORD))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Creates the fixture users: one per role, [`email`]`(role)`, password
/// [`PASSWORD`].
pub async fn seed_users(store: &Store) -> Result<()> {
    let hash = password_hash()?;
    for role in ROLES {
        store.create_user(&email(role), &hash, role, "test").await?;
    }
    Ok(())
}

/// A user token for the fixture user with `role`, signed with `keys`.
pub fn user_token(keys: &SigningKey, role: Role) -> Result<String> {
    Ok(issue_user_token(keys, &email(role), role)?.token)
}

/// How a fixture's node runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// gRPC tunables; by default a 2 s resync so missed notifications show
    /// quickly.
    pub grpc: GrpcConfig,
    /// Let one user request and approve (`--single-operator`).
    pub single_operator: bool,
    /// How long one read of the audit figures serves `/metrics`; by default
    /// production's [`AUDIT_READ_INTERVAL`].
    pub audit_read_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            grpc: GrpcConfig {
                resync_interval: Duration::from_secs(2),
                ..GrpcConfig::default()
            },
            single_operator: false,
            audit_read_interval: AUDIT_READ_INTERVAL,
        }
    }
}

/// One running [`Node`] on a store; stopped when dropped.
#[derive(Debug)]
pub struct TestNode {
    /// Where HTTP (API, UI, probes) listens.
    pub http_addr: SocketAddr,
    /// Where gRPC listens.
    pub grpc_addr: SocketAddr,
    stop: Shutdown,
    task: JoinHandle<Result<()>>,
}

impl TestNode {
    /// A node on fresh port-0 loopback listeners.
    pub async fn start(store: &Store, keys: &SigningKey, options: &Options) -> Result<Self> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_at(store, keys, options, any, any).await
    }

    /// A node on these addresses (port 0: any), e.g. the ports of a node
    /// that was stopped.
    pub async fn start_at(
        store: &Store,
        keys: &SigningKey,
        options: &Options,
        http: SocketAddr,
        grpc: SocketAddr,
    ) -> Result<Self> {
        let http = TcpListener::bind(http)
            .await
            .with_context(|| format!("binding HTTP on {http}"))?;
        let grpc = TcpListener::bind(grpc)
            .await
            .with_context(|| format!("binding gRPC on {grpc}"))?;
        let (http_addr, grpc_addr) = (http.local_addr()?, grpc.local_addr()?);
        let node = Node {
            store: store.clone(),
            keys: keys.clone(),
            http,
            grpc,
            grpc_config: options.grpc.clone(),
            single_operator: options.single_operator,
            secure_cookies: false,
            retention: Default::default(),
            sign_in: Default::default(),
            audit_read_interval: options.audit_read_interval,
        };
        let stop = Shutdown::new();
        let task = tokio::spawn(node.run(stop.wait()));
        Ok(Self {
            http_addr,
            grpc_addr,
            stop,
            task,
        })
    }

    /// Stops the node and waits until it has drained (its ports are free
    /// again when this returns).
    pub async fn stop(self) -> Result<()> {
        self.stop.trigger();
        self.task.await.context("node task")?
    }
}

/// A fresh database, a user per role (password [`PASSWORD`]) and a node.
#[derive(Debug)]
pub struct ControlPlane {
    /// The database; dropped with the fixture.
    pub db: TestDb,
    /// The node's signing key ([`signing_key`]).
    pub keys: SigningKey,
    /// Where HTTP listens (the same across [`ControlPlane::restart`]).
    pub http_addr: SocketAddr,
    /// Where gRPC listens (the same across [`ControlPlane::restart`]).
    pub grpc_addr: SocketAddr,
    options: Options,
    node: Option<TestNode>,
}

impl ControlPlane {
    /// Starts one with `options`.
    pub async fn start(options: Options) -> Result<Self> {
        let db = TestDb::new().await?;
        seed_users(&db.store).await?;
        let keys = signing_key();
        let node = TestNode::start(&db.store, &keys, &options).await?;
        Ok(Self {
            db,
            keys,
            http_addr: node.http_addr,
            grpc_addr: node.grpc_addr,
            options,
            node: Some(node),
        })
    }

    /// Stops the node and waits until it has drained; the database stays.
    pub async fn stop(&mut self) -> Result<()> {
        match self.node.take() {
            Some(node) => node.stop().await,
            None => Ok(()),
        }
    }

    /// Starts the node again on the same ports (after [`ControlPlane::stop`]).
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        let node = TestNode::start_at(
            &self.db.store,
            &self.keys,
            &self.options,
            self.http_addr,
            self.grpc_addr,
        )
        .await?;
        self.node = Some(node);
        Ok(())
    }

    /// `http://<http addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    /// `http://<http addr>/api/v1<path>`.
    pub fn api(&self, path: &str) -> String {
        self.url(&format!("/api/v1{path}"))
    }

    /// `http://<grpc addr>`, for an agent's `--control-plane`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// A user token for the fixture user with `role`, signed directly.
    pub fn user_token(&self, role: Role) -> Result<String> {
        user_token(&self.keys, role)
    }

    /// An agent token named `name` for `services`, listed in the store as
    /// `token issue` would.
    pub async fn agent_token(&self, name: &str, services: &[&str]) -> Result<String> {
        let id = uuid::Uuid::new_v4();
        let services: Vec<String> = services.iter().map(|s| s.to_string()).collect();
        let token = issue_agent_token(&self.keys, id, name, &services, None)?;
        self.db
            .store
            .create_agent_token(id, name, &services, None, "test")
            .await?;
        Ok(token.token)
    }
}
