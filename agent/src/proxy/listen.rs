//! What every listener of the agent shares (the sidecar proxy, the authz
//! endpoint, the admin listener): the accept loop, and a connection's start
//! under the head timeout before hyper serves it.
//!
//! hyper-util's auto builder first reads the start of a connection to tell
//! HTTP/2 (prior knowledge) from HTTP/1, and that read has no timer:
//! hyper's HTTP/1 `header_read_timeout` only starts once it is done. So a
//! client that connects and sends nothing, or the first bytes of the
//! HTTP/2 preface, was held forever. [`sniff`] does that read itself,
//! under the head timeout, and hands hyper the bytes, from which the
//! builder decides without reading the socket.
//!
//! hyper has no idle limit for HTTP/2 connections either: [`idle`] adds
//! one, the head timeout, as HTTP/1.1's keep-alive has.

use bytes::{Bytes, BytesMut};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

mod idle;
#[cfg(test)]
mod tests;

pub(super) use idle::Served;
use idle::{Counted, Idle};

/// How long the accept loop pauses after an accept error that is not about
/// one connection (out of file descriptors: `EMFILE`, `ENFILE`, `ENOBUFS`).
/// Such an error persists until descriptors are freed, and the listener
/// stays readable meanwhile, so accepting again at once would spin a core
/// and write the same warning thousands of times a second. A fixed pause,
/// as `axum::serve` makes (1 s there): the accept queue holds the waiting
/// clients meanwhile, and a shorter one recovers sooner.
pub(super) const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// HTTP/2's connection preface (RFC 9113 §3.4), 24 bytes.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Accepts connections on `listener` and hands each to `on_conn` (with the
/// peer's address) until `shutdown` resolves; the listener is then closed.
/// Errors about one connection (reset or aborted before it was accepted)
/// are skipped at once; any other error is logged and accepting pauses
/// for [`ACCEPT_ERROR_PAUSE`] (shutdown still ends the pause).
pub(super) async fn accept_loop(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    mut on_conn: impl FnMut(TcpStream, SocketAddr),
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        match accepted {
            Ok((stream, peer)) => on_conn(stream, peer),
            Err(e) if is_connection_error(&e) => {
                tracing::debug!(error = %e, "a connection failed before it was accepted");
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    pause = ?ACCEPT_ERROR_PAUSE,
                    "accept failed; pausing before accepting again"
                );
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                    () = &mut shutdown => return,
                }
            }
        }
    }
}

/// Whether an accept error concerns one connection only (the next accept
/// may well succeed), not the listener or the process.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// hyper's server for one listener: HTTP/1.1 must deliver each request
/// head within `head_timeout` (idle keep-alive time included); an HTTP/2
/// connection quiet for `head_timeout` is pinged and closed unless the
/// ping is acknowledged within `head_timeout` (a dead or stalled peer,
/// even with requests in flight). An HTTP/2 connection with no request in
/// flight is closed by its [`Idle`] limit, which hyper does not have.
pub(super) fn builder(head_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(head_timeout)
        .keep_alive_timeout(head_timeout);
    builder
}

/// Reads the start of `stream` (after `read`, bytes already read from it)
/// until its protocol is known: the whole HTTP/2 preface, or a byte that
/// differs from it (HTTP/1), for at most `head_timeout`, or until `stop`
/// resolves (a drain). Returns every byte read, to be read again before
/// the socket by the [`builder`]'s server, which then decides from them
/// without a read of its own. `None`: the client closed, the read failed,
/// the time ran out, or `stop` came first with nothing sent (a client that
/// had started, even with bytes still unread in the socket, is read on);
/// the connection is to be closed.
pub(super) async fn sniff(
    stream: &mut TcpStream,
    read: Bytes,
    head_timeout: Duration,
    stop: impl Future<Output = ()>,
) -> Option<Bytes> {
    if decided(&read) {
        return Some(read);
    }
    let mut buf = BytesMut::from(read);
    // One deadline for both reads below: the head timeout bounds the whole.
    let deadline = tokio::time::Instant::now() + head_timeout;
    let timed_out = |_| {
        tracing::debug!("no request head or HTTP/2 preface within the head timeout; closing");
        false
    };
    // Reading first: a request already in the socket when the drain
    // starts is read and answered (with `connection: close`), as the fast
    // path does, rather than closed unanswered.
    let known = tokio::select! {
        biased;
        known = tokio::time::timeout_at(deadline, read_until_decided(stream, &mut buf)) => {
            Some(known.unwrap_or_else(timed_out))
        }
        () = stop => None,
    };
    let known = match known {
        Some(known) => known,
        // The drain started. tokio's read above goes by the readiness its
        // driver last saw, so bytes the client had already sent may not
        // have been read: ask the kernel, and read on (until the same
        // deadline) if the client had started.
        None if !buf.is_empty() || bytes_waiting(stream) => {
            tokio::time::timeout_at(deadline, read_until_decided(stream, &mut buf))
                .await
                .unwrap_or_else(timed_out)
        }
        None => false,
    };
    known.then(|| buf.freeze())
}

/// Reads into `buf` until [`decided`]; false when the client closed or the
/// read failed first.
async fn read_until_decided(stream: &mut TcpStream, buf: &mut BytesMut) -> bool {
    loop {
        buf.reserve(H2_PREFACE.len());
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return false,
            Ok(_) if decided(buf) => return true,
            Ok(_) => {}
        }
    }
}

/// Whether the client has sent bytes not read yet, asked of the kernel (a
/// non-blocking peek): tokio's reads go by the readiness its driver last
/// saw, which for a connection just accepted, or after a short read (the
/// fast path clears it then), may not include bytes already there. A
/// closed or failed socket has none.
pub(super) fn bytes_waiting(io: &TcpStream) -> bool {
    let mut one = [std::mem::MaybeUninit::<u8>::uninit()];
    matches!(socket2::SockRef::from(io).peek(&mut one), Ok(n) if n > 0)
}

/// `service` for a connection that started with `start` ([`sniff`]'s
/// bytes), and for HTTP/2 the connection's [`Idle`] limit of `limit`, which
/// the returned service counts its requests for; for HTTP/1.1 no limit
/// (hyper's head timeout is its idle limit) and nothing counted.
pub(super) fn idle_limit<S>(
    start: &[u8],
    limit: Duration,
    service: S,
) -> (Counted<S>, Option<Idle>) {
    let idle = start.starts_with(H2_PREFACE).then(|| Idle::new(limit));
    let service = Counted::new(service, idle.as_ref().map(Idle::activity));
    (service, idle)
}

/// Whether `start` (a connection's first bytes) says which protocol it is.
fn decided(start: &[u8]) -> bool {
    let n = start.len().min(H2_PREFACE.len());
    n > 0 && (n == H2_PREFACE.len() || start[..n] != H2_PREFACE[..n])
}
