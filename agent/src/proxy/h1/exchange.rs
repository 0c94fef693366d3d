//! The fast path's side of the upstream: one plain-HTTP/1.1 connection per
//! client connection, the request written as bytes, the response head
//! parsed in place (httparse) and written on with the CORS decision, the
//! body passed through as it comes.

use super::chunked::{Chunked, ChunkedError};
use super::write;
use crate::engine::ForwardHeaders;
use crate::proxy::answer::Failure;
use crate::proxy::forward::unsupported_transfer_coding;
use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::io;
use std::task::{Context, Waker};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Most header lines an upstream response may have (hyper's client: 100).
const MAX_HEADERS: usize = 100;
/// Largest upstream response head accepted: hyper's client's limit
/// (8 KiB + 100 × 4 KiB), so both paths refuse the same heads.
const MAX_HEAD: usize = 8 * 1024 + 100 * 4 * 1024;
/// Read size on the upstream connection.
const READ: usize = 8 * 1024;

/// Where and how the fast path connects.
#[derive(Debug, Clone)]
pub(super) struct Dial {
    /// `host` (no brackets around an IPv6 address) and port.
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) connect_timeout: Duration,
}

/// One open connection to the upstream.
#[derive(Debug)]
pub(super) struct UpConn {
    io: TcpStream,
    buf: BytesMut,
    /// It has carried an exchange before (so the upstream may have closed
    /// it meanwhile).
    reused: bool,
}

/// How the upstream's response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (a `HEAD` request's answer, 1xx, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked coding, passed through as it is.
    Chunked,
    /// Until the upstream closes (and the client connection closes after).
    UntilClose,
}

/// The response head, written on: how its body follows.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) framing: Framing,
    /// The upstream connection can carry another exchange after this one.
    pub(super) reusable: bool,
    /// The head says `connection: close`: the client connection closes
    /// after the body.
    pub(super) closing: bool,
}

/// An exchange that failed before a response head was written on; the
/// client gets `failure`'s answer.
#[derive(Debug)]
pub(super) struct Failed {
    pub(super) failure: Failure,
    /// What went wrong, for the log.
    pub(super) cause: String,
}

fn failed(failure: Failure, cause: impl std::fmt::Display) -> Failed {
    Failed {
        failure,
        cause: cause.to_string(),
    }
}

/// What the head writer needs from the request and the connection.
pub(super) struct Reply<'a> {
    pub(super) head_request: bool,
    pub(super) forward: &'a ForwardHeaders,
    /// The client asked to close after this response.
    pub(super) client_close: bool,
    /// Read when the head is written: a drain started by then closes the
    /// client connection after this response.
    pub(super) drain: &'a super::Drain,
}

/// Sends `request` on `slot`'s connection (opening one if there is none, or
/// if the upstream has closed the idle one) and reads the response head,
/// writing it into `out` with `ctx`'s CORS headers. A reused connection
/// that breaks before any byte of a response arrived is replaced and the
/// request sent once more when `retry` (an idempotent method), as the
/// pooled client did. On failure the connection is dropped.
pub(super) async fn exchange(
    slot: &mut Option<UpConn>,
    dial: &Dial,
    request: &[u8],
    retry: bool,
    ctx: &Reply<'_>,
    out: &mut Vec<u8>,
) -> Result<Head, Failed> {
    let mut retried = false;
    loop {
        if slot.as_mut().is_some_and(|up| !still_open(up)) {
            *slot = None;
        }
        let up = match slot {
            Some(up) => up,
            None => slot.insert(connect(dial).await?),
        };
        let reused = up.reused;
        up.reused = true;
        match send_and_read_head(up, request, ctx, out).await {
            Ok(head) => return Ok(head),
            Err(Broken::Before(e)) if reused && retry && !retried => {
                retried = true;
                tracing::debug!(error = %e, "reused upstream connection closed; retrying on a fresh one");
                *slot = None;
            }
            Err(Broken::Before(e) | Broken::During(e)) => {
                *slot = None;
                return Err(failed(Failure::Unreachable, e));
            }
            Err(Broken::Answer(f, cause)) => {
                *slot = None;
                return Err(failed(f, cause));
            }
        }
    }
}

