//! Helpers for the PolicySync tests: a fresh database seeded by SQL behind
//! the API, the control-plane node (the shared fixture's [`TestNode`]) on
//! real sockets, a real agent sync client and raw gRPC calls.
#![allow(dead_code)]

#[allow(unused_imports)] // each test binary uses its own subset
pub use corsair_test_support::eventually;

use corsair_agent::handle::PolicyHandle;
use corsair_agent::sync::{SyncClient, SyncConfig, SyncStatus};
use corsair_control_plane::auth::{Claims, SigningKey, TokenKind};
use corsair_control_plane::grpc::GrpcConfig;
use corsair_control_plane::store::Store;
use corsair_control_plane::testing::{self, Options, TestNode};
use corsair_proto::v1::policy_sync_client::PolicySyncClient;
use corsair_proto::v1::{Ack, AgentMessage, Hello, PolicySnapshot, agent_message, control_message};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::Streaming;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// How long a stream message or a node's shutdown may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn tempdir() -> std::io::Result<tempfile::TempDir> {
    tempfile::tempdir()
}

pub fn fast_config() -> GrpcConfig {
    GrpcConfig {
        resync_interval: Duration::from_secs(2),
        ..GrpcConfig::default()
    }
}

fn key() -> SigningKey {
    testing::signing_key()
}

/// The tests' signing key as a `--signing-key-file` holds it (hex), for a
/// `serve` process that must accept [`TestDb::token`]s.
#[allow(unused_imports)] // each test binary uses its own subset
pub use corsair_control_plane::testing::signing_key_hex;

/// A fresh, migrated database of its own (the shared fixture, dropped at
/// the end of the test), with the SQL these tests write behind the API.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    _db: testing::TestDb,
}

impl TestDb {
    pub async fn new() -> Result<Self, AnyError> {
        let db = testing::TestDb::new().await?;
        Ok(Self {
            store: db.store.clone(),
            url: db.url.clone(),
            _db: db,
        })
    }

    pub async fn exec(&self, sql: &'static str) -> Result<(), AnyError> {
        sqlx::query(sql).execute(self.store.pool()).await?;
        Ok(())
    }

    /// Creates a service with these approved origins; returns its revision.
    pub async fn create_service(&self, name: &str, origins: &[&str]) -> Result<i64, AnyError> {
        sqlx::query("INSERT INTO services (name, allow_methods) VALUES ($1, '{PUT}')")
            .bind(name)
            .execute(self.store.pool())
            .await?;
        for origin in origins {
            self.insert_origin(name, origin).await?;
        }
        self.bump(name).await
    }

    async fn insert_origin(&self, service: &str, pattern: &str) -> Result<(), AnyError> {
        sqlx::query(
            "INSERT INTO origins (service_id, pattern, status, requested_by, reason)
             SELECT id, $2, 'approved', 'test', 'test' FROM services WHERE name = $1",
        )
        .bind(service)
        .bind(pattern)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// Adds an approved origin and bumps the revision; returns it.
    pub async fn approve_origin(&self, service: &str, pattern: &str) -> Result<i64, AnyError> {
        self.insert_origin(service, pattern).await?;
        self.bump(service).await
    }

    /// Bumps the service's revision (NOTIFY at commit); returns it.
    pub async fn bump(&self, service: &str) -> Result<i64, AnyError> {
        let (revision,): (i64,) = sqlx::query_as(
            "UPDATE services SET revision = nextval('policy_revision_seq') WHERE name = $1 RETURNING revision",
        )
        .bind(service)
        .fetch_one(self.store.pool())
        .await?;
        Ok(revision)
    }

    /// An agent token for `services`, listed in `agent_tokens`.
    pub async fn token(&self, services: &[&str]) -> Result<String, AnyError> {
        self.issue(services, None, true).await
    }

    /// A listed token whose `exp` is `secs` from now.
    pub async fn token_expiring(&self, services: &[&str], secs: i64) -> Result<String, AnyError> {
        self.issue(services, Some(secs), true).await
    }

    /// A correctly signed token with no `agent_tokens` row.
    pub fn unlisted_token(&self, services: &[&str]) -> Result<String, AnyError> {
        Ok(key().sign(&claims(services, None))?)
    }

    async fn issue(
        &self,
        services: &[&str],
        exp_in: Option<i64>,
        listed: bool,
    ) -> Result<String, AnyError> {
        let claims = claims(services, exp_in);
        if listed {
            let id = uuid::Uuid::parse_str(&claims.jti)?;
            sqlx::query("INSERT INTO agent_tokens (id, name, services, created_by) VALUES ($1, $2, $3, 'test')")
                .bind(id)
                .bind(&claims.sub)
                .bind(&claims.services)
                .execute(self.store.pool())
                .await?;
        }
        Ok(key().sign(&claims)?)
    }

    pub async fn revoke_token(&self, token: &str) -> Result<(), AnyError> {
        let claims = key().verify(token, TokenKind::Agent)?;
        sqlx::query("UPDATE agent_tokens SET revoked_at = now() WHERE id = $1")
            .bind(uuid::Uuid::parse_str(&claims.jti)?)
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    pub async fn agent_connected(&self, agent_id: &str) -> Result<bool, AnyError> {
        let row: Option<(bool,)> = sqlx::query_as("SELECT connected FROM agents WHERE id = $1")
            .bind(agent_id)
            .fetch_optional(self.store.pool())
            .await?;
        Ok(row.is_some_and(|r| r.0))
    }

    async fn agent_service(
        &self,
        agent_id: &str,
        service: &str,
    ) -> Option<(Option<i64>, Option<i64>, Option<String>)> {
        sqlx::query_as(
            "SELECT applied_revision, last_nack_revision, last_nack_error
               FROM agent_services WHERE agent_id = $1 AND service = $2",
        )
        .bind(agent_id)
        .bind(service)
        .fetch_optional(self.store.pool())
        .await
        .ok()
        .flatten()
    }

    /// Waits until `agent_services` records the ACK of `revision`.
    pub async fn wait_applied(
        &self,
        agent_id: &str,
        service: &str,
        revision: i64,
    ) -> anyhow::Result<()> {
        eventually(&format!("ACK of {service}@{revision} recorded"), || async {
            self.agent_service(agent_id, service)
                .await
                .is_some_and(|r| r.0 == Some(revision))
        })
        .await
    }

    /// Waits until `agent_services` records a NACK of `revision`; its error.
    pub async fn wait_nack(
        &self,
        agent_id: &str,
        service: &str,
        revision: i64,
    ) -> anyhow::Result<String> {
        eventually(
            &format!("NACK of {service}@{revision} recorded"),
            || async {
                match self.agent_service(agent_id, service).await {
                    Some((_, Some(r), Some(error))) if r == revision => Some(error),
                    _ => None,
                }
            },
        )
        .await
    }

    /// Number of backends of this database currently in LISTEN.
    pub async fn listeners(&self) -> Result<i64, AnyError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        )
        .fetch_one(self.store.pool())
        .await?;
        Ok(n)
    }

