//! Sidecar mode: a small reverse proxy that enforces the current policy in
//! front of one upstream.
//!
//! Preflights (and strict-mode blocks) are answered here and never reach the
//! upstream; everything else is forwarded and the engine's headers are
//! applied to the upstream's response.
//!
//! - [`answer`]: every answer the agent makes itself, with the CORS decision.
//! - [`forward`]: request/response rewriting for the hop to the upstream.
//! - [`upstream`]: the client to the upstream (TLS, timeouts, failures).
//! - [`body`]: the request body's idle timeout, and whose turn it is.
//! - [`upgrade`]: WebSocket tunnelling (other upgrades are not tunnelled).
//! - [`h1`]: the HTTP/1.1 fast path for plain bodiless requests to an
//!   `http://` upstream; everything else takes hyper's path here.
//! - [`listen`]: the accept loop and a connection's start, shared by
//!   every listener.
//! - [`admin`]: `/healthz`, `/readyz` and `/metrics` on the admin listener.
//! - [`sidecar`]: sync client + proxy + admin, run together (binary and `dev`).

pub mod admin;
pub mod answer;
pub mod body;
pub mod forward;
pub mod h1;
mod listen;
pub mod sidecar;
pub mod upgrade;
pub mod upstream;

use crate::control_plane::status::error_chain;
use crate::enforce;
use crate::engine::{ForwardHeaders, RequestParts};
use crate::handle::PolicyHandle;
use crate::report::Reporter;
use answer::Failure;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::Instrument;
pub use upstream::ProxyOptions;
use upstream::conns::Upstreams;
use upstream::drive::Drive;

