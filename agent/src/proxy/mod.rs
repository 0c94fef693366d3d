//! Sidecar mode: a small reverse proxy that enforces the current policy in
//! front of one upstream.
//!
//! Preflights (and strict-mode blocks) are answered here and never reach the
//! upstream; everything else is forwarded and the engine's headers are
//! applied to the upstream's response.
//!
//! - [`forward`]: request/response rewriting for the hop to the upstream.
//! - [`upgrade`]: WebSocket (and other HTTP/1.1 upgrade) tunnelling.
//! - [`admin`]: `/healthz`, `/readyz` and `/metrics` on the admin listener.
//! - [`sidecar`]: sync client + proxy + admin, run together (binary and `dev`).

pub mod admin;
pub mod forward;
pub mod sidecar;
pub mod upgrade;

use crate::engine::{Decision, RequestParts};
use crate::handle::PolicyHandle;
use crate::report::Reporter;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::Instrument;

/// The body type the proxy answers with.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// How long open connections may take to finish after shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// One proxy: a policy handle and where to forward.
#[derive(Debug, Clone)]
pub struct Proxy {
    handle: PolicyHandle,
    upstream: forward::Upstream,
    client: Client<HttpConnector, Incoming>,
    reporter: Option<Reporter>,
}

impl Proxy {
    /// A proxy that enforces `handle`'s policy in front of `upstream`
    /// (`http://host:port`, optionally with a base path).
    pub fn new(handle: PolicyHandle, upstream: &str) -> Result<Self, forward::UpstreamError> {
        let upstream = forward::Upstream::parse(upstream)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            handle,
            upstream,
            client,
            reporter: None,
        })
    }

    /// Counts every decision (metrics) and blocked ones (telemetry) in `reporter`.
    pub fn with_reporter(mut self, reporter: Reporter) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// Handles one request from `client`: decide, answer locally or forward
    /// (with `X-Forwarded-*` headers naming the client), apply headers.
    pub async fn handle(&self, mut req: Request<Incoming>, client: IpAddr) -> Response<ProxyBody> {
        let upgrade = upgrade::requested(&req);
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let active = self.handle.load();
        let (parts, body) = req.into_parts();
        let request = RequestParts {
            method: &parts.method,
            headers: &parts.headers,
        };
        let decision = match active.as_deref() {
            Some(active) => active.policy.evaluate(&request),
            None => Decision::no_policy(&request),
        };
        if let Some(reporter) = &self.reporter {
            reporter.observe(&request, &decision);
        }
        if let Some(reason) = decision.reason() {
            tracing::debug!(
                method = %parts.method,
                path = parts.uri.path(),
                reason = reason.as_str(),
                would_block = decision.would_block(),
                "CORS request not granted"
            );
        }
        if let Some(status) = decision.local_response() {
            let mut response = Response::new(empty());
            *response.status_mut() = status;
            decision.apply(response.headers_mut());
            return response;
        }
        let upstream_req = match self.upstream.rewrite(Request::from_parts(parts, body)) {
            Ok(mut r) => {
                forward::add_forwarded(r.headers_mut(), client);
                if let Some(upgrade) = upgrade {
                    upgrade::restore(r.headers_mut(), upgrade);
                }
                r
            }
            Err(e) => return error_response(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        match self.client.request(upstream_req).await {
            Ok(mut response) => {
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    let Some(client_upgrade) = client_upgrade else {
                        tracing::warn!(upstream = %self.upstream, "upstream switched protocols unasked");
                        return error_response(
                            StatusCode::BAD_GATEWAY,
                            "corsair-agent: the upstream switched protocols without being asked",
                        );
                    };
                    upgrade::splice(client_upgrade, hyper::upgrade::on(&mut response));
                    // The 101 keeps its Connection/Upgrade headers: they
                    // are what the client asked for.
                    let (mut parts, _) = response.into_parts();
                    decision.apply(&mut parts.headers);
                    return Response::from_parts(parts, empty());
                }
                let (mut parts, body) = response.into_parts();
                forward::strip_hop_by_hop(&mut parts.headers);
                decision.apply(&mut parts.headers);
                Response::from_parts(parts, body.boxed())
            }
            Err(e) => {
                tracing::warn!(error = %e, upstream = %self.upstream, "upstream request failed");
                error_response(
                    StatusCode::BAD_GATEWAY,
                    "corsair-agent: the upstream did not answer",
                )
            }
        }
    }
}

/// Serves `proxy` on an already-bound listener until `shutdown` resolves,
/// then lets open connections finish (up to a drain timeout).
pub async fn serve(
    listener: TcpListener,
    proxy: Proxy,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let proxy = Arc::new(proxy);
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and similar: keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        let service = hyper::service::service_fn(move |req| {
            let proxy = Arc::clone(&proxy);
            async move { Ok::<_, Infallible>(proxy.handle(req, peer.ip()).await) }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(
            async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection closed with error");
                }
            }
            .instrument(tracing::debug_span!("conn", %peer)),
        );
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}

fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

fn error_response(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from(format!("{message}\n")))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
