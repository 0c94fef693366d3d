//! The sidecar's HTTP/1.1 fast path: plain bodiless requests to a plain
//! `http://` upstream, served without hyper's two state machines.
//!
//! A sidecar's traffic is mostly the plainest HTTP/1.1: `GET`s and
//! preflights without a body, on keep-alive connections. For those, hyper's
//! server and client machinery (a `HeaderMap` built for every request and
//! every upstream response, channels between the halves, keep-alive and
//! flush polling) cost more than the proxying itself. Here the request head
//! is parsed in place by httparse (hyper's own parser), the engine decides
//! on the CORS lines alone, a preflight's answer is written as bytes, and a
//! forwarded request is written to the connection's own upstream connection
//! as bytes; the upstream's head is parsed in place and written on with the
//! engine's headers (through the engine's own writer), the body passed
//! through as it comes.
//!
//! Anything else — a body, `Transfer-Encoding`, an upgrade, `Expect`,
//! HTTP/1.0 or HTTP/2, absolute-form targets, odd `Connection` lines, a
//! trusted proxy's `X-Forwarded-*` chain, a head past 64 KiB — is handed to
//! hyper's path (the rest of [`crate::proxy`]) with the bytes read so far,
//! and the connection stays there. So request framing is only ever judged by
//! hyper, and every answer is the one hyper's path gives (status, CORS
//! headers, `X-Forwarded-*`, the 502/504 failures with the decision on
//! them; `tests/proxy_fast_path.rs` compares the two).
//!
//! - [`request`]: which requests the fast path takes.
//! - [`exchange`]: the upstream connection, the response head and body.
//! - [`chunked`]: where a chunked body ends.
//! - [`write`]: status line, header lines, `Date`.
//! - [`rewind`]: the bytes already read, put back in front for hyper.

mod chunked;
mod exchange;
mod request;
pub mod rewind;
mod write;

use super::Proxy;
use super::answer::Failure;
use super::forward::Upstream;
use crate::enforce;
use crate::engine::{ForwardHeaders, RequestParts};
use bytes::{Buf, Bytes, BytesMut};
use exchange::{Dial, Framing, Reply, UpConn};
use http::{HeaderMap, Method, StatusCode};
use request::{Line, Parsed};
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Largest request head the fast path reads; a longer one goes to hyper
/// (which answers 431 past its own limit).
const MAX_HEAD: usize = 64 * 1024;
/// Longest a client may take to send a whole request head once it has
/// begun (slowloris); the connection is then closed.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Read size on the client connection.
const READ: usize = 8 * 1024;

/// What the fast path needs of a proxy, fixed at start.
#[derive(Debug, Clone)]
pub struct FastPath {
    dial: Dial,
    base_path: String,
}

impl FastPath {
    /// The fast path to `upstream`; `None` for an `https://` one (TLS
    /// upstreams take hyper's path).
    pub(super) fn new(upstream: &Upstream, connect_timeout: Duration) -> Option<Self> {
        if upstream.is_https() {
            return None;
        }
        let authority = upstream.authority();
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Some(Self {
            dial: Dial {
                host: host.to_owned(),
                port: authority.port_u16().unwrap_or(80),
                connect_timeout,
            },
            base_path: upstream.base_path().to_owned(),
        })
    }
}

/// How a client connection left the fast path.
pub(super) enum End {
    /// It is over (closed by either side, or drained).
    Closed,
    /// Hyper's from here: the connection and the bytes read from it that
    /// no answer has consumed yet.
    HandOver(TcpStream, Bytes),
}

/// Serves `client` (from `peer`) on the fast path until it closes, hyper
/// must take over, or `draining` turns true (an idle connection closes at
/// once, a busy one after its answer).
pub(super) async fn serve(
    proxy: &Proxy,
    fast: &FastPath,
    mut client: TcpStream,
    peer: IpAddr,
    mut draining: watch::Receiver<bool>,
) -> End {
    let mut conn = Conn {
        proxy,
        fast,
        peer: peer.to_string(),
        upstream: None,
        out: Vec::with_capacity(1024),
        request: Vec::with_capacity(1024),
    };
    let mut buf = BytesMut::with_capacity(READ);
    let mut head_deadline: Option<Instant> = None;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; request::MAX_HEADERS];
        match request::parse(&buf, &mut headers, proxy.options.trust_forwarded_headers) {
            Parsed::Fast(req) => {
                head_deadline = None;
                let closing = req.close || *draining.borrow();
                let keep = conn.serve(&req, &mut client, closing).await;
                let len = req.len;
                drop(req);
                buf.advance(len);
                if !keep {
                    let _ = client.shutdown().await;
                    return End::Closed;
                }
            }
            Parsed::HandOver => return End::HandOver(client, buf.freeze()),
            Parsed::Partial if buf.len() >= MAX_HEAD => {
                return End::HandOver(client, buf.freeze());
            }
            Parsed::Partial => {
                buf.reserve(READ);
                let read = if buf.is_empty() {
                    // Idle between requests: no limit, but a drain ends it.
                    tokio::select! {
                        read = client.read_buf(&mut buf) => read,
                        _ = draining.wait_for(|d| *d) => return End::Closed,
                    }
                } else {
                    let deadline =
                        *head_deadline.get_or_insert_with(|| Instant::now() + HEAD_TIMEOUT);
                    match tokio::time::timeout_at(deadline, client.read_buf(&mut buf)).await {
                        Ok(read) => read,
                        Err(_) => {
                            tracing::debug!("request head not complete within 30 s; closing");
                            return End::Closed;
                        }
                    }
                };
                match read {
                    Ok(0) | Err(_) => return End::Closed,
                    Ok(_) => {}
                }
            }
        }
    }
}