    /// Terminates every LISTEN connection to this database; how many.
    pub async fn kill_listeners(&self) -> Result<i64, AnyError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        )
        .fetch_one(self.store.pool())
        .await?;
        Ok(n)
    }
}

fn claims(services: &[&str], exp_in: Option<i64>) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: format!("agent-{}", uuid::Uuid::new_v4().simple()),
        kind: TokenKind::Agent,
        role: None,
        services: services.iter().map(|s| s.to_string()).collect(),
        jti: uuid::Uuid::new_v4().to_string(),
        iat: now,
        exp: exp_in.map(|secs| now + secs),
    }
}

/// A token signed by some other key.
pub fn other_key_token(services: &[&str]) -> Result<String, AnyError> {
    Ok(
        SigningKey::from_bytes(b"some-other-key-0123456789abcdef-xyz")
            .sign(&claims(services, None))?,
    )
}

/// A control-plane node (the shared fixture's [`TestNode`]) on real
/// sockets; these tests talk to its gRPC listener.
pub struct ControlPlane {
    pub addr: SocketAddr,
    /// Where its HTTP API listens.
    pub http: SocketAddr,
    node: TestNode,
}

impl ControlPlane {
    pub async fn start(db: &TestDb, config: GrpcConfig) -> Result<Self, AnyError> {
        Self::start_on(db, config, "127.0.0.1:0".parse()?).await
    }

