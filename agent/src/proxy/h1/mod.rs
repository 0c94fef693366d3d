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
#[cfg(test)]
mod tests;
mod write;

/// Reads what `io` has into `buf`'s spare room. A read that did not fill
/// the room took everything the socket had, so the runtime's "readable"
/// flag is cleared at once (as nginx does after a short read): the next
/// read waits for the next readiness event instead of first asking the
/// socket and getting `EWOULDBLOCK`, one system call per read saved.
///
/// The flag is cleared only if no readiness event arrived since before the
/// read: the read runs inside `try_io`, which takes tokio's readiness tick
/// first and clears only on that tick. (Clearing in a second `try_io`
/// after the read, as this did before, took the tick after the read, so
/// bytes arriving in between could be left with no event to wake the
/// connection.)
async fn read_some(io: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    use std::io::ErrorKind::WouldBlock;
    loop {
        io.readable().await?;
        let room = buf.capacity() - buf.len();
        let mut short = None;
        let read = io.try_io(tokio::io::Interest::READABLE, || {
            match io.try_read_buf(buf) {
                // Handed back as "would block" so that `try_io` clears the flag
                // with the tick it took before the read.
                Ok(n) if n > 0 && n < room => {
                    short = Some(n);
                    Err(WouldBlock.into())
                }
                other => other,
            }
        });
        match read {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == WouldBlock => match short {
                Some(n) => return Ok(n),
                // Not readable after all: wait for the next event.
                None => continue,
            },
            Err(e) => return Err(e),
        }
    }
}

use super::Proxy;
use super::answer::Failure;
use super::forward::Upstream;
use crate::enforce;
use crate::engine::RequestParts;
use bytes::{Buf, Bytes, BytesMut};
use exchange::{Dial, Reply, UpConn};
use http::{HeaderMap, Method, StatusCode};
use request::{Line, Parsed};
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a connection may wait for a whole request head, idle time
/// between requests included (slowloris, idle keep-alive), before it is
/// closed, by default (`ProxyOptions::head_timeout`; the authz endpoint
/// always): hyper's path closes after exactly this; the fast path checks
/// at this interval, so after 30 to 60 s.
pub(super) const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Read size on the client connection.
const READ: usize = 8 * 1024;

/// Tells fast-path connections that the proxy is draining: an idle one
/// closes at once, a busy one after its answer (`connection: close`).
#[derive(Debug, Default)]
pub(super) struct Drain {
    draining: AtomicBool,
    notify: Notify,
}

impl Drain {
    /// Starts draining (once; later calls do nothing more).
    pub(super) fn start(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.notify.notify_waiters();
    }

