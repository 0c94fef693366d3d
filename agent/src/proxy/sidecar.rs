//! The whole sidecar: sync client + proxy + telemetry + admin listener, started together
//! and stopped together. The binary and `corsair-control-plane dev` both run
//! this.

use super::admin::{self, AdminState};
use super::{Proxy, ProxyOptions, serve};
use crate::control_plane::ControlPlaneConfig;
use crate::handle::PolicyHandle;
use crate::metrics::AgentMetrics;
use crate::report::{self, Recorder, ReportConfig, Reporter, UploadTarget};
use crate::sync::{SyncClient, SyncConfig, SyncStatus};
use anyhow::Context;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument;

/// What the sidecar needs besides its listeners.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    /// Where the control plane is and how to authenticate (shared by the
    /// policy stream and telemetry).
    pub control_plane: ControlPlaneConfig,
    /// The service this agent enforces.
    pub service: String,
    /// Where requests are forwarded.
    pub upstream: String,
    /// Last-known-good cache and agent id.
    pub cache_dir: PathBuf,
    /// Name shown in the control plane's agent list.
    pub agent_name: String,
    /// Upstream timeouts, extra CA roots, the drain delay and timeout.
    pub proxy: ProxyOptions,
}

/// Runs the sidecar until `shutdown` completes. The cached policy (if any)
/// is enforced before the first connection attempt; with none the proxy
/// fails closed. Blocked-request telemetry uses the default settings.
pub async fn run(
    config: SidecarConfig,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_report(
        config,
        ReportConfig::default(),
        listener,
        admin_listener,
        shutdown,
    )
    .await
}

/// Like [`run`], with explicit telemetry settings (interval, queue, keys).
pub async fn run_with_report(
    config: SidecarConfig,
    report: ReportConfig,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (upstream, service) = (config.upstream.clone(), config.service.clone());
    let options = config.proxy.clone();
    let front = move |handle: PolicyHandle, reporter: Reporter, stopped: Stopped| {
        let proxy = Proxy::with_options(handle, &upstream, options)
            .context("--upstream")?
            .with_reporter(reporter);
        tracing::info!(
            listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            upstream = %upstream,
            service = %service,
            "agent proxy serving"
        );
        Ok(serve(listener, proxy, stopped).instrument(tracing::info_span!("proxy")))
    };
    run_front(Mode::Proxy, config, report, admin_listener, shutdown, front).await
}

/// Completes once the agent is asked to stop (handed to the front server).
pub(crate) type Stopped = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Which mode's front [`run_front`] runs: its own log lines (no cached
/// policy, shutting down) carry that mode's target, so an operator who
/// filters by target (`RUST_LOG=corsair_agent::authz=info`) finds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The sidecar proxy: `corsair_agent::proxy::sidecar`.
    Proxy,
    /// The authz endpoint: `corsair_agent::authz`.
    Authz,
}

/// A `tracing` event at `$level` under `$mode`'s target (a target must be
/// a constant at each call site, hence one per mode).
macro_rules! mode_event {
    ($mode:expr, $level:ident, $($event:tt)+) => {
        match $mode {
            Mode::Proxy => tracing::$level!(target: "corsair_agent::proxy::sidecar", $($event)+),
            Mode::Authz => tracing::$level!(target: "corsair_agent::authz", $($event)+),
        }
    };
}

