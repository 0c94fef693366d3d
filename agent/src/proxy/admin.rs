//! The admin listener: `/healthz` (liveness, with status) and `/readyz`
//! (ready only once a policy is loaded — without one the agent fails closed
//! — and not while draining at shutdown) and `/metrics` (Prometheus text).

use super::listen;
use crate::handle::PolicyHandle;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

/// Extra status fields (e.g. the sync stream's state) for `/healthz`.
pub type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What the admin endpoints report on.
#[derive(Clone)]
pub struct AdminState {
    /// The service this agent enforces.
    pub service: String,
    /// Its current policy.
    pub handle: PolicyHandle,
    /// Extra status fields.
    pub status: StatusFn,
    /// Prometheus text for `/metrics` (none: 404).
    pub metrics: Option<MetricsFn>,
    /// Set once shutdown has begun: `/readyz` answers 503 from then on, so
    /// load balancers stop sending while in-flight requests finish.
    pub draining: Arc<AtomicBool>,
    /// How long a client may take to send a request head (and to wait
    /// between requests) before its connection is closed: the proxy's
    /// `--head-timeout`, so a stalled client holds no admin connection
    /// either.
    pub head_timeout: Duration,
}

/// Renders the Prometheus text exposition for `/metrics`.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

impl AdminState {
    fn report(&self) -> (bool, serde_json::Value) {
        let active = self.handle.load();
        let draining = self.draining.load(Ordering::Relaxed);
        let ready = active.is_some() && !draining;
        let body = serde_json::json!({
            "service": self.service,
            "ready": ready,
            "draining": draining,
            "revision": active.as_ref().map(|a| a.revision),
            "enforcing": if ready { "policy" } else { "no policy: failing closed (no CORS grants)" },
            "sync": (self.status)(),
        });
        (ready, body)
    }

    fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if let (&Method::GET, "/metrics", Some(metrics)) =
            (req.method(), req.uri().path(), &self.metrics)
        {
            let mut response = Response::new(Full::new(Bytes::from(metrics())));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            return response;
        }
        let (status, body) = match (req.method(), req.uri().path()) {
            (&Method::GET, "/healthz") => (StatusCode::OK, self.report().1),
            (&Method::GET, "/readyz") => {
                let (ready, body) = self.report();
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (status, body)
            }
            _ => (
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": "try /healthz, /readyz or /metrics"}),
            ),
        };
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Serves the admin endpoints until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let builder = Arc::new(listen::builder(state.head_timeout));
    let state = Arc::new(state);
    listen::accept_loop(listener, shutdown, |mut stream, _| {
        let state = Arc::clone(&state);
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let head_timeout = state.head_timeout;
            let sniffed = listen::sniff(
                &mut stream,
                Bytes::new(),
                head_timeout,
                std::future::pending(),
            );
            let Some(read) = sniffed.await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let response = state.respond(&req);
                async move { Ok::<_, Infallible>(response) }
            });
            // hyper has no idle limit for HTTP/2 (see `listen`).
            let (service, idle) = listen::idle_limit(&read, head_timeout, service);
            let io = TokioIo::new(super::h1::rewind::Rewind::new(stream, read));
            let conn = builder.serve_connection(io, service);
            // Not drained: the admin listener stops last, after the front.
            let _ = listen::Served::new(conn, std::future::pending(), idle).await;
        });
    })
    .await;
    Ok(())
}