    pub(super) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Resolves once draining has started (at once if it has).
    pub(super) async fn started(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the flag is read: a start in between wakes it.
        notified.as_mut().enable();
        if self.is_draining() {
            return;
        }
        notified.await;
    }
}

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
/// must take over, or `drain` starts (an idle connection closes at once, a
/// busy one after its answer).
pub(super) async fn serve(
    proxy: &Proxy,
    fast: &FastPath,
    mut client: TcpStream,
    peer: IpAddr,
    drain: &Drain,
) -> End {
    // Registered once for the connection's life (not once per wait): a
    // drain that starts at any time after this line wakes it.
    let drained = drain.notify.notified();
    tokio::pin!(drained);
    let mut conn = Conn {
        proxy,
        fast,
        peer: peer.to_string(),
        upstream: None,
        out: Vec::with_capacity(1024),
        request: Vec::with_capacity(1024),
        cors: HeaderMap::new(),
    };
    let mut buf = BytesMut::with_capacity(READ);
    let mut served = false;
    // The head timeout, as one timer per connection rather than one per
    // wait (arming a timer per request cost ~840 instructions, 10 % of a
    // preflight): it fires every `head_timeout`, and closes the connection
    // only if no request was answered since it was last armed. So a
    // connection waits one to two head timeouts for a head before it is
    // closed.
    let mut answered: u64 = 0;
    let mut answered_when_armed: u64 = 0;
    let head_timeout = proxy.options.head_timeout;
    let head_timer = tokio::time::sleep(head_timeout);
    tokio::pin!(head_timer);
    // hyper's server looks for HTTP/2's preface at the start of what it is
    // handed; after HTTP/1.1 answers on this connection that would switch
    // protocols midway, so such a connection closes instead (as hyper's
    // own HTTP/1.1 connection does on that line).
    let hand_over = |stream, buf: BytesMut, served: bool| {
        if served && buf.starts_with(b"PRI * HTTP/2") {
            End::Closed
        } else {
            End::HandOver(stream, buf.freeze())
        }
    };
    loop {
        let mut headers = [httparse::EMPTY_HEADER; request::MAX_HEADERS];
        let trust = proxy.options.trust_forwarded_headers;
        match request::parse(&buf, &mut headers, trust, &mut conn.cors) {
            Parsed::Fast(req) => {
                answered += 1;
                let keep = conn.serve(&req, &mut client, drain).await;
                served = true;
                let len = req.len;
                drop(req);
                buf.advance(len);
                if !keep {
                    let _ = client.shutdown().await;
                    return End::Closed;
                }
            }
            Parsed::HandOver => return hand_over(client, buf, served),
            Parsed::Partial if buf.len() >= request::MAX_HEAD => {
                return hand_over(client, buf, served);
            }
            Parsed::Partial => {
                buf.reserve(READ);
                if buf.is_empty() && drain.is_draining() {
                    // Idle when the drain started: closed, unless the
                    // client's bytes were already waiting (a connection
                    // accepted just before the drain, or first polled
                    // after it), which are read and answered, as hyper's
                    // path does. They are there, so this read does not
                    // wait on the client.
                    if !super::listen::bytes_waiting(&client) {
                        return End::Closed;
                    }
                    match tokio::time::timeout(head_timeout, read_some(&mut client, &mut buf)).await
                    {
                        Ok(Ok(0) | Err(_)) | Err(_) => return End::Closed,
                        Ok(Ok(_)) => continue,
                    }
                }
                let read = tokio::select! {
                    biased;
                    read = read_some(&mut client, &mut buf) => read,
                    // An idle connection closes when a drain starts (a
                    // partial head gets its answer first; bytes already
                    // waiting are read above).
                    () = &mut drained, if buf.is_empty() => continue,
                    () = &mut head_timer => {
                        if answered == answered_when_armed {
                            tracing::debug!("no whole request head within the head timeout; closing");
                            return End::Closed;
                        }
                        answered_when_armed = answered;
                        head_timer.as_mut().reset(Instant::now() + head_timeout);
                        continue;
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
    /// The current request's CORS lines (see [`request::parse`]).
    cors: HeaderMap,
}

impl Conn<'_> {
    /// Answers `req`; `false` when the connection is to close after (the
    /// client asked, the answer is delimited by the close, or a drain had
    /// started when the answer's head was written: it says
    /// `connection: close` then).
    async fn serve(
        &mut self,
        req: &request::Request<'_>,
        client: &mut TcpStream,
        drain: &Drain,
    ) -> bool {
        let proxy = self.proxy;
        let closing = req.close || drain.is_draining();
        self.out.clear();
        let out = &mut self.out;
        let cors = &self.cors;
        let forward = proxy.handle.with_current(|active| {
            let parts = RequestParts {
                method: &req.method,
                headers: cors,
            };
            let decision = enforce::decide(active, &parts, proxy.reporter.as_ref());
            // A local answer (see `enforce::local_answer`), written as bytes.
            match decision.local_response() {
                Some(status) => {
                    write::status_line(out, status);
                    decision.for_each_line(|name, value| {
                        write::line(out, name.as_str().as_bytes(), value.as_bytes());
                    });
                    end_head(out, status, 0, closing);
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
            client_close: req.close,
            drain,
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
                let closing = req.close || drain.is_draining();
                return self.fail(&failed.failure, &reply, client, closing).await;
            }
            Err(_) => {
                self.upstream = None;
                tracing::warn!(
                    upstream = %proxy.upstream,
                    timeout = ?proxy.options.upstream_timeout,
                    "the upstream did not answer within --upstream-timeout"
                );
                let closing = req.close || drain.is_draining();
                return self
                    .fail(&Failure::UpstreamTimeout, &reply, client, closing)
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
                !head.closing
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
        let up = &self.proxy.connector;
        for h in req.headers {
            match request::line(h.name) {
                Line::Connection | Line::Forwarded => {}
                Line::Host => write::line(out, h.name.as_bytes(), up.host_line(h.value)),
                _ => write::line(out, h.name.as_bytes(), h.value),
            }
        }
        write::line(out, b"x-forwarded-for", self.peer.as_bytes());
        write::line(out, b"x-forwarded-proto", b"http");
        write::line(out, b"x-forwarded-host", req.host);
        out.extend_from_slice(b"\r\n");
    }

    /// Answers with `failure` (and the CORS headers `reply` forwards, as
    /// hyper's path does). A HEAD request gets the head alone: its
    /// `content-length` says what a GET would get (as hyper's path does),
    /// and body bytes after it would be read as the start of the next
    /// answer on a keep-alive connection.
    async fn fail(
        &mut self,
        failure: &Failure,
        reply: &Reply<'_>,
        client: &mut TcpStream,
        closing: bool,
    ) -> bool {
        failure.count(self.proxy.reporter.as_ref());
        let mut headers = HeaderMap::new();
        reply.forward.clone().apply(&mut headers);
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
        if !reply.head_request {
            self.out.extend_from_slice(&body);
        }
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
    end_head(out, status, len, closing);
}

/// The end of an answer's head after its own lines: `date`, the length of
/// a `len`-byte body, `connection: close` when `closing`, the blank line.
fn end_head(out: &mut Vec<u8>, status: StatusCode, len: usize, closing: bool) {
    write::date(out);
    if !write::has_no_length(status) {
        write::content_length(out, len as u64);
    }
    if closing {
        write::line(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}