/// The body type the proxy answers with.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The proxy could not be set up from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--upstream` is not a usable URL.
    #[error(transparent)]
    Upstream(#[from] forward::UpstreamError),
    /// The upstream client (TLS roots, CA file) could not be built.
    #[error(transparent)]
    Client(#[from] upstream::ClientError),
}

/// One proxy: a policy handle and where to forward.
#[derive(Debug, Clone)]
pub struct Proxy {
    handle: PolicyHandle,
    upstream: forward::Upstream,
    connector: Arc<upstream::Connector>,
    options: ProxyOptions,
    reporter: Option<Reporter>,
    /// `None`: every connection takes hyper's path (an `https://`
    /// upstream, or the fast path switched off).
    fast: Option<h1::FastPath>,
    /// The WebSocket tunnels this proxy opened, which a drain waits for.
    tunnels: upgrade::Tunnels,
}

impl Proxy {
    /// A proxy that enforces `handle`'s policy in front of `upstream`
    /// (`http[s]://host:port`, optionally with a base path), with the
    /// default timeouts and the system's CA roots.
    pub fn new(handle: PolicyHandle, upstream: &str) -> Result<Self, ConfigError> {
        Self::with_options(handle, upstream, ProxyOptions::default())
    }

    /// Like [`Self::new`] with explicit timeouts and extra CA roots. Fails
    /// when the upstream URL is unusable or the CA file unreadable.
    pub fn with_options(
        handle: PolicyHandle,
        upstream: &str,
        options: ProxyOptions,
    ) -> Result<Self, ConfigError> {
        let upstream = forward::Upstream::parse(upstream)?;
        let connector = Arc::new(upstream::connector(&options, &upstream)?);
        let fast = options
            .http1_fast_path
            .then(|| h1::FastPath::new(&upstream, options.connect_timeout))
            .flatten();
        Ok(Self {
            handle,
            upstream,
            connector,
            options,
            reporter: None,
            fast,
            tunnels: upgrade::Tunnels::default(),
        })
    }

    /// Counts every decision (metrics) and blocked ones (telemetry) in `reporter`.
    pub fn with_reporter(mut self, reporter: Reporter) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// Handles one request from `client`: decide, answer locally or forward
    /// (with `X-Forwarded-*` headers naming the client) on the client
    /// connection's `upstreams`, apply headers.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        client: IpAddr,
        upstreams: &Upstreams,
    ) -> Response<ProxyBody> {
        let upgrade = upgrade::requested(&req);
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let active = self.handle.load();
        let (parts, body) = req.into_parts();
        let request = RequestParts {
            method: &parts.method,
            headers: &parts.headers,
        };
        let decision = enforce::decide(active.as_deref(), &request, self.reporter.as_ref());
        if let Some(response) = enforce::local_answer(&decision, empty) {
            return response;
        }
        // A HEAD answer has no body, whatever its framing lines say (the
        // agent's own answers included, see `Failure::respond`).
        let head_request = parts.method == http::Method::HEAD;
        // The decision borrows the request, which moves on to the
        // upstream: what the answer needs is kept (shared bytes).
        let cors = decision.forward_headers();
        let transfer_encoding = parts.headers.get_all(http::header::TRANSFER_ENCODING);
        if let Some(coding) = forward::unsupported_transfer_coding(
            transfer_encoding.iter().map(http::HeaderValue::as_bytes),
        ) {
            tracing::debug!(
                coding = %String::from_utf8_lossy(coding),
                "request not forwarded: unsupported transfer coding"
            );
            return self.failed(Failure::RequestTransferCoding, cors, head_request);
        }
        // A body of unknown length is re-framed as chunked for the upstream
        // (HTTP/1.1): one sent chunked (the only coding left after the
        // check above), or an HTTP/2 body without `content-length` (HTTP/2
        // frames it itself). hyper's client sends none for a GET or HEAD of
        // unknown length unless told, so it is told.
        let chunked_body = transfer_encoding.iter().next().is_some()
            || (parts.version == http::Version::HTTP_2
                && !parts.headers.contains_key(http::header::CONTENT_LENGTH)
                && !hyper::body::Body::is_end_stream(&body));
        let (body, turn) = body::TimedBody::new(body, self.options.request_body_timeout);
        let host = forward::client_host(&parts);
        let upstream_req = match self.upstream.rewrite(Request::from_parts(parts, body)) {
            Ok(mut r) => {
                forward::add_forwarded(
                    r.headers_mut(),
                    client,
                    host,
                    self.options.trust_forwarded_headers,
                );
                if let Some(upgrade) = upgrade {
                    upgrade::restore(r.headers_mut(), upgrade);
                }
                if chunked_body {
                    // Transfer-Encoding wins over Content-Length (RFC 9112
                    // §6.3): never both on the upstream hop.
                    r.headers_mut().remove(http::header::CONTENT_LENGTH);
                    r.headers_mut().insert(
                        http::header::TRANSFER_ENCODING,
                        http::HeaderValue::from_static("chunked"),
                    );
                }
                r
            }
            Err(e) => {
                tracing::debug!(error = %e, "request not forwarded");
                return self.failed(Failure::from(e), cors, head_request);
            }
        };
        let exchange = upstreams.send(upstream_req);
        match upstream::within_timeout(exchange, turn, self.options.upstream_timeout).await {
            Some(Ok(mut response)) => {
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    let Some(client_upgrade) = client_upgrade else {
                        tracing::warn!(upstream = %self.upstream, "upstream switched protocols unasked");
                        return self.failed(Failure::UnaskedUpgrade, cors, head_request);
                    };
                    upgrade::splice(
                        client_upgrade,
                        hyper::upgrade::on(&mut response),
                        &self.tunnels,
                    );
                    // The 101 keeps its Connection/Upgrade headers: they
                    // are what the client asked for.
                    let (mut parts, _) = response.into_parts();
                    cors.apply(&mut parts.headers);
                    return Response::from_parts(parts, empty());
                }
                // Only `chunked` is re-framed (see the judge); a bodiless
                // answer's codings say what a GET would have got.
                let bodiless = head_request
                    || response.status() == StatusCode::NO_CONTENT
                    || response.status() == StatusCode::NOT_MODIFIED;
                let refused = if bodiless {
                    None
                } else {
                    forward::unsupported_transfer_coding(
                        response
                            .headers()
                            .get_all(http::header::TRANSFER_ENCODING)
                            .iter()
                            .map(http::HeaderValue::as_bytes),
                    )
                };
                if let Some(coding) = refused {
                    tracing::warn!(
                        upstream = %self.upstream,
                        coding = %String::from_utf8_lossy(coding),
                        "upstream answered with an unsupported transfer coding"
                    );
                    return self.failed(Failure::UpstreamTransferCoding, cors, head_request);
                }
                let (mut parts, body) = response.into_parts();
                // Transfer-Encoding wins over Content-Length (RFC 9112
                // §6.3) and is this hop's: the body is re-framed, so an
                // upstream's Content-Length beside it would announce the
                // wrong length to the client.
                if parts.headers.contains_key(http::header::TRANSFER_ENCODING) {
                    parts.headers.remove(http::header::CONTENT_LENGTH);
                }
                forward::strip_hop_by_hop(&mut parts.headers);
                cors.apply(&mut parts.headers);
                Response::from_parts(parts, body.boxed())
            }
            Some(Err(e)) => {
                let failure = upstream::classify(&e);
                if !failure.is_upstream() {
                    tracing::debug!(error = %error_chain(&e), "request body failed");
                    return self.failed(failure, cors, head_request);
                }
                tracing::warn!(
                    error = %error_chain(&e),
                    upstream = %self.upstream,
                    status = failure.status().as_u16(),
                    "upstream request failed{}",
                    upstream::tls_hint(&e).map(|h| format!(": {h}")).unwrap_or_default()
                );
                self.failed(failure, cors, head_request)
            }
            None => {
                tracing::warn!(
                    upstream = %self.upstream,
                    timeout = ?self.options.upstream_timeout,
                    "the upstream did not answer (or take the request body) within --upstream-timeout"
                );
                self.failed(Failure::UpstreamTimeout, cors, head_request)
            }
        }
    }
}

