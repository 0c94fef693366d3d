//! The hop to the upstream: where to send a request, and which headers must
//! not cross a proxy (RFC 9110 §7.6.1).

use http::HeaderValue;
use http::Request;
use http::header::{self, HeaderMap, HeaderName};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use std::fmt;
use std::net::IpAddr;

/// The upstream is not a usable `http[s]://host[:port][/base]` URL.
#[derive(Debug, thiserror::Error)]
#[error("upstream {given:?}: {message}")]
pub struct UpstreamError {
    given: String,
    message: &'static str,
}

/// A request could not be mapped onto the upstream.
#[derive(Debug, thiserror::Error)]
#[error("corsair-agent: cannot forward this request: {0}")]
pub struct RewriteError(String);

/// Where requests go: scheme, authority and an optional base path.
#[derive(Debug, Clone)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    base_path: String,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

impl Upstream {
    /// Parses `http[s]://host[:port][/base]`. A sidecar talks plain HTTP to
    /// its neighbour over loopback; `https://` is for upstreams elsewhere.
    pub fn parse(given: &str) -> Result<Self, UpstreamError> {
        let err = |message| UpstreamError {
            given: given.to_string(),
            message,
        };
        let uri: Uri = given.parse().map_err(|_| err("not a URL"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| err("missing scheme; use http://host:port"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(err("only http:// and https:// upstreams are supported"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| err("missing host"))?;
        if uri.query().is_some() {
            return Err(err("an upstream URL cannot carry a query"));
        }
        if let Some((_, host)) = authority.as_str().rsplit_once('@') {
            // Never sent (the proxy adds no Authorization of its own), and
            // the URL is logged at start: refused, and not echoed back.
            return Err(UpstreamError {
                given: format!("{scheme}://…@{host}"),
                message: "an upstream URL cannot carry a user name or password \
                          (they would be ignored, and logged); pass credentials from the client",
            });
        }
        let base_path = uri.path().trim_end_matches('/').to_string();
        Ok(Self {
            scheme,
            authority,
            base_path,
        })
    }

    /// Whether the upstream is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// `scheme://authority` of the upstream (what a connection dials).
    pub fn origin(&self) -> Uri {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(self.authority.clone());
        uri.path_and_query = Some(PathAndQuery::from_static("/"));
        // Scheme and authority come from a parsed URI.
        Uri::from_parts(uri).unwrap_or_default()
    }

    /// The base path every request's path is put under (no trailing `/`;
    /// empty for none).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The upstream's `host[:port]`.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Points `req` at the upstream (the origin-form request target it gets
    /// on the upstream connection: the base path, then the client's path
    /// and query) and drops hop-by-hop headers. `CONNECT` is refused: it
    /// asks a forward proxy for a tunnel, which a reverse proxy in front of
    /// one upstream is not.
    ///
    /// A path with a dot segment is refused too (see [`has_dot_segment`]):
    /// joined onto the base path, `/../admin` would step outside it, and an
    /// upstream resolving it differently from us is a classic path
    /// confusion. Browsers never send one.
    pub fn rewrite<B>(&self, mut req: Request<B>) -> Result<Request<B>, RewriteError> {
        if req.method() == http::Method::CONNECT {
            return Err(RewriteError("CONNECT tunnels are not forwarded".into()));
        }
        // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host line. Two
        // are a request-smuggling and cache-poisoning lever (each hop may
        // pick another one); none leaves the upstream to guess.
        if req.version() == http::Version::HTTP_11 {
            match req.headers().get_all(http::header::HOST).iter().count() {
                1 => {}
                0 => {
                    return Err(RewriteError(
                        "an HTTP/1.1 request needs a Host line (RFC 9112 §3.2)".into(),
                    ));
                }
                n => {
                    return Err(RewriteError(format!(
                        "an HTTP/1.1 request has one Host line, this one has {n} (RFC 9112 §3.2)"
                    )));
                }
            }
        }
        if has_dot_segment(req.uri().path()) {
            return Err(RewriteError(
                "the path has a `.` or `..` segment (possibly percent-encoded, or before a `;`); \
                 send the path with dot segments resolved, as browsers do"
                    .into(),
            ));
        }
        let path_and_query = match (req.uri().path_and_query(), self.base_path.is_empty()) {
            // The common case shares the request's bytes: no parse, no copy.
            (Some(pq), true) => pq.clone(),
            (None, true) => PathAndQuery::from_static("/"),
            (pq, false) => {
                let pq = pq.map_or("/", PathAndQuery::as_str);
                format!("{}{}", self.base_path, pq)
                    .parse()
                    .map_err(|e: http::uri::InvalidUri| RewriteError(e.to_string()))?
            }
        };
        *req.uri_mut() = Uri::from(path_and_query);
        strip_hop_by_hop(req.headers_mut());
        // The upstream connection speaks HTTP/1.1 whatever the client spoke
        // to us.
        *req.version_mut() = http::Version::HTTP_11;
        Ok(req)
    }
}

/// Whether `path` (without its query) has a segment that a server may
/// resolve as `.` or `..`: the URL standard's single- and double-dot
/// segments (`.`, `..`, with any dot written `%2e` or `%2E`), also before a
/// `;` parameter (`..;`, which Java servlet containers resolve as `..`) and
/// with `\` taken as a separator (as some servers take it). Browsers remove
/// every one of these before sending (WHATWG URL parser), so refusing them
/// costs browser traffic nothing.
pub fn has_dot_segment(path: &str) -> bool {
    path.split(['/', '\\']).any(|segment| {
        let name = segment.split_once(';').map_or(segment, |(name, _)| name);
        is_dot_segment(name.as_bytes())
    })
}

/// `.` or `..`, each dot written `.` or `%2e` (any case).
fn is_dot_segment(mut s: &[u8]) -> bool {
    let mut dots = 0;
    while !s.is_empty() {
        s = match s {
            [b'.', rest @ ..] => rest,
            [b'%', b'2', e, rest @ ..] if e.eq_ignore_ascii_case(&b'e') => rest,
            _ => return false,
        };
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
    dots > 0
}

/// The host the client asked for: the request URI's authority when it has
/// one (an absolute-form HTTP/1.1 request, where it wins over `Host` per
/// RFC 9112 §3.2.2, or HTTP/2's `:authority`), else the `Host` header.
/// Read before [`Upstream::rewrite`] points the URI at the upstream.
pub fn client_host(parts: &http::request::Parts) -> Option<HeaderValue> {
    match parts.uri.authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => parts.headers.get(header::HOST).cloned(),
    }
}

/// Tells the upstream who the client was, as reverse proxies do. `host` (from
/// [`client_host`]) is forwarded as `Host`, so HTTP/2 and absolute-form
/// requests reach the upstream like origin-form HTTP/1.1 ones. Under
/// `--upstream-host-header upstream` that `Host` is replaced when the
/// request is sent (see `Connector::replaced_host`); `X-Forwarded-Host`
/// keeps it.
///
/// Untrusted (`trust` off, the default): `X-Forwarded-For` is the client's
/// address only and `X-Forwarded-Proto` / `X-Forwarded-Host` are what this
/// hop saw, whatever the client sent (a client could otherwise forge the
/// host an application puts in its links). Trusted (a proxy this agent
/// trusts is the client): the client's address is appended to its
/// `X-Forwarded-For`, and its `X-Forwarded-Proto` / `X-Forwarded-Host` are
/// kept, set from this hop only when absent.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: IpAddr,
    host: Option<HeaderValue>,
    trust: bool,
) {
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    const PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    const HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
    // Room for the headers below in one growth of the map.
    headers.reserve(3);
    match &host {
        Some(host) => headers.insert(header::HOST, host.clone()),
        None => headers.remove(header::HOST),
    };
    if trust && headers.contains_key(&XFF) {
        append_to_chain(headers, client);
    } else {
        // The usual case: no trusted proxy before us. The client's address,
        // formatted once per thread and address, is shared, not copied.
        headers.insert(XFF, client_value(client));
    }
    if !(trust && headers.contains_key(&PROTO)) {
        headers.insert(PROTO, HeaderValue::from_static("http"));
    }
    if !(trust && headers.contains_key(&HOST)) {
        match host {
            Some(host) => headers.insert(HOST, host),
            None => headers.remove(HOST),
        };
    }
    if !trust {
        // The other ways of naming the client (RFC 7239 `Forwarded`, and
        // `X-Real-IP`) come from the client itself here: an upstream that
        // believed them would take a forged address. Not set by this hop;
        // `X-Forwarded-*` above says what it saw.
        for name in UNTRUSTED_CLIENT_NAMES {
            headers.remove(name);
        }
    }
}

/// Request headers that name the client or its proxies other than
/// `X-Forwarded-*`; dropped unless the client is a trusted proxy.
pub(crate) const UNTRUSTED_CLIENT_NAMES: [HeaderName; 2] =
    [header::FORWARDED, HeaderName::from_static("x-real-ip")];

/// `X-Forwarded-For` with earlier (trusted) proxies' addresses first, then `client`.
fn append_to_chain(headers: &mut HeaderMap, client: IpAddr) {
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    let prior: Vec<&str> = headers
        .get_all(&XFF)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let chain = if prior.is_empty() {
        client.to_string()
    } else {
        format!("{}, {client}", prior.join(", "))
    };
    // Every part is visible ASCII (checked by to_str) or an IP address.
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert(XFF, value);
    }
}

/// `client` as a header value. A connection's requests all come from one
/// address (and behind a local gateway, every connection's), so the last
/// formatted value is kept per thread and cloned (a reference count, no
/// copy) while the address repeats.
fn client_value(client: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((ip, value)) if *ip == client => value.clone(),
        _ => {
            // An IP address is always a valid header value.
            let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(client.to_string()))
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
            *last = Some((client, value.clone()));
            value
        }
    })
}

