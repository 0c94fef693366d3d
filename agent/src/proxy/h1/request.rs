//! Which client requests the fast path takes, and what it keeps of them.
//!
//! The fast path serves only the plainest HTTP/1.1 request: origin-form
//! target, exactly one `Host`, no body (no `Transfer-Encoding`, a
//! `Content-Length` of `0` at most), no upgrade, no `Expect`, no hop-by-hop
//! header but `Connection: keep-alive | close`. Everything else, and any
//! request it cannot judge, is handed to hyper with the bytes read so far,
//! so framing ambiguities (the stuff of request smuggling) are only ever
//! judged by hyper.

use crate::engine::ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK;
use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// Most header lines a fast-path request may have; more goes to hyper.
pub(super) const MAX_HEADERS: usize = 64;
/// Largest request head the fast path serves; a longer one goes to hyper
/// (which answers 431 past its own limit).
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// Whether `target` is an origin-form target of only the characters RFC
/// 3986 allows unescaped in a path and query (`/` first, no fragment).
/// Anything else — `#`, `<`, `"`, `{`, spaces, bytes past ASCII — goes to
/// hyper, whose URI parser refuses some (400) and drops a fragment, so
/// the upstream sees exactly what hyper's path would send it.
///
/// A path with a dot segment goes to hyper too, whose path refuses it
/// ([`crate::proxy::forward::has_dot_segment`]).
fn plain_target(target: &str) -> bool {
    let bytes = target.as_bytes();
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    bytes.first() == Some(&b'/')
        && !crate::proxy::forward::has_dot_segment(path)
        && bytes.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'/' | b'?'
                        | b'%'
                        | b'-'
                        | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'@'
                )
        })
}

/// What the head at the front of the buffer is.
pub(super) enum Parsed<'b> {
    /// Not all of it has arrived.
    Partial,
    /// A request the fast path serves.
    Fast(Request<'b>),
    /// Anything else: hyper's to judge, from the first byte of this head.
    HandOver,
}

/// A fast-path request: borrowed from the connection's buffer.
pub(super) struct Request<'b> {
    pub(super) method: Method,
    /// The origin-form target (`/path?query`), as sent.
    pub(super) target: &'b str,
    /// Every header line, as sent (names in the client's case).
    pub(super) headers: &'b [httparse::Header<'b>],
    /// The one `Host` value.
    pub(super) host: &'b [u8],
    /// `Connection: close`: answer, then close.
    pub(super) close: bool,
    /// Bytes of the head, CRLF CRLF included.
    pub(super) len: usize,
}

/// What the fast path does with a request header line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Line {
    /// Sent on as is.
    Forward,
    /// Read by the engine (and sent on as is): which of [`CORS`].
    Cors(usize),
    /// `Host`: checked, and sent on as is (or replaced, see
    /// [`crate::proxy::upstream::UpstreamHostHeader`]).
    Host,
    /// `Connection`: ours; not sent on.
    Connection,
    /// `Content-Length` (only `0` passes): sent on as is.
    ContentLength,
    /// `X-Forwarded-*`: replaced by this hop's; `Forwarded`, `X-Real-IP`:
    /// dropped. Behind a trusted proxy the request goes to hyper, which
    /// appends to the chain and keeps the others.
    Forwarded,
    /// Anything that changes framing or the connection: hyper's.
    HandOver,
}

/// The request headers the engine reads.
static CORS: [HeaderName; 4] = [
    ORIGIN,
    ACCESS_CONTROL_REQUEST_METHOD,
    ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK,
];

/// Classifies a request header name (case-insensitive).
pub(super) fn line(name: &str) -> Line {
    const HAND_OVER: [&str; 10] = [
        "transfer-encoding",
        "expect",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "http2-settings",
    ];
    // `X-Forwarded-*`, and the other names for the client that are
    // dropped unless it is trusted (`forward::UNTRUSTED_CLIENT_NAMES`).
    const FORWARDED: [&str; 5] = [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
        "x-real-ip",
    ];
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is("host") {
        Line::Host
    } else if let Some(i) = CORS.iter().position(|n| is(n.as_str())) {
        Line::Cors(i)
    } else if is("connection") {
        Line::Connection
    } else if is("content-length") {
        Line::ContentLength
    } else if FORWARDED.iter().any(|n| is(n)) {
        Line::Forwarded
    } else if HAND_OVER.iter().any(|n| is(n)) {
        Line::HandOver
    } else {
        Line::Forward
    }
}

