//! The client side of the proxy: how it connects to the upstream (plain
//! HTTP, or TLS verified against the system roots plus an optional CA
//! file), how long it waits, and what a failed exchange means for the
//! client.
//!
//! - `tls`: the TLS client config, rebuilt when `--upstream-ca-file`
//!   changes.
//! - [`conns`]: each client connection's own upstream connections.
//! - [`drive`]: the client connection and its upstream connections, polled
//!   together in one task.

use super::answer::Failure;
use super::body::{BodyTimeout, Turn};
use http::HeaderValue;
use http::uri::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use std::error::Error as _;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

pub mod conns;
pub mod drive;
mod tls;

/// How to reach the upstream: TCP (`TCP_NODELAY`) and, for an `https://`
/// upstream, TLS, the whole setup (name resolution, TCP to each address in
/// turn, TLS handshake) under one `--upstream-connect-timeout`, as on the
/// fast path; shared by every client connection's [`conns::Upstreams`].
/// Each new connection trusts the CA file's current contents.
pub struct Connector {
    tls: tls::UpstreamTls,
    /// `--upstream-connect-timeout`: the longest a new connection may take,
    /// from resolving the host to the end of the TLS handshake.
    connect_timeout: Duration,
    /// `scheme://authority` of the upstream: what the connector dials.
    uri: Uri,
    /// The upstream's authority as a `Host` value (see [`conns::host_value`]):
    /// for a request whose client named none.
    host: HeaderValue,
    /// The `Host` every request gets in place of the client's: `host` under
    /// `--upstream-host-header upstream`, `None` (the client's is kept) by
    /// default. Decided once here; see [`Connector::replaced_host`].
    replaced_host: Option<HeaderValue>,
}

impl Connector {
    /// The `Host` every request to the upstream carries instead of the
    /// client's, or `None` when the client's is sent on. Both paths ask
    /// here: hyper's ([`conns::Upstreams::send`]) and the fast path
    /// ([`super::h1`]), which writes it in place of the client's line.
    pub(in crate::proxy) fn replaced_host(&self) -> Option<&HeaderValue> {
        self.replaced_host.as_ref()
    }

    /// The fast path's `Host` value for a client that sent `client`.
    pub(in crate::proxy) fn host_line<'a>(&'a self, client: &'a [u8]) -> &'a [u8] {
        self.replaced_host().map_or(client, HeaderValue::as_bytes)
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

/// An exchange with the upstream failed; [`classify`] says what it means
/// for the client.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The TCP connection or the TLS handshake failed (or timed out).
    #[error("connecting to the upstream")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The HTTP/1.1 connection could not be set up on the socket.
    #[error("setting up the upstream connection")]
    Handshake(#[source] hyper::Error),
    /// Sending the request or reading the response head failed.
    #[error("exchange with the upstream")]
    Exchange(#[source] hyper::Error),
}

/// How the proxy talks to its upstream and how long it waits. Every
/// duration is a whole wait, not a retry budget: the proxy never retries.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Longest wait for a new connection to the upstream: name resolution,
    /// TCP connect and, for `https://`, the TLS handshake, together (504
    /// after it). It runs inside `upstream_timeout`'s wait, so it only
    /// matters while the shorter of the two.
    pub connect_timeout: Duration,
    /// Longest wait for the upstream: for its response headers once the
    /// request body is all sent (at once for a request without a body), and
    /// while an upload is under way, for the upstream to take the next piece
    /// (504 after it). Time spent waiting for the client's body does not
    /// count (that is `request_body_timeout`). The response body is then
    /// streamed without a limit.
    pub upstream_timeout: Duration,
    /// Longest wait for the next piece of a client's request body (408 after
    /// it, and the upstream's connection is dropped).
    pub request_body_timeout: Duration,
    /// Longest wait for a whole request head on an HTTP/1.1 connection, idle
    /// keep-alive time included (slowloris); the connection is then closed.
    /// On hyper's path the first bytes and the rest of the head are timed
    /// one after the other, so a trickling client is closed after up to two
    /// of it; the fast path checks at this interval, so after one to two of
    /// it. Also the idle limit of an HTTP/2 connection: one with no request
    /// in flight for this long is sent GOAWAY and closed. Default 30 s.
    pub head_timeout: Duration,
    /// PEM file of extra CA certificates trusted for `https://` upstreams,
    /// on top of the system's roots. Read at start (unreadable or without
    /// a certificate: [`ClientError::CaFile`]) and again for every new
    /// upstream connection, so a rotated CA needs no restart; a later
    /// unusable version is logged and the previous certificates kept.
    /// Refused with an `http://` upstream (see
    /// [`ClientError::CaFileWithoutTls`]).
    pub upstream_ca_file: Option<PathBuf>,
    /// After shutdown is asked for: how long in-flight requests may take to
    /// finish before their connections are closed.
    pub drain_timeout: Duration,
    /// After shutdown is asked for and before the listener closes: how long
    /// new connections are still accepted (while `/readyz` already answers
    /// 503), so load balancers stop sending first. Zero closes at once.
    pub drain_delay: Duration,
    /// Keep the client's `X-Forwarded-Proto` / `X-Forwarded-Host` and
    /// append to its `X-Forwarded-For` (a trusted proxy sits in front).
    /// Off: all three are set from what this hop saw.
    pub trust_forwarded_headers: bool,
    /// Serve plain bodiless HTTP/1.1 requests to an `http://` upstream on
    /// the [`super::h1`] fast path (on by default); off: every request
    /// takes hyper's path.
    pub http1_fast_path: bool,
    /// Whose host the upstream gets as `Host` (`--upstream-host-header`):
    /// the client's (default) or the upstream URL's authority.
    pub upstream_host_header: UpstreamHostHeader,
}

/// Which `Host` a request to the upstream carries. Either way the host the
/// client asked for reaches the upstream in `X-Forwarded-Host`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamHostHeader {
    /// The host the client asked for (its `Host`, or the request URI's
    /// authority for HTTP/2 and absolute-form requests), as Traefik's
    /// `passHostHeader`: what a sidecar's loopback neighbour expects.
    #[default]
    Client,
    /// The upstream URL's host, with its port unless it is the scheme's
    /// default (nginx's `$proxy_host`): for an upstream behind name-based
    /// virtual hosting (a CDN, Cloud Run, an API gateway), which routes by
    /// `Host` and refuses a name it does not serve (404, 421).
    Upstream,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(60),
            request_body_timeout: Duration::from_secs(60),
            head_timeout: super::h1::HEAD_TIMEOUT,
            upstream_ca_file: None,
            drain_timeout: Duration::from_secs(10),
            drain_delay: Duration::ZERO,
            trust_forwarded_headers: false,
            http1_fast_path: true,
            upstream_host_header: UpstreamHostHeader::Client,
        }
    }
}