/// The first transfer coding in `values` (the lines of a
/// `Transfer-Encoding` header, in order) that this proxy cannot pass on,
/// if any.
///
/// Passed on: a final `chunked` (this hop's framing: the body is re-framed
/// on the next hop), with any number of `identity` before it (RFC 2616's
/// "no coding", which changes nothing), or `identity` alone. Refused:
/// every other coding (`gzip`, `deflate`, `compress`, an unknown token),
/// which is applied to the bytes themselves and is hop-by-hop as well, so
/// re-framing would hand the next hop coded bytes under no coding at all;
/// a `chunked` that is not last or comes twice (RFC 9112 §7: applied
/// once, last), whose framing the body would keep; and a `chunked` with
/// parameters, which no framing reads as chunked. The answer is then an
/// error (RFC 9112 §6.1's 501 for a request, as nginx answers; a 502 for
/// an upstream's answer, which Debian's nginx 1.22 passes on as plain
/// `chunked`, losing the coding). Names compare case-insensitively; empty
/// list elements are skipped (RFC 9110 §5.6.1).
pub fn unsupported_transfer_coding<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Option<&'a [u8]> {
    let mut codings = values
        .into_iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|coding| !coding.is_empty())
        .peekable();
    while let Some(coding) = codings.next() {
        let last = codings.peek().is_none();
        let passes = coding.eq_ignore_ascii_case(b"identity")
            || (last && coding.eq_ignore_ascii_case(b"chunked"));
        if !passes {
            return Some(coding);
        }
    }
    None
}