impl Proxy {
    /// The answer to a request that failed on hyper's path (the fast path
    /// writes its own, see [`h1`]), counted in the metrics.
    fn failed(&self, failure: Failure, cors: ForwardHeaders, head: bool) -> Response<ProxyBody> {
        failure.count(self.reporter.as_ref());
        failure.respond(cors, head)
    }
}

/// Serves `proxy` on an already-bound listener until `shutdown` resolves,
/// then lets open connections finish, for up to the proxy's
/// [`ProxyOptions::drain_timeout`].
pub async fn serve(
    listener: TcpListener,
    proxy: Proxy,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let drain_timeout = proxy.options.drain_timeout;
    let head_timeout = proxy.options.head_timeout;
    let proxy = Arc::new(proxy);
    let fast = proxy.fast.is_some().then(|| Arc::clone(&proxy));
    let tunnels = Some(proxy.tunnels.clone());
    serve_driven(
        listener,
        drain_timeout,
        head_timeout,
        shutdown,
        fast,
        tunnels,
        move |peer| {
            // One per client connection: its upstream connections.
            let upstreams = Upstreams::new(Arc::clone(&proxy.connector));
            let conn = Arc::new((Arc::clone(&proxy), upstreams.clone()));
            let service = hyper::service::service_fn(move |req| {
                let conn = Arc::clone(&conn);
                async move {
                    let (proxy, upstreams) = &*conn;
                    Ok::<_, Infallible>(proxy.handle(req, peer.ip(), upstreams).await)
                }
            });
            (service, Some(upstreams))
        },
    )
    .await
}

