//! Authz mode: a decision endpoint for gateways that call out before
//! forwarding — nginx `auth_request` (deploy/nginx/) — instead of the
//! agent proxying the traffic itself.
//!
//! The same engine decision as the sidecar, the same metrics and
//! blocked-request telemetry; only the answer's shape differs:
//!
//! - [`answer`]: [`Authz`], one gateway request → one decision, in the
//!   `auth_request` dialect (200 = forward with these headers, 403 = answer
//!   the client with `X-Corsair-Status` and these headers).
//! - [`serve`] / [`run`]: the listener, and the whole agent (sync client,
//!   telemetry, admin listener) around it.

pub mod answer;

pub use answer::Authz;

use crate::control_plane::ControlPlaneConfig;
use crate::proxy::ProxyOptions;
use crate::proxy::sidecar::{self, SidecarConfig};
use crate::report::ReportConfig;
use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::Instrument;

/// What the authz agent needs besides its listeners (the sidecar's
/// settings without an upstream: the gateway forwards, not the agent).
#[derive(Debug, Clone)]
pub struct AuthzConfig {
    /// Where the control plane is and how to authenticate (policy stream
    /// and telemetry).
    pub control_plane: ControlPlaneConfig,
    /// The service whose policy the endpoint enforces.
    pub service: String,
    /// Last-known-good policy cache, agent id and telemetry spill directory.
    pub cache_dir: PathBuf,
    /// Name shown in the control plane's agent list.
    pub agent_name: String,
    /// How long in-flight decision requests may take to finish after
    /// shutdown is asked for (`/readyz` answers 503 meanwhile).
    pub drain_timeout: Duration,
    /// After shutdown is asked for: how long decision requests are still
    /// accepted (`/readyz` already 503) before the listener closes.
    pub drain_delay: Duration,
    /// How long a connection (endpoint and admin listener) may take to
    /// send a request head, idle keep-alive time included, or the HTTP/2
    /// preface, and how long an HTTP/2 connection may stay without a
    /// request in flight (`--head-timeout`, as the proxy's).
    pub head_timeout: Duration,
}

/// Runs the authz agent until `shutdown` completes: the cached policy (if
/// any) is enforced at once, the sync client keeps it current, refusals are
/// counted and uploaded, `/healthz`, `/readyz` and `/metrics` are served on
/// `admin_listener`, and gateway requests are answered on `listener`.
pub async fn run(
    config: AuthzConfig,
    report: ReportConfig,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let agent = SidecarConfig {
        control_plane: config.control_plane,
        service: config.service.clone(),
        upstream: String::new(),
        cache_dir: config.cache_dir,
        agent_name: config.agent_name,
        proxy: ProxyOptions {
            drain_timeout: config.drain_timeout,
            drain_delay: config.drain_delay,
            head_timeout: config.head_timeout,
            ..ProxyOptions::default()
        },
    };
    let (drain_timeout, head_timeout) = (config.drain_timeout, config.head_timeout);
    let front = move |handle, reporter, stopped: sidecar::Stopped| {
        tracing::info!(
            listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            service = %config.service,
            "agent authz endpoint serving"
        );
        let authz = Authz::new(handle).with_reporter(reporter);
        let serving = serve(listener, authz, drain_timeout, head_timeout, stopped);
        Ok(serving.instrument(tracing::info_span!("authz")))
    };
    let mode = sidecar::Mode::Authz;
    sidecar::run_front(mode, agent, report, admin_listener, shutdown, front).await
}

/// Serves `authz` (HTTP/1.1 and HTTP/2, keep-alive) on an already-bound
/// listener until `shutdown` resolves, then lets open connections finish
/// for up to `drain_timeout` before closing them. `head_timeout` bounds
/// the wait for a request head (or the HTTP/2 preface) and an HTTP/2
/// connection's time without a request in flight, as
/// [`crate::proxy::serve_connections`] says.
pub async fn serve(
    listener: TcpListener,
    authz: Authz,
    drain_timeout: Duration,
    head_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let authz = Arc::new(authz);
    crate::proxy::serve_connections(
        listener,
        drain_timeout,
        head_timeout,
        shutdown,
        move |_peer| {
            let authz = Arc::clone(&authz);
            hyper::service::service_fn(move |req| {
                let response = authz.answer(&req);
                async move { Ok::<_, Infallible>(response) }
            })
        },
    )
    .await
}