/// Removes connection-specific headers, including those the `Connection`
/// header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names instead of nine hashed removals: most
    // requests carry none of these, and most responses only `Connection`.
    let present = headers
        .keys()
        .filter_map(hop_by_hop_index)
        .fold(0u16, |mask, i| mask | 1 << i);
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        remove_named_by_connection(headers);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & 1 << i != 0 {
            headers.remove(name);
        }
    }
}

/// Removes the headers `Connection` names besides the fixed set (rare: the
/// usual tokens are `keep-alive`, `close` and `upgrade`, so no allocation).
fn remove_named_by_connection(headers: &mut HeaderMap) {
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim) {
            // `close` names no header; the fixed names go anyway (and
            // `keep-alive`, the usual token, is not worth a HeaderName).
            if token.is_empty()
                || ["close", "keep-alive", "upgrade", "te", "trailer"]
                    .iter()
                    .any(|t| token.eq_ignore_ascii_case(t))
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes())
                && hop_by_hop_index(&name).is_none()
            {
                named.push(name);
            }
        }
    }
    for name in named {
        headers.remove(name);
    }
}

/// Headers that never cross a proxy; `Connection` (which may name more of
/// them) first.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Where `name` is in [`HOP_BY_HOP`]: one length-and-bytes match, cheaper
/// than nine `HeaderName` comparisons.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "proxy-authenticate" => 1,
        "proxy-authorization" => 2,
        "te" => 3,
        "trailer" => 4,
        "transfer-encoding" => 5,
        "upgrade" => 6,
        "keep-alive" => 7,
        "proxy-connection" => 8,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn transfer_codings_other_than_chunked_are_found() {
        let find = |lines: &[&'static str]| {
            super::unsupported_transfer_coding(lines.iter().map(|l| l.as_bytes()))
                .map(|c| String::from_utf8_lossy(c).into_owned())
        };
        assert_eq!(find(&["chunked"]), None);
        assert_eq!(find(&["identity, CHUNKED"]), None);
        assert_eq!(find(&["identity", " , Chunked ,"]), None);
        assert_eq!(find(&["identity"]), None);
        assert_eq!(find(&[""]), None);
        assert_eq!(find(&["gzip, chunked"]).as_deref(), Some("gzip"));
        assert_eq!(
            find(&["chunked", "x-zip ; level=9"]).as_deref(),
            Some("chunked")
        );
        assert_eq!(
            find(&["x-zip ; level=9", "chunked"]).as_deref(),
            Some("x-zip ; level=9")
        );
        assert_eq!(find(&["chunked, deflate"]).as_deref(), Some("chunked"));
        assert_eq!(find(&["chunked, identity"]).as_deref(), Some("chunked"));
        assert_eq!(find(&["chunked", "chunked"]).as_deref(), Some("chunked"));
        assert_eq!(find(&["chunked;ext=1"]).as_deref(), Some("chunked;ext=1"));
    }

    use super::*;

    #[test]
    fn dot_segments_are_found_however_spelled() {
        for path in [
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/%2e",
            "/%2E%2e/x",
            "/.%2e",
            "/%2e.",
            "/..;a=b",
            "/.;x",
            "/a\\..\\b",
            "/a/..\\",
            "..",
            ".",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in [
            "/",
            "",
            "/a",
            "/a..b",
            "/.well-known/x",
            "/...",
            "/%2e%2e%2e",
            "/%2f..",
            "/a;..",
            "/%2",
            "/%2x",
            "/a.",
        ] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }

    #[test]
    fn an_http11_request_needs_exactly_one_host_line() {
        let up = Upstream::parse("http://127.0.0.1:9000").expect("valid upstream");
        let with_hosts = |hosts: &[&str], version| {
            let mut req = Request::builder().uri("/items").version(version);
            for host in hosts {
                req = req.header("host", *host);
            }
            up.rewrite(req.body(()).expect("request"))
        };
        assert!(with_hosts(&["a.test"], http::Version::HTTP_11).is_ok());
        let none = with_hosts(&[], http::Version::HTTP_11).expect_err("no Host refused");
        assert!(none.to_string().contains("needs a Host line"), "{none}");
        let two = with_hosts(&["a.test", "b.test"], http::Version::HTTP_11)
            .expect_err("two Hosts refused");
        assert!(two.to_string().contains("this one has 2"), "{two}");
        // HTTP/1.0 may omit it; HTTP/2 names its host in `:authority`.
        assert!(with_hosts(&[], http::Version::HTTP_10).is_ok());
        assert!(with_hosts(&[], http::Version::HTTP_2).is_ok());
    }

    #[test]
    fn rewrites_onto_the_upstream_with_its_base_path() {
        let up = Upstream::parse("http://127.0.0.1:9000/api/").expect("valid upstream");
        let req = Request::builder()
            .uri("http://agent.example/v1/items?x=1")
            .header("host", "agent.example")
            .header("connection", "keep-alive, x-private")
            .header("x-private", "secret")
            .header("keep-alive", "timeout=5")
            .header("x-kept", "yes")
            .body(())
            .expect("request");
        let req = up.rewrite(req).expect("rewrite");
        assert_eq!(req.uri().to_string(), "/api/v1/items?x=1");
        assert_eq!(up.origin().to_string(), "http://127.0.0.1:9000/");
        assert!(req.headers().get("x-private").is_none());
        assert!(req.headers().get("keep-alive").is_none());
        assert!(req.headers().get("connection").is_none());
        assert_eq!(
            req.headers().get("x-kept").map(|v| v.as_bytes()),
            Some(&b"yes"[..])
        );
    }

    #[test]
    fn names_the_client_in_forwarded_headers() {
        let client: IpAddr = "192.0.2.7".parse().expect("ip");
        let host = Some(HeaderValue::from_static("api.example.com"));
        let mut fresh = HeaderMap::new();
        add_forwarded(&mut fresh, client, host.clone(), false);
        assert_eq!(fresh["host"], "api.example.com");
        assert_eq!(fresh["x-forwarded-for"], "192.0.2.7");
        assert_eq!(fresh["x-forwarded-proto"], "http");
        assert_eq!(fresh["x-forwarded-host"], "api.example.com");

        let forged = || {
            let mut h = HeaderMap::new();
            h.append("x-forwarded-for", HeaderValue::from_static("203.0.113.1"));
            h.append("x-forwarded-for", HeaderValue::from_static(" 10.0.0.1 "));
            h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
            h.insert("x-forwarded-host", HeaderValue::from_static("edge.example"));
            h
        };
        // Untrusted: everything from this hop.
        let mut untrusted = forged();
        add_forwarded(
            &mut untrusted,
            "::1".parse().expect("ip"),
            host.clone(),
            false,
        );
        assert_eq!(untrusted.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(untrusted["x-forwarded-for"], "::1");
        assert_eq!(untrusted["x-forwarded-proto"], "http");
        assert_eq!(untrusted["x-forwarded-host"], "api.example.com");

        // Behind a trusted proxy: append to its chain (both header lines),
        // keep what it said about proto and host.
        let mut behind = forged();
        add_forwarded(&mut behind, "::1".parse().expect("ip"), host, true);
        assert_eq!(behind.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(behind["x-forwarded-for"], "203.0.113.1, 10.0.0.1, ::1");
        assert_eq!(behind["x-forwarded-proto"], "https");
        assert_eq!(behind["x-forwarded-host"], "edge.example");
        assert_eq!(behind["host"], "api.example.com");
    }

    #[test]
    fn refuses_unusable_upstreams() {
        assert!(
            Upstream::parse("https://a.example:8443/api")
                .expect("https upstream")
                .is_https()
        );
        for bad in [
            "",
            "127.0.0.1:80",
            "https://a.example/?q=1",
            "http://a.example/?q=1",
            "ftp://x",
            "http://user@a.example",
            "http://user:secret@127.0.0.1:9000",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad:?} accepted");
        }
        let userinfo = Upstream::parse("https://user:secret@a.example:8443")
            .expect_err("userinfo refused")
            .to_string();
        assert!(!userinfo.contains("secret"), "{userinfo}");
        assert!(userinfo.contains("a.example:8443"), "{userinfo}");
        assert!(userinfo.contains("user name or password"), "{userinfo}");
    }
}