/// The accept loop every front (sidecar proxy, authz endpoint) runs: HTTP/1.1
/// and HTTP/2 on an already-bound listener, one `service_for(peer)` per
/// connection, until `shutdown` resolves; then the listener closes and open
/// connections get up to `drain_timeout` to finish before they are closed.
/// `head_timeout` bounds the wait for each request head (HTTP/1.1,
/// keep-alive included) or the HTTP/2 preface, and an HTTP/2 connection's
/// time with no request in flight (then it is shut down gracefully).
pub async fn serve_connections<S, B>(
    listener: TcpListener,
    drain_timeout: std::time::Duration,
    head_timeout: std::time::Duration,
    shutdown: impl Future<Output = ()>,
    service_for: impl Fn(std::net::SocketAddr) -> S,
) -> std::io::Result<()>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_driven(
        listener,
        drain_timeout,
        head_timeout,
        shutdown,
        None,
        None,
        move |peer| (service_for(peer), None),
    )
    .await
}

/// [`serve_connections`] where each connection may come with upstream
/// connections to drive in its task (the sidecar proxy's), and may start on
/// `fast`'s [`h1`] fast path, which hands it to hyper when it must. The
/// drain also waits for `tunnels` (the sidecar's WebSocket tunnels), all
/// within `drain_timeout`.
async fn serve_driven<S, B>(
    listener: TcpListener,
    drain_timeout: std::time::Duration,
    head_timeout: std::time::Duration,
    shutdown: impl Future<Output = ()>,
    fast: Option<Arc<Proxy>>,
    tunnels: Option<upgrade::Tunnels>,
    service_for: impl Fn(std::net::SocketAddr) -> (S, Option<Upstreams>),
) -> std::io::Result<()>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = Arc::new(listen::builder(head_timeout));
    let graceful = GracefulShutdown::new();
    // Tells every connection to finish (hyper's through `listen::Served`);
    // `graceful` waits for both kinds: each holds a watcher.
    let drain = Arc::new(h1::Drain::default());
    listen::accept_loop(listener, shutdown, |stream, peer| {
        let _ = stream.set_nodelay(true);
        let (service, upstreams) = service_for(peer);
        let watcher = graceful.watcher();
        let builder = Arc::clone(&builder);
        let fast = fast.clone();
        let drain = Arc::clone(&drain);
        tokio::spawn(
            async move {
                // Held until the connection ends: `graceful` waits for it.
                let _watching = watcher;
                let (mut stream, read) = match fast.as_deref() {
                    Some(
                        proxy @ Proxy {
                            fast: Some(path), ..
                        },
                    ) => match h1::serve(proxy, path, stream, peer.ip(), &drain).await {
                        h1::End::Closed => return,
                        h1::End::HandOver(stream, read) => (stream, read),
                    },
                    _ => (stream, Bytes::new()),
                };
                // hyper's own protocol sniff has no timer (see `listen`).
                let Some(read) =
                    listen::sniff(&mut stream, read, head_timeout, drain.started()).await
                else {
                    return;
                };
                // hyper has no idle limit for HTTP/2 (see `listen`).
                let (service, idle) = listen::idle_limit(&read, head_timeout, service);
                let io = TokioIo::new(h1::rewind::Rewind::new(stream, read));
                let conn = builder
                    .serve_connection_with_upgrades(io, service)
                    .into_owned();
                // Told to finish by the drain (when `graceful` is), or by the
                // idle limit.
                let served = listen::Served::new(conn, drain.started(), idle);
                if let Err(e) = Drive::new(served, upstreams).await {
                    tracing::debug!(error = %e, "connection closed with error");
                }
            }
            .instrument(tracing::debug_span!("conn", %peer)),
        );
    })
    .await;
    drain.start();
    let drained = async {
        graceful.shutdown().await;
        // Upgraded connections left hyper's watch with their `101`.
        if let Some(tunnels) = &tunnels {
            tunnels.closed().await;
        }
    };
    if tokio::time::timeout(drain_timeout, drained).await.is_err() {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}

fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}
