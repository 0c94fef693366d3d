//! One control-plane node: the HTTP API, the `PolicySync` gRPC server and the
//! background jobs, on already-bound listeners, stopped together.
//! `serve`, `dev` and the end-to-end tests all run this.

use crate::auth::SigningKey;
use crate::grpc::{self, GrpcConfig};
use crate::server::{self, Shutdown};
use crate::state::{AppState, SignIn};
use crate::store::Store;
use crate::telemetry::{self, RetentionConfig};
use crate::tls::{Listener, ServerTls, Side};
use anyhow::{Context, bail};
use std::future::Future;
use tokio::net::TcpListener;
use tracing::Instrument as _;

/// Everything a node runs on.
#[derive(Debug)]
pub struct Node {
    /// The database (migrated).
    pub store: Store,
    /// Signs and verifies tokens.
    pub keys: SigningKey,
    /// Bound listener for HTTP (API and UI).
    pub http: TcpListener,
    /// Bound listener for gRPC (agents).
    pub grpc: TcpListener,
    /// gRPC tunables.
    pub grpc_config: GrpcConfig,
    /// Let a user approve their own requests (`--single-operator`).
    pub single_operator: bool,
    /// Mark session cookies `Secure` (`--secure-cookies`).
    pub secure_cookies: bool,
    /// Blocked-request telemetry retention (`--blocked-retention-days`).
    pub retention: RetentionConfig,
    /// How people sign in (passwords, the OpenID Connect provider).
    pub sign_in: SignIn,
    /// How long one read of the audit figures serves `/metrics`
    /// ([`crate::metrics::audit_figures::AUDIT_READ_INTERVAL`] outside tests).
    pub audit_read_interval: std::time::Duration,
}

/// TLS for both of a node's listeners.
#[derive(Debug, Clone)]
pub struct NodeTls {
    /// Certificates (and client CA), loaded.
    pub config: ServerTls,
    /// How often the files are re-read (`--tls-reload-interval`).
    pub reload_interval: std::time::Duration,
}

impl Node {
    /// Runs until `shutdown` completes (or a server fails), then drains:
    /// in-flight HTTP requests finish and agent streams are closed with
    /// UNAVAILABLE so agents reconnect elsewhere.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        self.run_with_tls(None, shutdown).await
    }

    /// Like [`Node::run`], serving both listeners over TLS when `tls` is
    /// given (`serve --tls-*`): its files are re-read every
    /// `tls.interval`, and a renewed certificate is used by new handshakes
    /// while open connections keep theirs.
    pub async fn run_with_tls(
        self,
        tls: Option<NodeTls>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let Node {
            store,
            keys,
            http,
            grpc,
            grpc_config,
            single_operator,
            secure_cookies,
            retention,
            sign_in,
            audit_read_interval,
        } = self;
        if let (Ok(h), Ok(g)) = (http.local_addr(), grpc.local_addr()) {
            tracing::info!(http = %h, grpc = %g, tls = tls.is_some(), "control plane serving");
        }
        let stop = Shutdown::new();
        let server_tls = tls.as_ref().map(|t| &t.config);
        let http = Listener::new(http, server_tls, Side::Http);
        let grpc = Listener::new(grpc, server_tls, Side::Grpc);
        let reload = tls.map(|t| {
            tokio::spawn(
                t.config
                    .watch(t.reload_interval, stop.wait())
                    .instrument(tracing::info_span!("tls_reload")),
            )
        });
        let state = AppState::new(store.clone(), keys.clone())
            .with_single_operator(single_operator)
            .with_secure_cookies(secure_cookies)
            .with_sign_in(sign_in)
            .with_audit_read_interval(audit_read_interval);
        let expiry = tokio::spawn(
            server::run_expiry(store.clone(), server::EXPIRY_INTERVAL, stop.wait())
                .instrument(tracing::info_span!("expiry")),
        );
        let retention = tokio::spawn(
            telemetry::run_retention(store.clone(), retention, stop.wait())
                .instrument(tracing::info_span!("blocked_retention")),
        );
        let mut http_task = tokio::spawn(
            server::serve_http(http, server::http_app(state), stop.wait())
                .instrument(tracing::info_span!("http")),
        );
        let mut grpc_task = tokio::spawn(
            grpc::serve(grpc, store, keys, grpc_config, stop.wait())
                .instrument(tracing::info_span!("grpc")),
        );

        let failure = tokio::select! {
            () = shutdown => None,
            result = &mut http_task => Some(("HTTP", result.map(|r| r.map_err(anyhow::Error::from)))),
            result = &mut grpc_task => Some(("gRPC", result.map(|r| r.map_err(anyhow::Error::from)))),
        };
        stop.trigger();
        if let Some((which, result)) = failure {
            let _ = expiry.await;
            let _ = retention.await;
            if let Some(reload) = reload {
                let _ = reload.await;
            }
            result.with_context(|| format!("{which} server task"))??;
            bail!("{which} server stopped unexpectedly");
        }
        http_task
            .await
            .context("HTTP server task")?
            .context("HTTP server")?;
        grpc_task
            .await
            .context("gRPC server task")?
            .context("gRPC server")?;
        expiry.await.context("expiry task")?;
        retention.await.context("retention task")?;
        if let Some(reload) = reload {
            reload.await.context("TLS reload task")?;
        }
        tracing::info!("control plane stopped");
        Ok(())
    }
}
