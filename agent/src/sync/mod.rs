//! The `PolicySync` client: keeps each service's [`PolicyHandle`] current.
//!
//! - `client`: the API call — opens the stream with a Hello, yields domain
//!   [`Snapshot`]s, sends ACK/NACKs.
//! - `publish`: compiles a snapshot and swaps it into the handle (or NACKs and
//!   keeps the old policy), writes the last-known-good cache, keeps [`SyncStatus`].
//! - [`recovery`]: what each kind of failure means for the stream: retry /
//!   refused / fatal (the kinds and the jittered backoff are the ones
//!   [`crate::control_plane`] gives every control-plane call).
//! - [`cache`]: the last-known-good cache files and the stable agent id.
//! - [`snapshot`], [`status`]: domain types.
//!
//! Typical use (the proxy binary):
//!
//! ```no_run
//! # async fn demo() -> Result<(), corsair_agent::sync::SyncError> {
//! use corsair_agent::{handle::PolicyHandle, sync::{SyncClient, SyncConfig}};
//! let handle = PolicyHandle::new();
//! let config = SyncConfig::new("http://cp:50051", "TOKEN", "gw-1", ["payments"], "/var/cache/corsair");
//! // Loads the cache into the handles at once: enforcing before any network.
//! let client = SyncClient::new(config, [("payments".to_string(), handle.clone())].into())?;
//! let status = client.status(); // watch::Receiver<SyncStatus> for /healthz
//! tokio::spawn(client.run(async { let _ = tokio::signal::ctrl_c().await; }));
//! # Ok(()) }
//! ```

pub mod cache;
mod client;
mod publish;
pub mod recovery;
pub mod snapshot;
pub mod status;

pub use crate::control_plane::ConfigError;
pub use snapshot::Snapshot;
pub use status::{PolicySource, ServiceStatus, SyncStatus};

use crate::control_plane::Backoff;
use crate::control_plane::ControlPlaneConfig;
use crate::handle::PolicyHandle;
use corsair_proto::v1::Hello;
use publish::Publisher;
use recovery::{Recovery, recovery};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::Status;
use tracing::{Instrument, error, info, info_span, warn};

/// How often a refused agent looks at its token file for a rotated token.
const TOKEN_POLL: Duration = Duration::from_secs(1);

/// What the sync client needs to know.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Where the control plane is and how to authenticate (URL, token or
    /// token file, TLS files).
    pub control_plane: ControlPlaneConfig,
    /// Human-readable agent name (host or pod name).
    pub agent_name: String,
    /// Services this agent enforces (each needs a handle).
    pub services: Vec<String>,
    /// Last-known-good cache and agent id live here.
    pub cache_dir: PathBuf,
    /// Backoff after transient failures: first delay.
    pub retry_base: Duration,
    /// Backoff after transient failures: longest delay.
    pub retry_max: Duration,
    /// Backoff after the control plane refused the token: first delay.
    pub refused_base: Duration,
    /// Backoff after the control plane refused the token: longest delay.
    pub refused_max: Duration,
    /// A stream that stayed open this long resets the backoff.
    pub healthy_after: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
}

impl SyncConfig {
    /// A config with default timings (retry 250 ms doubling to 30 s; after an
    /// auth refusal 30 s doubling to 5 min, cut short when a token file
    /// changes; healthy after 10 s), an inline token and default TLS.
    pub fn new(
        control_plane_url: impl Into<String>,
        token: impl Into<String>,
        agent_name: impl Into<String>,
        services: impl IntoIterator<Item = impl Into<String>>,
        cache_dir: impl Into<PathBuf>,
    ) -> Self {
        Self::for_control_plane(
            ControlPlaneConfig::new(control_plane_url, token),
            agent_name,
            services,
            cache_dir,
        )
    }