    /// A node whose gRPC listener is on `addr` (e.g. a stopped one's).
    pub async fn start_on(
        db: &TestDb,
        config: GrpcConfig,
        addr: SocketAddr,
    ) -> Result<Self, AnyError> {
        let options = Options {
            grpc: config,
            ..Options::default()
        };
        let any_http = "127.0.0.1:0".parse()?;
        let node = TestNode::start_at(&db.store, &key(), &options, any_http, addr).await?;
        Ok(Self {
            addr: node.grpc_addr,
            http: node.http_addr,
            node,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts down and waits until every stream is drained.
    pub async fn stop(self) -> Result<(), AnyError> {
        tokio::time::timeout(DEADLINE, self.node.stop()).await??;
        Ok(())
    }
}

/// The real agent sync client with one service handle.
pub struct Agent {
    pub id: String,
    pub handle: PolicyHandle,
    pub status: watch::Receiver<SyncStatus>,
    service: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    _cache: Option<tempfile::TempDir>,
}

impl Agent {
    pub async fn start(
        cp: &ControlPlane,
        token: &str,
        services: &[&str],
        cache: &Path,
    ) -> Result<Self, AnyError> {
        Self::start_at(cp.addr, token, services, cache)
    }

    /// An agent with a cache dir of its own (removed when it is dropped).
    pub async fn fresh(
        cp: &ControlPlane,
        token: &str,
        services: &[&str],
    ) -> Result<Self, AnyError> {
        let dir = tempdir()?;
        let mut agent = Self::start_at(cp.addr, token, services, dir.path())?;
        agent._cache = Some(dir);
        Ok(agent)
    }

    pub fn start_at(
        addr: SocketAddr,
        token: &str,
        services: &[&str],
        cache: &Path,
    ) -> Result<Self, AnyError> {
        let mut config = SyncConfig::new(
            format!("http://{addr}"),
            token,
            "test-agent",
            services.iter().copied(),
            cache,
        );
        config.retry_base = Duration::from_millis(50);
        config.retry_max = Duration::from_millis(500);
        config.refused_base = Duration::from_millis(200);
        config.refused_max = Duration::from_secs(1);
        let service = services[0].to_string();
        let handle = PolicyHandle::new();
        let handles = services
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    if *s == service {
                        handle.clone()
                    } else {
                        PolicyHandle::new()
                    },
                )
            })
            .collect();
        let client = SyncClient::new(config, handles)?;
        let id = client.agent_id().to_string();
        let status = client.status();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = client
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            id,
            handle,
            status,
            service,
            stop,
            task,
            _cache: None,
        })
    }

    pub fn revision(&self, service: &str) -> Option<i64> {
        assert_eq!(service, self.service);
        self.status
            .borrow()
            .services
            .get(service)
            .and_then(|s| s.revision)
    }

    pub fn origins(&self, service: &str) -> Vec<String> {
        assert_eq!(service, self.service);
        self.handle
            .load()
            .map(|p| p.policy.spec().origins.clone())
            .unwrap_or_default()
    }

    pub async fn wait_revision(&self, service: &str, revision: i64) -> anyhow::Result<()> {
        eventually(&format!("agent holds {service}@{revision}"), || async {
            self.revision(service) == Some(revision)
                && (revision == 0 || self.handle.load().is_some_and(|p| p.revision == revision))
        })
        .await
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(DEADLINE, self.task).await;
    }
}

pub fn hello(services: &[&str], held: &[(&str, i64)]) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Hello(Hello {
            agent_id: format!("raw-{}", uuid::Uuid::new_v4().simple()),
            agent_name: "raw".into(),
            version: "test".into(),
            services: services.iter().map(|s| s.to_string()).collect(),
            revisions: held.iter().map(|(s, r)| (s.to_string(), *r)).collect(),
        })),
    }
}

pub fn not_hello() -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Ack(Ack {
            service: "x".into(),
            revision: 1,
        })),
    }
}

/// Opens a raw stream with `first` as the first message (the stream stays
/// open while the returned value lives).
pub async fn raw_stream(
    cp: &ControlPlane,
    token: &str,
    first: AgentMessage,
) -> Result<
    (
        Streaming<corsair_proto::v1::ControlMessage>,
        tokio::sync::mpsc::Sender<AgentMessage>,
    ),
    tonic::Status,
> {
    raw_open(cp, Some(token), first).await
}

/// Like [`raw_stream`], on an existing channel (many streams per connection).
pub async fn raw_stream_on(
    channel: tonic::transport::Channel,
    token: &str,
    first: AgentMessage,
) -> Result<RawStream, tonic::Status> {
    raw_open_on(PolicySyncClient::new(channel), Some(token), first).await
}

pub type RawStream = (
    Streaming<corsair_proto::v1::ControlMessage>,
    tokio::sync::mpsc::Sender<AgentMessage>,
);

async fn raw_open(
    cp: &ControlPlane,
    token: Option<&str>,
    first: AgentMessage,
) -> Result<RawStream, tonic::Status> {
    let client = PolicySyncClient::connect(cp.url())
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    raw_open_on(client, token, first).await
}

async fn raw_open_on(
    mut client: PolicySyncClient<tonic::transport::Channel>,
    token: Option<&str>,
    first: AgentMessage,
) -> Result<RawStream, tonic::Status> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let _ = tx.send(first).await;
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    if let Some(token) = token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| tonic::Status::internal("bad token"))?;
        request.metadata_mut().insert("authorization", value);
    }
    let response = client.sync(request).await?;
    Ok((response.into_inner(), tx))
}

/// The status code a stream opened this way gets (`Ok` if accepted).
pub async fn raw_code(cp: &ControlPlane, token: Option<&str>, first: AgentMessage) -> tonic::Code {
    match raw_open(cp, token, first).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

/// The next snapshot on a raw stream, within [`DEADLINE`].
pub async fn next_snapshot(
    stream: &mut (
        Streaming<corsair_proto::v1::ControlMessage>,
        tokio::sync::mpsc::Sender<AgentMessage>,
    ),
) -> Result<PolicySnapshot, AnyError> {
    let message = tokio::time::timeout(DEADLINE, stream.0.message())
        .await??
        .ok_or("stream ended")?;
    match message.msg {
        Some(control_message::Msg::Snapshot(s)) => Ok(s),
        None => Err("empty message".into()),
    }
}
