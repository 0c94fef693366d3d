//! Serving: HTTP (and, next to it, gRPC) on already-bound listeners, with
//! graceful shutdown.
//!
//! Binding is the caller's job so tests can bind port 0 and read the port
//! before anything serves, and so `serve` fails fast on a taken port.

use crate::api;
use crate::state::AppState;
use crate::store::Store;
use crate::tls::Listener;
use axum::Router;
use axum::serve::ListenerExt as _;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

/// The whole HTTP application: the API, the admin UI and the probes, with
/// request tracing. Unknown paths under `/api/` get the API's JSON 404.
///
/// Every response carries the UI's security headers
/// ([`crate::ui::headers`]), HSTS too when `state.secure_cookies` is set.
pub fn http_app(state: AppState) -> Router {
    let hsts = state.secure_cookies;
    let app = api::router()
        .merge(crate::ui::router())
        .merge(crate::health::router())
        .route("/metrics", axum::routing::get(crate::metrics::handler))
        .fallback(not_found)
        .with_state(state);
    crate::ui::headers::with_security_headers(app, hsts)
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .layer(TraceLayer::new_for_http())
}

async fn not_found(uri: http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let error = api::Error::NotFound(format!("no route for {}", uri.path()));
    if uri.path().starts_with("/api/") {
        error.into_response()
    } else {
        crate::ui::error_page(None, &error)
    }
}

/// Serves `app` on `listener` (plain or TLS) until `shutdown` completes,
/// then lets in-flight requests finish.
pub async fn serve_http<F>(
    listener: impl Into<Listener>,
    app: Router,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = listener.into();
    if let Ok(addr) = listener.local_addr() {
        let tls = matches!(listener, Listener::Tls(_));
        tracing::info!(%addr, tls, "HTTP API listening");
    }
    // Connect info gives login throttling the client's address.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    match listener {
        Listener::Plain(tcp) => axum::serve(tcp, app).with_graceful_shutdown(shutdown).await,
        // `tap_io` is what lets axum hand out the peer `SocketAddr` as
        // connect info for a listener of our own.
        Listener::Tls(tls) => {
            axum::serve(tls.tap_io(|_| ()), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// Completes on Ctrl-C or SIGTERM (what Kubernetes sends).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}

/// One shutdown trigger shared by several servers (HTTP, gRPC): each
/// [`Shutdown::wait`] future completes once [`Shutdown::trigger`] is called
/// or the `Shutdown` is dropped.
#[derive(Debug)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A trigger not yet pulled.
    pub fn new() -> Self {
        Self {
            tx: watch::channel(false).0,
        }
    }

    /// Starts shutdown everywhere.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// A future for one server's shutdown parameter.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            // Err means the sender is gone: shut down too.
            let _ = rx.wait_for(|down| *down).await;
        }
    }
}

/// How often [`run_expiry`] looks for expired grants in `serve`.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(15);

/// Revokes expired origins every `interval` until `shutdown` completes, so
/// their removal reaches agents as a revision change. Errors are logged and
/// retried on the next tick.
pub async fn run_expiry<F>(store: Store, interval: Duration, shutdown: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        match store.expire_origins().await {
            Ok(revoked) => {
                for o in revoked {
                    tracing::info!(service = %o.service, origin = %o.pattern, id = o.id, "expired origin revoked");
                }
            }
            Err(e) => tracing::warn!(error = %e, "expiring origins failed; retrying"),
        }
    }
}