/// One client connection's state on the fast path.
struct Conn<'a> {
    proxy: &'a Proxy,
    fast: &'a FastPath,
    /// The client's address, as `X-Forwarded-For` carries it.
    peer: String,
    upstream: Option<UpConn>,
    /// The answer to the client.
    out: Vec<u8>,
    /// The request to the upstream.
    request: Vec<u8>,
}

impl Conn<'_> {
    /// Answers `req`; `false` when the connection is to close after.
    async fn serve(
        &mut self,
        req: &request::Request<'_>,
        client: &mut TcpStream,
        closing: bool,
    ) -> bool {
        let proxy = self.proxy;
        self.out.clear();
        let forward = proxy.handle.with_current(|active| {
            let parts = RequestParts {
                method: &req.method,
                headers: &req.cors,
            };
            let decision = enforce::decide(active, &parts, proxy.reporter.as_ref());
            match enforce::local_answer(&decision, || ()) {
                Some(answer) => {
                    answer_head(&mut self.out, answer.status(), answer.headers(), 0, closing);
                    None
                }
                None => Some(decision.forward_headers()),
            }
        });
        let Some(forward) = forward else {
            return client.write_all(&self.out).await.is_ok() && !closing;
        };
        self.write_request(req);
        let reply = Reply {
            head_request: req.method == Method::HEAD,
            forward: &forward,
            closing,
        };
        let exchanged = tokio::time::timeout(
            proxy.options.upstream_timeout,
            exchange::exchange(
                &mut self.upstream,
                &self.fast.dial,
                &self.request,
                req.method.is_idempotent(),
                &reply,
                &mut self.out,
            ),
        )
        .await;
        let head = match exchanged {
            Ok(Ok(head)) => head,
            Ok(Err(failed)) => {
                if failed.failure.is_upstream() {
                    tracing::warn!(
                        error = %failed.cause,
                        upstream = %proxy.upstream,
                        status = failed.failure.status().as_u16(),
                        "upstream request failed"
                    );
                }
                return self.fail(&failed.failure, &forward, client, closing).await;
            }
            Err(_) => {
                self.upstream = None;
                tracing::warn!(
                    upstream = %proxy.upstream,
                    timeout = ?proxy.options.upstream_timeout,
                    "the upstream did not answer within --upstream-timeout"
                );
                return self
                    .fail(&Failure::UpstreamTimeout, &forward, client, closing)
                    .await;
            }
        };
        let Some(up) = self.upstream.as_mut() else {
            return false;
        };
        match exchange::relay(up, &head, client, &mut self.out).await {
            Ok(reusable) => {
                if !reusable {
                    self.upstream = None;
                }
                !closing && head.framing != Framing::UntilClose
            }
            Err(e) => {
                tracing::debug!(error = %e, "response relay broke off; closing both connections");
                self.upstream = None;
                false
            }
        }
    }

    /// The request line and headers for the upstream: the client's lines
    /// but `Connection` and `X-Forwarded-*`, then this hop's
    /// `X-Forwarded-For` / `-Proto` / `-Host` (as [`super::forward::add_forwarded`]
    /// writes them for an untrusted client).
    fn write_request(&mut self, req: &request::Request<'_>) {
        let out = &mut self.request;
        out.clear();
        out.extend_from_slice(req.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.fast.base_path.as_bytes());
        out.extend_from_slice(req.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for h in req.headers {
            match request::line(h.name) {
                Line::Connection | Line::Forwarded => {}
                _ => write::line(out, h.name.as_bytes(), h.value),
            }
        }
        write::line(out, b"x-forwarded-for", self.peer.as_bytes());
        write::line(out, b"x-forwarded-proto", b"http");
        write::line(out, b"x-forwarded-host", req.host);
        out.extend_from_slice(b"\r\n");
    }

    /// Answers with `failure` (and `forward`'s CORS headers, as hyper's
    /// path does).
    async fn fail(
        &mut self,
        failure: &Failure,
        forward: &ForwardHeaders,
        client: &mut TcpStream,
        closing: bool,
    ) -> bool {
        let mut headers = HeaderMap::new();
        forward.clone().apply(&mut headers);
        failure.describe(&mut headers);
        let body = failure.body();
        self.out.clear();
        answer_head(
            &mut self.out,
            failure.status(),
            &headers,
            body.len(),
            closing,
        );
        self.out.extend_from_slice(&body);
        client.write_all(&self.out).await.is_ok() && !closing
    }
}

/// The head of an answer the agent makes itself, with a body of `len`
/// bytes to follow.
fn answer_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    len: usize,
    closing: bool,
) {
    write::status_line(out, status);
    write::lines(out, headers);
    write::date(out);
    if !write::has_no_length(status) {
        write::content_length(out, len as u64);
    }
    if closing {
        write::line(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}