/// The upstream client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file could not be read or holds no usable certificate at
    /// start-up (later, the previous certificates are kept instead).
    #[error("--upstream-ca-file {path}: {message}")]
    CaFile {
        /// The file given.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A CA file was given for an `http://` upstream, where nothing would
    /// ever read it: most likely the upstream URL lost its `https`.
    #[error(
        "--upstream-ca-file {0} applies to an https:// upstream only; this upstream is http://"
    )]
    CaFileWithoutTls(PathBuf),
    /// An `https://` upstream but no trusted root at all (no system roots
    /// found and no CA file).
    #[error(
        "an https:// upstream needs trusted roots: none found on this system; give --upstream-ca-file"
    )]
    NoRoots,
    /// rustls refused the TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Builds the connector to `upstream` (`scheme://authority`). TLS roots
/// (system store and `ca_file`) are loaded only when `https` is set: a
/// loopback sidecar with an `http://` upstream never reads the system store,
/// and a CA file given with one is a start-up error rather than a file read
/// (and required to be valid) for nothing. Logs a warning for a plain
/// `http://` upstream whose host is neither a loopback IP nor `localhost`.
pub fn connector(
    options: &ProxyOptions,
    upstream: &super::forward::Upstream,
) -> Result<Connector, ClientError> {
    let https = upstream.is_https();
    if let (false, Some(path)) = (https, &options.upstream_ca_file) {
        return Err(ClientError::CaFileWithoutTls(path.clone()));
    }
    warn_if_plain_remote(upstream);
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    // hyper-util's timeout covers the TCP connect only, split over the
    // resolved addresses, so a dead first address falls back to the next
    // in time; `open` bounds the whole setup (resolution, TCP, TLS) with
    // the same limit.
    http.set_connect_timeout(Some(options.connect_timeout));
    let tls = tls::UpstreamTls::new(http, https, options.upstream_ca_file.as_deref())?;
    let host = conns::host_value(upstream.authority(), https);
    let replaced_host =
        (options.upstream_host_header == UpstreamHostHeader::Upstream).then(|| host.clone());
    Ok(Connector {
        tls,
        connect_timeout: options.connect_timeout,
        uri: upstream.origin(),
        host,
        replaced_host,
    })
}

/// A plain `http://` upstream elsewhere than on this host is allowed (a
/// sidecar may name its pod-local neighbour), but its traffic crosses a
/// network unencrypted: said once, at start.
fn warn_if_plain_remote(upstream: &super::forward::Upstream) {
    if !upstream.is_https() && !is_loopback_host(upstream.authority().host()) {
        tracing::warn!(
            upstream = %upstream,
            "plain http:// upstream not on loopback: traffic between the agent and the upstream is unencrypted; an https:// --upstream (with --upstream-ca-file for a private CA) encrypts it"
        );
    }
}