    /// Like [`SyncConfig::new`], with full connection settings (token
    /// file, TLS files).
    pub fn for_control_plane(
        control_plane: ControlPlaneConfig,
        agent_name: impl Into<String>,
        services: impl IntoIterator<Item = impl Into<String>>,
        cache_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            control_plane,
            agent_name: agent_name.into(),
            services: services.into_iter().map(Into::into).collect(),
            cache_dir: cache_dir.into(),
            retry_base: Duration::from_millis(250),
            retry_max: Duration::from_secs(30),
            refused_base: Duration::from_secs(30),
            refused_max: Duration::from_secs(300),
            healthy_after: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Why syncing cannot start or stopped for good. Policies already in the
/// handles stay in force either way.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Unusable URL or token.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A service without a handle, or no services.
    #[error("{0}")]
    Services(String),
    /// The cache dir (agent id) is unusable.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    /// The control plane answered with an error retrying cannot fix.
    #[error("control plane refused the stream for good: {0}")]
    Fatal(Status),
}

/// The sync client. [`SyncClient::new`] loads the cache;
/// [`SyncClient::run`] keeps the stream up until shutdown.
#[derive(Debug)]
pub struct SyncClient {
    config: SyncConfig,
    agent_id: String,
    connector: client::Connector,
    publisher: Publisher,
}

impl SyncClient {
    /// Checks the config, loads the agent id and applies every usable
    /// cached policy to `handles` (keyed by service name; one per
    /// `config.services`), so the agent enforces before it ever connects.
    pub fn new(
        config: SyncConfig,
        handles: HashMap<String, PolicyHandle>,
    ) -> Result<Self, SyncError> {
        if config.services.is_empty() {
            return Err(SyncError::Services("no services configured".into()));
        }
        let mut ours = HashMap::new();
        for service in &config.services {
            let handle = handles.get(service).ok_or_else(|| {
                SyncError::Services(format!("no policy handle for service {service:?}"))
            })?;
            ours.insert(service.clone(), handle.clone());
        }
        let connector =
            client::Connector::new(config.control_plane.clone(), config.connect_timeout)?;
        let agent_id = cache::agent_id(&config.cache_dir)?;
        let publisher = Publisher::new(ours, config.cache_dir.clone());
        let loaded = publisher.load_cache();
        info!(%agent_id, cached = ?loaded, "sync client ready");
        Ok(Self {
            config,
            agent_id,
            connector,
            publisher,
        })
    }

    /// The status, for readiness and health endpoints.
    pub fn status(&self) -> watch::Receiver<SyncStatus> {
        self.publisher.status().subscribe()
    }

    /// This agent's stable id (persisted in the cache dir).
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// Keeps the stream up (reconnecting forever on transient errors, slowly
    /// after auth refusals) until `shutdown` completes. Returns `Err` only on
    /// a [`Recovery::Fatal`] status; the handles keep their policies.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), SyncError> {
        let span = info_span!("policy_sync", agent_id = %self.agent_id, url = %self.config.control_plane.url);
        self.run_inner(shutdown).instrument(span).await
    }