/// The part every agent mode shares: sync client, telemetry and admin
/// listener around one front server, which `front` builds from the policy
/// handle and the reporter (the sidecar proxy, or the authz endpoint, as
/// `mode` says for the target of the lines logged here).
/// `config.upstream` and `config.proxy` (but its drain delay, waited for
/// here between `/readyz` turning 503 and the front server being told to
/// stop, and its drain timeout, logged) are only read by `front`.
pub(crate) async fn run_front<F, S>(
    mode: Mode,
    config: SidecarConfig,
    report: ReportConfig,
    admin_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    front: F,
) -> anyhow::Result<()>
where
    F: FnOnce(PolicyHandle, Reporter, Stopped) -> anyhow::Result<S>,
    S: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let handle = PolicyHandle::new();
    let mut sync_config = SyncConfig::for_control_plane(
        config.control_plane.clone(),
        config.agent_name.clone(),
        [config.service.clone()],
        config.cache_dir.clone(),
    );
    sync_config.connect_timeout = std::time::Duration::from_secs(5);
    let client = SyncClient::new(
        sync_config,
        HashMap::from([(config.service.clone(), handle.clone())]),
    )
    .context("starting the policy sync client")?;
    let status = client.status();
    let metrics = AgentMetrics::new();
    let recorder = Recorder::new(report.max_keys);
    recorder.track(handle.clone());
    let target = UploadTarget {
        control_plane: config.control_plane.clone(),
        agent_id: client.agent_id().to_owned(),
        service: config.service.clone(),
        spill_dir: config.cache_dir.join("telemetry"),
    };
    if handle.load().is_none() {
        mode_event!(
            mode,
            warn,
            service = %config.service,
            "no cached policy for this service: failing closed (no CORS grants) until the control plane answers"
        );
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let reporter = Reporter::new(&config.service, recorder.clone(), metrics.clone());
    let front = front(handle.clone(), reporter, Box::pin(stopped()))?;
    // Telemetry has its own stop, given once the front has drained: the
    // front still decides (and counts) requests after it is told to stop
    // (in-flight heads, HTTP/2 streams before GOAWAY, nginx subrequests),
    // and the reporter's final batch must hold those counts too.
    let (report_stop_tx, mut report_stop_rx) = watch::channel(false);
    let report_stopped = async move {
        let _ = report_stop_rx.wait_for(|stop| *stop).await;
    };
    let report_task = tokio::spawn(
        report::run(report, target, recorder, metrics.clone(), report_stopped)
            .instrument(tracing::info_span!("telemetry")),
    );
    let sync_task = tokio::spawn(
        client
            .run(stopped())
            .instrument(tracing::info_span!("sync", service = %config.service)),
    );
    // The admin listener stops last, so `/readyz` says 503 while draining.
    let draining = Arc::new(AtomicBool::new(false));
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
    let admin_task = admin_listener.map(|l| {
        let state = AdminState {
            service: config.service.clone(),
            handle: handle.clone(),
            status: status_fn(status.clone()),
            metrics: Some(metrics_fn(metrics.clone(), status.clone())),
            draining: Arc::clone(&draining),
            head_timeout: config.proxy.head_timeout,
        };
        let mut stop = admin_stop_rx;
        tokio::spawn(admin::serve(l, state, async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }))
    });
    let proxy_task = tokio::spawn(front);

    shutdown.await;
    mode_event!(
        mode,
        info,
        drain_delay = ?config.proxy.drain_delay,
        drain_timeout = ?config.proxy.drain_timeout,
        "agent shutting down: not ready, draining in-flight requests"
    );
    draining.store(true, Ordering::Relaxed);
    // --drain-delay: still accepting while load balancers see the 503.
    tokio::time::sleep(config.proxy.drain_delay).await;
    let _ = stop_tx.send(true);
    let front_result = proxy_task.await;
    // Only once the front has drained (or failed): every decision it made
    // is counted, so the final batch holds them all.
    let _ = report_stop_tx.send(true);
    let report_result = report_task.await;
    let _ = admin_stop_tx.send(true);
    front_result.context("proxy task")?.context("proxy")?;
    report_result
        .context("telemetry task")?
        .context("telemetry")?;
    if let Some(task) = admin_task {
        task.await
            .context("admin task")?
            .context("admin listener")?;
    }
    match sync_task.await.context("sync task")? {
        Ok(()) => Ok(()),
        // A fatal sync error stops syncing, not enforcing; report it on exit.
        Err(e) => Err(e).context("policy sync"),
    }
}

fn metrics_fn(metrics: AgentMetrics, status: watch::Receiver<SyncStatus>) -> admin::MetricsFn {
    Arc::new(move || {
        metrics.observe_sync(&status.borrow());
        metrics.encode()
    })
}

fn status_fn(status: watch::Receiver<SyncStatus>) -> admin::StatusFn {
    Arc::new(move || {
        let s = status.borrow();
        serde_json::json!({
            "connected": s.connected,
            "reconnects": s.reconnects,
            "last_error": s.last_error,
            "stopped": s.stopped,
            "services": s.services.iter().map(|(name, svc)| (name.clone(), serde_json::json!({
                "revision": svc.revision,
                "has_policy": svc.has_policy,
                "source": format!("{:?}", svc.source),
                "last_nack": svc.last_nack.as_ref().map(|(rev, err)| serde_json::json!({"revision": rev, "error": err})),
            }))).collect::<serde_json::Map<_, _>>(),
        })
    })
}