/// Whether `host` (a URL's host: a name, an IPv4 address or a bracketed
/// IPv6 one) is a loopback IP (`127.0.0.0/8`, `::1`, or an IPv4-mapped
/// `::ffff:127.x.y.z`) or `localhost` (any case, with or without the
/// trailing dot). Other names are not resolved: a name is only as local
/// as DNS says, which may change.
fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => {
            let name = bare.strip_suffix('.').unwrap_or(bare);
            name.eq_ignore_ascii_case("localhost")
        }
    }
}

/// Runs `exchange` under `--upstream-timeout` (`timeout`), counting only the
/// time the upstream holds things up as `turn` (from [`TimedBody::new`])
/// reports it: each piece of body the upstream takes restarts the wait, the
/// wait pauses while the client owes the next piece, and restarts once more
/// when the body is all sent. `None` when the timeout ran out.
pub async fn within_timeout<F: Future>(
    exchange: F,
    turn: Option<watch::Receiver<Turn>>,
    timeout: Duration,
) -> Option<F::Output> {
    let Some(mut turn) = turn else {
        return tokio::time::timeout(timeout, exchange).await.ok();
    };
    tokio::pin!(exchange);
    let sleep = tokio::time::sleep(timeout);
    tokio::pin!(sleep);
    let mut running = *turn.borrow_and_update() != Turn::Client;
    let mut watching = true;
    loop {
        tokio::select! {
            out = &mut exchange => return Some(out),
            changed = turn.changed(), if watching => {
                let now = match changed {
                    Ok(()) => *turn.borrow_and_update(),
                    Err(_) => Turn::Done,
                };
                watching = now != Turn::Done;
                running = now != Turn::Client;
                if running {
                    sleep.as_mut().reset(Instant::now() + timeout);
                }
            }
            () = &mut sleep, if running => return None,
        }
    }
}

/// The connection to the upstream (resolution, TCP, TLS) was not set up
/// within `--upstream-connect-timeout`.
#[derive(Debug, thiserror::Error)]
#[error("no connection to the upstream within {0:?} (--upstream-connect-timeout)")]
pub struct ConnectTimedOut(pub Duration);

/// What a failed exchange with the upstream means for the client: a
/// timed-out connection setup (504, see [`ConnectTimedOut`]), a stalled request body (408), a request body the
/// client broke off (400), anything else (refused, reset, TLS) 502.
pub fn classify(error: &ExchangeError) -> Failure {
    let mut client_body = false;
    let mut source = error.source();
    while let Some(e) = source {
        if e.is::<BodyTimeout>() {
            return Failure::RequestBodyTimeout;
        }
        // Our request body is the client's: a "user body" error caused by
        // hyper reading the client's connection.
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && h.is_user()
            && h.source().is_some_and(|cause| cause.is::<hyper::Error>())
        {
            client_body = true;
        }
        // Ours (the whole setup) or hyper-util's (every address's share
        // of it spent), or the kernel's own connect timeout.
        if matches!(error, ExchangeError::Connect(_))
            && (e.is::<ConnectTimedOut>()
                || e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut))
        {
            return Failure::ConnectTimeout;
        }
        source = e.source();
    }
    if client_body {
        Failure::RequestBodyIncomplete
    } else {
        Failure::Unreachable
    }
}

/// A hint for the log when `error` is the upstream's certificate failing
/// verification (unknown issuer, wrong name, expired): the usual fix is
/// `--upstream-ca-file`, or a certificate that names the upstream's host.
pub fn tls_hint(error: &ExchangeError) -> Option<&'static str> {
    let mut source = error.source();
    while let Some(e) = source {
        // io::Error::source() skips the error it wraps, and hyper-rustls
        // wraps tokio-rustls's io::Error in another: look inside each.
        let mut inner = e;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = wrapped;
        }
        if let Some(rustls::Error::InvalidCertificate(_)) = inner.downcast_ref::<rustls::Error>() {
            return Some(
                "the upstream's TLS certificate is not trusted: trust its CA with --upstream-ca-file, or check that it names the upstream's host",
            );
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts_are_told_from_remote_ones() {
        for (host, loopback) in [
            ("127.0.0.1", true),
            ("127.8.9.10", true),
            ("[::1]", true),
            ("[::ffff:127.0.0.1]", true),
            ("localhost", true),
            ("LocalHost", true),
            ("localhost.", true),
            ("10.0.0.7", false),
            ("0.0.0.0", false),
            ("[::]", false),
            ("[2001:db8::1]", false),
            ("[::ffff:10.0.0.1]", false),
            ("api", false),
            ("localhost.example.com", false),
            ("mylocalhost", false),
            ("127.0.0.1.nip.io", false),
        ] {
            assert_eq!(is_loopback_host(host), loopback, "{host}");
        }
    }
}