/// Parses the head at the front of `buf` into `headers` and classifies it;
/// the CORS request lines the engine reads (`Origin`,
/// `Access-Control-Request-*`, every line of each, in order) go into `cors`
/// (emptied first; a map kept per connection, so its room is reused).
/// `trust_forwarded`: a trusted proxy's `X-Forwarded-*` must be appended
/// to, which hyper's path does; the fast path only replaces them.
pub(super) fn parse<'b>(
    buf: &'b [u8],
    headers: &'b mut [httparse::Header<'b>; MAX_HEADERS],
    trust_forwarded: bool,
    cors: &mut HeaderMap,
) -> Parsed<'b> {
    let mut req = httparse::Request::new(headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        // Too many headers, HTTP/2's preface, bad bytes: hyper answers
        // these (a 400, a 431, or HTTP/2) exactly as without a fast path.
        Err(_) => return Parsed::HandOver,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::HandOver;
    };
    let method = match method {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "DELETE" => Method::DELETE,
        "PATCH" => Method::PATCH,
        "OPTIONS" => Method::OPTIONS,
        // CONNECT, TRACE and extension methods: rare, and hyper's path
        // already knows what to do with each.
        _ => return Parsed::HandOver,
    };
    if len > MAX_HEAD || !plain_target(target) {
        return Parsed::HandOver;
    }
    let headers: &'b [httparse::Header<'b>] = req.headers;
    let mut host = None;
    let mut close = false;
    let mut length_seen = false;
    cors.clear();
    for h in headers {
        match line(h.name) {
            Line::Forward => {}
            Line::Cors(i) => {
                let Ok(value) = HeaderValue::from_bytes(h.value) else {
                    return Parsed::HandOver;
                };
                cors.append(CORS[i].clone(), value);
            }
            Line::Host => {
                if host.is_some() || h.value.is_empty() {
                    return Parsed::HandOver;
                }
                host = Some(h.value);
            }
            Line::Connection => {
                if h.value.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !h.value.eq_ignore_ascii_case(b"keep-alive") {
                    return Parsed::HandOver;
                }
            }
            Line::ContentLength => {
                // One `Content-Length: 0` at most; a repeated one, even
                // agreeing, is hyper's to judge.
                if h.value != b"0" || length_seen {
                    return Parsed::HandOver;
                }
                length_seen = true;
            }
            Line::Forwarded if trust_forwarded => return Parsed::HandOver,
            Line::Forwarded => {}
            Line::HandOver => return Parsed::HandOver,
        }
    }
    let Some(host) = host else {
        return Parsed::HandOver;
    };
    Parsed::Fast(Request {
        method,
        target,
        headers,
        host,
        close,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path drops (or, trusted, hands over) exactly the names the
    /// general path drops.
    #[test]
    fn untrusted_client_names_are_forwarded_lines() {
        for name in crate::proxy::forward::UNTRUSTED_CLIENT_NAMES {
            assert!(matches!(line(name.as_str()), Line::Forwarded), "{name}");
        }
    }

    fn classify(head: &str, trust: bool) -> Option<(bool, usize, HeaderMap)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut cors = HeaderMap::new();
        cors.insert("x-left-over", HeaderValue::from_static("from before"));
        match parse(head.as_bytes(), &mut headers, trust, &mut cors) {
            Parsed::Fast(r) => Some((r.close, r.len, cors)),
            Parsed::HandOver => None,
            Parsed::Partial => panic!("partial: {head:?}"),
        }
    }

    #[test]
    fn takes_plain_bodiless_requests() {
        let head = "GET /a?b=1 HTTP/1.1\r\nHost: api\r\nOrigin: https://x.example\r\norigin: https://y.example\r\nAccept: */*\r\n\r\n";
        let (close, len, cors) = classify(head, false).expect("fast");
        assert!(!close);
        assert_eq!(len, head.len());
        let origins: Vec<_> = cors.get_all("origin").iter().collect();
        assert_eq!(origins, ["https://x.example", "https://y.example"]);
        assert_eq!(cors.len(), 2);
        let close = "OPTIONS / HTTP/1.1\r\nhost: a\r\nConnection: Close\r\ncontent-length: 0\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n";
        assert!(classify(close, false).expect("fast").0);
    }

    #[test]
    fn hands_everything_else_to_hyper() {
        for head in [
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /x<y HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /x?a=1#f HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /x?q={} HTTP/1.1\r\nHost: a\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
            "TRACE / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost:\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 00\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-private\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: x\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
        ] {
            assert!(classify(head, false).is_none(), "{head:?} taken");
        }
        let forwarded = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n";
        assert!(classify(forwarded, false).is_some());
        assert!(
            classify(forwarded, true).is_none(),
            "trusted chain appended by hyper's path"
        );
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("x-{i}: v\r\n"))
            .collect();
        assert!(classify(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n"), false).is_none());
    }

    #[test]
    fn waits_for_the_whole_head() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(matches!(
            parse(
                b"GET / HTTP/1.1\r\nHost: a\r\n",
                &mut headers,
                false,
                &mut HeaderMap::new()
            ),
            Parsed::Partial
        ));
    }
}