    async fn run_inner(self, shutdown: impl Future<Output = ()>) -> Result<(), SyncError> {
        tokio::pin!(shutdown);
        let mut retry = Backoff::new(self.config.retry_base, self.config.retry_max);
        let mut refused = Backoff::new(self.config.refused_base, self.config.refused_max);
        let status = self.publisher.status();
        let mut attempt: u64 = 0;
        loop {
            status.send_modify(|s| {
                s.reconnects += u64::from(attempt > 0);
                s.last_attempt = Some(std::time::Instant::now());
            });
            attempt += 1;
            let mut established = None;
            let failure = tokio::select! {
                failure = self.session(&mut established) => failure,
                () = &mut shutdown => {
                    info!("policy sync stopped");
                    status.send_modify(|s| s.connected = false);
                    return Ok(());
                }
            };
            status.send_modify(|s| {
                s.connected = false;
                s.last_error = Some(format!("{:?}: {}", failure.code(), failure.message()));
            });
            if established.is_some_and(|at: Instant| at.elapsed() >= self.config.healthy_after) {
                retry.reset();
                refused.reset();
            }
            let delay = match recovery(failure.code()) {
                Recovery::Retry => {
                    // A stream ended on purpose is no failure: reconnect
                    // after the first (jittered) delay, however short the
                    // stream was.
                    let handover = handover(&failure);
                    if handover.is_some() {
                        retry.reset();
                    }
                    let delay = retry.next_delay();
                    match handover {
                        Some(why) => info!(
                            reason = why,
                            ?delay,
                            "control plane ended the policy stream on purpose; reconnecting"
                        ),
                        None => warn!(code = ?failure.code(), message = failure.message(), ?delay,
                            "policy stream down; reconnecting"),
                    }
                    delay
                }
                Recovery::Refused => {
                    let delay = refused.next_delay();
                    error!(code = ?failure.code(), message = failure.message(), ?delay,
                        "CONTROL PLANE REFUSED THIS AGENT (check its token and service scope); \
                         still enforcing the last-known-good policy; retrying");
                    delay
                }
                Recovery::Fatal => {
                    error!(code = ?failure.code(), message = failure.message(),
                        "policy sync stopped for good; still enforcing the last-known-good policy");
                    status.send_modify(|s| s.stopped = true);
                    return Err(SyncError::Fatal(failure));
                }
            };
            let refused_now = recovery(failure.code()) == Recovery::Refused;
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                // A refused token that an operator rotates in its file is
                // tried at once, not after the slow refusal backoff.
                () = self.token_rotated(), if refused_now => {
                    info!("agent token file changed; reconnecting now");
                    refused.reset();
                }
                () = &mut shutdown => {
                    info!("policy sync stopped");
                    return Ok(());
                }
            }
        }
    }

    /// Completes once the token file holds a token other than the one last
    /// sent (never, for an inline token).
    async fn token_rotated(&self) {
        if self.config.control_plane.token.file().is_none() {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(TOKEN_POLL).await;
            if self.connector.token_changed() {
                return;
            }
        }
    }

    /// One stream, from connect to failure. Sets `established` once open.
    async fn session(&self, established: &mut Option<Instant>) -> Status {
        let hello = Hello {
            agent_id: self.agent_id.clone(),
            agent_name: self.config.agent_name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            services: self.publisher.services().cloned().collect(),
            revisions: self.publisher.held(),
        };
        let (mut snapshots, replies) = match self.connector.open(hello).await {
            Ok(open) => open,
            Err(status) => return status,
        };
        *established = Some(Instant::now());
        self.publisher.status().send_modify(|s| s.connected = true);
        info!("policy stream open");
        loop {
            let snapshot = match snapshots.next().await {
                Ok(Some(snapshot)) => snapshot,
                Ok(None) => return Status::unavailable("control plane ended the stream"),
                Err(status) => return status,
            };
            let reply = match snapshot {
                Err(malformed) => {
                    let error = malformed.to_string();
                    self.publisher
                        .refused(&malformed.service, malformed.revision, &error);
                    replies
                        .nack(&malformed.service, malformed.revision, &error)
                        .await
                }
                Ok(snapshot) => match self.publisher.apply(&snapshot, PolicySource::ControlPlane) {
                    Ok(()) => {
                        let (service, revision) = (snapshot.service.clone(), snapshot.revision);
                        self.publisher.persist(snapshot).await;
                        replies.ack(&service, revision).await
                    }
                    Err(error) => {
                        self.publisher
                            .refused(&snapshot.service, snapshot.revision, &error);
                        replies
                            .nack(&snapshot.service, snapshot.revision, &error)
                            .await
                    }
                },
            };
            if let Err(status) = reply {
                return status;
            }
        }
    }
}

/// Convenience: [`SyncClient::new`] then [`SyncClient::run`].
pub async fn run(
    config: SyncConfig,
    handles: HashMap<String, PolicyHandle>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SyncError> {
    SyncClient::new(config, handles)?.run(shutdown).await
}

/// Applies every usable cached policy in `cache_dir` to `handles` (without
/// syncing) and returns the revisions loaded. [`SyncClient::new`] does this
/// itself; use this only to enforce the cache without a control plane.
pub fn load_cache(
    cache_dir: &Path,
    handles: &HashMap<String, PolicyHandle>,
) -> HashMap<String, i64> {
    let publisher = Publisher::new(handles.clone(), cache_dir.to_path_buf());
    publisher.load_cache()
}

/// Why the control plane ended the stream on purpose
/// ([`corsair_proto::HANDOVER_METADATA`]), if it did.
fn handover(status: &tonic::Status) -> Option<&str> {
    status
        .metadata()
        .get(corsair_proto::HANDOVER_METADATA)
        .and_then(|v| v.to_str().ok())
}