/// Why an exchange broke.
enum Broken {
    /// Before any byte of the response arrived (a retry is safe for an
    /// idempotent request).
    Before(io::Error),
    /// Midway through the response head.
    During(io::Error),
    /// The head arrived but cannot be passed on.
    Answer(Failure, &'static str),
}

async fn connect(dial: &Dial) -> Result<UpConn, Failed> {
    let connecting = TcpStream::connect((dial.host.as_str(), dial.port));
    let io = match tokio::time::timeout(dial.connect_timeout, connecting).await {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => return Err(failed(Failure::Unreachable, format!("connecting: {e}"))),
        Err(_) => return Err(failed(Failure::ConnectTimeout, "connecting: timed out")),
    };
    let _ = io.set_nodelay(true);
    Ok(UpConn {
        io,
        buf: BytesMut::with_capacity(READ),
        reused: false,
    })
}

/// Whether an idle connection is still usable: no FIN, reset or stray
/// bytes from the upstream since its last exchange. Asks the socket only
/// when the runtime saw it become readable since (see
/// [`super::read_some`]): no system call otherwise.
fn still_open(up: &mut UpConn) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    if up.io.poll_read_ready(&mut cx).is_pending() {
        return true;
    }
    let mut probe = [0u8; 1];
    matches!(up.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

async fn send_and_read_head(
    up: &mut UpConn,
    request: &[u8],
    ctx: &Reply<'_>,
    out: &mut Vec<u8>,
) -> Result<Head, Broken> {
    up.io.write_all(request).await.map_err(Broken::Before)?;
    up.buf.clear();
    loop {
        let mut informational = None;
        {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&up.buf) {
                Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
                    return Err(Broken::Answer(
                        Failure::Unreachable,
                        "the upstream's response head is too large",
                    ));
                }
                Ok(httparse::Status::Complete(len)) => {
                    let code = response.code.unwrap_or(0);
                    // 1xx but 101 (100 Continue, 103 Early Hints): skipped,
                    // as hyper's client does; the final answer follows.
                    if (100..200).contains(&code) && code != 101 {
                        informational = Some(len);
                    } else {
                        let head = write_head(&response, ctx, out)?;
                        up.buf.advance(len);
                        return Ok(head);
                    }
                }
                Ok(httparse::Status::Partial) if up.buf.len() > MAX_HEAD => {
                    return Err(Broken::Answer(
                        Failure::Unreachable,
                        "the upstream's response head is too large",
                    ));
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => {
                    return Err(Broken::Answer(
                        Failure::Unreachable,
                        "the upstream's response head is malformed",
                    ));
                }
            }
        }
        if let Some(len) = informational {
            up.buf.advance(len);
            continue;
        }
        let got = up.buf.len();
        up.buf.reserve(READ);
        match super::read_some(&mut up.io, &mut up.buf).await {
            Ok(0) => {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the upstream closed the connection before answering",
                );
                return Err(if got == 0 {
                    Broken::Before(e)
                } else {
                    Broken::During(e)
                });
            }
            Ok(_) => {}
            Err(e) if got == 0 => return Err(Broken::Before(e)),
            Err(e) => return Err(Broken::During(e)),
        }
    }
}

/// Response header lines the fast path does not pass on as they are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Line {
    Pass,
    /// Connection-specific (RFC 9110 §7.6.1): dropped.
    HopByHop,
    Connection,
    ContentLength,
    TransferEncoding,
    Date,
    /// `Vary` and the `Access-Control-*` lines the engine owns: given to
    /// the engine's own writer, which merges or replaces them.
    Cors,
}

fn classify(name: &str) -> Line {
    const HOP_BY_HOP: [&str; 7] = [
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    ];
    const CORS: [&str; 8] = [
        "vary",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-max-age",
        "access-control-expose-headers",
        "access-control-allow-private-network",
    ];
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is("content-length") {
        Line::ContentLength
    } else if is("connection") {
        Line::Connection
    } else if is("transfer-encoding") {
        Line::TransferEncoding
    } else if is("date") {
        Line::Date
    } else if CORS.iter().any(|n| is(n)) {
        Line::Cors
    } else if HOP_BY_HOP.iter().any(|n| is(n)) {
        Line::HopByHop
    } else {
        Line::Pass
    }
}

/// Comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn write_head(
    response: &httparse::Response<'_, '_>,
    ctx: &Reply<'_>,
    out: &mut Vec<u8>,
) -> Result<Head, Broken> {
    let invalid = |why| Broken::Answer(Failure::Unreachable, why);
    let status = response
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(invalid("the upstream's status code is invalid"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Broken::Answer(
            Failure::UnaskedUpgrade,
            "the upstream switched protocols unasked",
        ));
    }
    // First pass: framing and the connection's fate.
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut length: Option<u64> = None;
    // An invalid or conflicting length matters only where the length
    // delimits the body (hyper's client ignores it on a bodiless answer).
    let mut bad_length: Option<&'static str> = None;
    let mut upstream_close = false;
    let mut named_by_connection = false;
    // Each line's class, kept for the second pass below.
    let mut classes = [Line::Pass; MAX_HEADERS];
    for (h, class) in response.headers.iter().zip(classes.iter_mut()) {
        *class = classify(h.name);
        match *class {
            Line::TransferEncoding => {
                transfer_encoding = true;
                // The final coding decides (the last line's last token).
                chunked = tokens(h.value)
                    .last()
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            }
            Line::ContentLength => {
                // Every comma-separated value, empty ones included (an
                // empty or dangling value is as invalid as a non-number).
                for t in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    let n = std::str::from_utf8(t)
                        .ok()
                        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|s| s.parse::<u64>().ok());
                    match (n, length) {
                        (None, _) => bad_length = Some("the upstream's Content-Length is invalid"),
                        (Some(n), Some(l)) if l != n => {
                            bad_length = Some("the upstream sent conflicting Content-Lengths");
                        }
                        (Some(n), _) => length = Some(n),
                    }
                }
            }
            Line::Connection => {
                for t in tokens(h.value) {
                    if t.eq_ignore_ascii_case(b"close") {
                        upstream_close = true;
                    } else if !t.eq_ignore_ascii_case(b"keep-alive") {
                        named_by_connection = true;
                    }
                }
            }
            _ => {}
        }
    }
    let bodiless = ctx.head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // Only `chunked` is re-framed; a coding of the bytes themselves
    // (`gzip, chunked`) would be lost on the way. A bodiless answer's
    // codings say what a GET would have got, and nothing is lost.
    if transfer_encoding && !bodiless {
        let codings = response
            .headers
            .iter()
            .zip(classes)
            .filter(|(_, class)| *class == Line::TransferEncoding)
            .map(|(h, _)| h.value);
        if unsupported_transfer_coding(codings).is_some() {
            return Err(Broken::Answer(
                Failure::UpstreamTransferCoding,
                "the upstream answered with an unsupported transfer coding",
            ));
        }
    }
    if let (Some(why), false, false) = (bad_length, bodiless, transfer_encoding) {
        return Err(invalid(why));
    }
    if bad_length.is_some() {
        length = None;
    }
    let framing = if bodiless {
        Framing::Empty
    } else if transfer_encoding {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    let reusable = response.version == Some(1) && !upstream_close && framing != Framing::UntilClose;

    out.clear();
    write::status_line(out, status);
    let mut cors = HeaderMap::new();
    let mut dated = false;
    for (h, class) in response.headers.iter().zip(classes) {
        match class {
            Line::Pass => {
                if named_by_connection && is_named_by_connection(response.headers, h.name) {
                    continue;
                }
                write::line(out, h.name.as_bytes(), h.value);
            }
            Line::Date => {
                dated = true;
                write::line(out, h.name.as_bytes(), h.value);
            }
            Line::Cors => {
                let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(h.name.as_bytes()),
                    HeaderValue::from_bytes(h.value),
                ) else {
                    return Err(invalid("the upstream sent an invalid header line"));
                };
                cors.append(name, value);
            }
            Line::TransferEncoding | Line::ContentLength | Line::Connection | Line::HopByHop => {}
        }
    }
    if cors.is_empty() {
        // The usual upstream answer: nothing of ours to merge or replace.
        ctx.forward.for_each_line(|name, value| {
            write::line(out, name.as_str().as_bytes(), value.as_bytes());
        });
    } else {
        ctx.forward.clone().apply(&mut cors);
        write::lines(out, &cors);
    }
    if !dated {
        write::date(out);
    }
    if let (Some(n), false, false) = (length, transfer_encoding, write::has_no_length(status)) {
        write::content_length(out, n);
    }
    // The upstream's codings are its hop's: the body is re-framed here
    // (see `chunked`), or passed until the close.
    if framing == Framing::Chunked {
        write::line(out, b"transfer-encoding", b"chunked");
    }
    let closing = ctx.client_close || framing == Framing::UntilClose || ctx.drain.is_draining();
    if closing {
        write::line(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Head {
        framing,
        reusable,
        closing,
    })
}

