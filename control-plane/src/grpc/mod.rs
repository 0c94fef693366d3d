//! The gRPC side of the control plane: `corsair.v1.PolicySync`.
//!
//! - [`watch`]: the [`PolicyWatcher`] trait ("load a service's policy and
//!   follow its changes") that the service depends on.
//! - [`pg`]: [`PgPolicyWatcher`], its Postgres implementation (LISTEN/NOTIFY
//!   fan-out, reconnect-and-resync, periodic revision comparison).
//! - [`service`]: [`PolicySyncService`], the tonic service (authentication,
//!   Hello checks, agent records).
//! - `stream`: one agent's stream (snapshots out, ACK/NACK in).
//! - [`revocations`]: revoked agent-token ids fanned out to open streams.
//! - `acks`: the streams' ACKs and heartbeats, written to Postgres in batches.
//! - `auth`, `convert`: bearer-token check; domain → wire conversion.
//!
//! Wiring: [`serve`] runs everything on an already-bound listener until a
//! shutdown future completes, then ends open streams with UNAVAILABLE (agents
//! reconnect, possibly to another replica) and drains them.

mod acks;
pub(crate) mod auth;
mod convert;
pub mod pg;
pub mod revocations;
pub mod service;
mod stream;
pub mod watch;

pub use pg::PgPolicyWatcher;
pub use revocations::Revocations;
pub use service::PolicySyncService;
pub use watch::{PolicyReceiver, PolicyState, PolicyWatcher, WatchError};

use crate::auth::SigningKey;
use crate::store::Store;
use crate::telemetry::TelemetryService;
use crate::tls::Listener;
use corsair_proto::v1::policy_sync_server::PolicySyncServer;
use corsair_proto::v1::telemetry_server::TelemetryServer;
use std::future::Future;
use std::time::Duration;
use tonic::transport::server::TcpIncoming;

/// Tunables of the gRPC server.
#[derive(Debug, Clone)]
pub struct GrpcConfig {
    /// How often every watched service's revision is compared with the
    /// database, in case a notification was missed.
    pub resync_interval: Duration,
    /// How long a new stream may take to send its Hello.
    pub hello_timeout: Duration,
    /// HTTP/2 keepalive ping interval: finds dead agents (and keeps NATs open).
    pub keepalive_interval: Duration,
    /// How long a keepalive ping may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
    /// How often an open stream re-checks its token (revoked or expired
    /// tokens end the stream with UNAUTHENTICATED) and bumps the agent's
    /// `last_seen`. Keep it well under
    /// [`AGENT_STALE_AFTER`](crate::store::agents::AGENT_STALE_AFTER), or
    /// quiet agents read as disconnected.
    pub token_recheck_interval: Duration,
    /// How long a stream may stay open before it is ended with UNAVAILABLE
    /// ("reconnect") so that its agent reconnects, through the load
    /// balancer, maybe to another replica: after a scale-up, streams spread
    /// over the new replicas within about this long. Each stream's age is
    /// jittered by ±[`MAX_STREAM_AGE_JITTER`] so a fleet that connected at
    /// once does not reconnect at once. `None`: streams live until the
    /// agent or the replica goes away.
    pub max_stream_age: Option<Duration>,
}

/// The share by which each stream's [`GrpcConfig::max_stream_age`] is
/// randomly shortened or lengthened (0.1: ±10 %).
pub const MAX_STREAM_AGE_JITTER: f64 = 0.1;

impl GrpcConfig {
    /// This stream's maximum age: [`Self::max_stream_age`] with jitter.
    pub(crate) fn stream_age(&self) -> Option<Duration> {
        self.max_stream_age.map(|age| {
            let factor = 1.0 + MAX_STREAM_AGE_JITTER * (2.0 * rand::random::<f64>() - 1.0);
            age.mul_f64(factor)
        })
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(30),
            hello_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            token_recheck_interval: Duration::from_secs(60),
            max_stream_age: None,
        }
    }
}

/// Errors from the gRPC server.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `PolicySync` on `listener` (plain or TLS) until `shutdown` completes, with a
/// [`PgPolicyWatcher`] on `store` (started here, stopped on return) that
/// also cuts the streams of revoked agent tokens. Open streams are ended
/// with UNAVAILABLE and drained before this returns.
pub async fn serve(
    listener: impl Into<Listener>,
    store: Store,
    keys: SigningKey,
    config: GrpcConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GrpcError> {
    let revocations = Revocations::new();
    let watcher = PgPolicyWatcher::with_revocations(store.clone(), revocations.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher_task = tokio::spawn(
        watcher
            .clone()
            .run(config.resync_interval, async {
                let _ = stop_rx.await;
            })
            .instrument(tracing::info_span!("policy_watcher")),
    );
    let result = serve_with_watcher(
        listener,
        watcher,
        revocations,
        store,
        keys,
        config,
        shutdown,
    )
    .await;
    let _ = stop_tx.send(());
    let _ = watcher_task.await;
    result
}

/// Like [`serve`], with any [`PolicyWatcher`] (the caller keeps it current,
/// and publishes agent-token revocations to `revocations`).
pub async fn serve_with_watcher<W: PolicyWatcher>(
    listener: impl Into<Listener>,
    watcher: W,
    revocations: Revocations,
    store: Store,
    keys: SigningKey,
    config: GrpcConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GrpcError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (drain_tx, mut drained) = tokio::sync::mpsc::channel::<()>(1);
    let service = PolicySyncService::new(
        watcher,
        revocations,
        store.clone(),
        keys.clone(),
        config.clone(),
        stop_rx,
        drain_tx.downgrade(),
    );
    let stop = &stop_tx;
    let signal = async move {
        shutdown.await;
        tracing::info!("gRPC server shutting down; draining agent streams");
        let _ = stop.send(true);
    };
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(config.keepalive_interval))
        .http2_keepalive_timeout(Some(config.keepalive_timeout))
        .add_service(PolicySyncServer::new(service))
        .add_service(TelemetryServer::new(TelemetryService::new(store, keys)));
    let result = match listener.into() {
        Listener::Plain(tcp) => {
            let incoming = TcpIncoming::from(tcp).with_nodelay(Some(true));
            router.serve_with_incoming_shutdown(incoming, signal).await
        }
        Listener::Tls(tls) => {
            router
                .serve_with_incoming_shutdown(tls.into_stream(), signal)
                .await
        }
    };
    // Streams finish their bookkeeping (disconnect records) before we
    // return, also when the server failed rather than being shut down.
    let _ = stop_tx.send(true);
    drop(drain_tx);
    while drained.recv().await.is_some() {}
    result?;
    Ok(())
}

use tracing::Instrument as _;