/// Whether `name` is listed in one of the response's `Connection` lines.
fn is_named_by_connection(headers: &[httparse::Header<'_>], name: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| tokens(h.value))
        .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
}

/// The body stopped making sense or arriving midway: both connections
/// close (the client's answer is already under way).
#[derive(Debug, thiserror::Error)]
pub(super) enum RelayError {
    #[error("reading the upstream's response body: {0}")]
    Upstream(io::Error),
    #[error("the upstream closed the connection before the response body ended")]
    Truncated,
    #[error(transparent)]
    Chunked(#[from] ChunkedError),
    #[error("writing to the client: {0}")]
    Client(io::Error),
}

/// Writes `out` (the response head) and the body after it to `client`.
/// `Ok(true)`: the upstream connection can carry the next exchange.
pub(super) async fn relay(
    up: &mut UpConn,
    head: &Head,
    client: &mut TcpStream,
    out: &mut Vec<u8>,
) -> Result<bool, RelayError> {
    match head.framing {
        Framing::Empty => {
            client.write_all(out).await.map_err(RelayError::Client)?;
            Ok(head.reusable && up.buf.is_empty())
        }
        Framing::Length(n) => {
            let mut left = n;
            let now = (left.min(up.buf.len() as u64)) as usize;
            out.extend_from_slice(&up.buf[..now]);
            up.buf.advance(now);
            left -= now as u64;
            client.write_all(out).await.map_err(RelayError::Client)?;
            while left > 0 {
                read(up).await?.then_some(()).ok_or(RelayError::Truncated)?;
                let now = (left.min(up.buf.len() as u64)) as usize;
                client
                    .write_all(&up.buf[..now])
                    .await
                    .map_err(RelayError::Client)?;
                up.buf.advance(now);
                left -= now as u64;
            }
            Ok(head.reusable && up.buf.is_empty())
        }
        Framing::Chunked => {
            let mut chunks = Chunked::default();
            let mut end = chunks.feed(&up.buf, out)?;
            up.buf.advance(end.unwrap_or(up.buf.len()));
            client.write_all(out).await.map_err(RelayError::Client)?;
            while end.is_none() {
                read(up).await?.then_some(()).ok_or(RelayError::Truncated)?;
                out.clear();
                end = chunks.feed(&up.buf, out)?;
                up.buf.advance(end.unwrap_or(up.buf.len()));
                client.write_all(out).await.map_err(RelayError::Client)?;
            }
            Ok(head.reusable && up.buf.is_empty())
        }
        Framing::UntilClose => {
            out.extend_from_slice(&up.buf);
            up.buf.clear();
            client.write_all(out).await.map_err(RelayError::Client)?;
            while read(up).await? {
                client
                    .write_all(&up.buf)
                    .await
                    .map_err(RelayError::Client)?;
                up.buf.clear();
            }
            Ok(false)
        }
    }
}

/// Reads more of the upstream's bytes into its (emptied) buffer; `false`
/// at the end of the stream.
async fn read(up: &mut UpConn) -> Result<bool, RelayError> {
    up.buf.clear();
    up.buf.reserve(READ);
    let n = super::read_some(&mut up.io, &mut up.buf)
        .await
        .map_err(RelayError::Upstream)?;
    Ok(n > 0)
}
