//! What crosses the hop to the upstream, and whose fault a slow exchange is,
//! over real sockets: `X-Forwarded-*` set from this hop unless the client is
//! trusted; the client's host forwarded for HTTP/2 (h2c prior knowledge) and
//! absolute-form requests, or the upstream's own with
//! `--upstream-host-header upstream`; `--upstream-timeout` not counting the
//! time a client takes to upload, so a stalled body always gets 408.

mod proxy_support;

use bytes::Bytes;
use corsair_agent::engine::PolicySpec;
use corsair_agent::proxy::upstream::UpstreamHostHeader;
use corsair_agent::proxy::{Proxy, ProxyOptions};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use proxy_support::{
    AnyError, Behaviour, Head, STEP, TestUpstream, eventually, exchange, h2c, handle_with,
    read_head, serve_proxy,
};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const APP: &str = "https://app.example.com";

/// An upstream that reads each request's whole body and answers 200 with
/// one `name: value` line per request header, then `body-bytes: N`.
async fn echo_upstream() -> Result<String, AnyError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let mut text = String::new();
                for (name, value) in req.headers() {
                    text.push_str(&format!(
                        "{name}: {}\n",
                        String::from_utf8_lossy(value.as_bytes())
                    ));
                }
                let body = match req.into_body().collect().await {
                    Ok(body) => body.to_bytes(),
                    Err(_) => Bytes::new(),
                };
                text.push_str(&format!("body-bytes: {}\n", body.len()));
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    Ok(url)
}

/// The echoed header lines: every value of `name`, in order.
fn echoed<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
    body.lines()
        .filter_map(|line| line.split_once(": "))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .collect()
}

fn options() -> ProxyOptions {
    ProxyOptions {
        connect_timeout: Duration::from_secs(1),
        ..ProxyOptions::default()
    }
}

/// Serves a proxy allowing [`APP`] in front of `upstream` until the
/// returned sender drops.
async fn start_proxy(
    upstream: &str,
    options: ProxyOptions,
) -> Result<(SocketAddr, tokio::sync::oneshot::Sender<()>), AnyError> {
    let handle = handle_with(&PolicySpec {
        origins: vec![APP.into()],
        ..PolicySpec::default()
    })?;
    serve_proxy(Proxy::with_options(handle, upstream, options)?).await
}

const FORGED: &str = "GET /echo HTTP/1.1\r\nhost: api.test\r\n\
    x-forwarded-for: 203.0.113.9\r\nx-forwarded-proto: https\r\n\
    x-forwarded-host: evil.example\r\nforwarded: for=203.0.113.9;proto=https\r\n\
    x-real-ip: 203.0.113.9\r\nconnection: close\r\n\r\n";

/// [`FORGED`] through a proxy (trusting forwarded headers or not, on the
/// fast path or hyper's): the upstream's echo, whose status and `Host`
/// are checked here.
async fn forged_through(upstream: &str, trust: bool, fast: bool) -> Result<Head, AnyError> {
    let options = ProxyOptions {
        trust_forwarded_headers: trust,
        http1_fast_path: fast,
        ..options()
    };
    let (addr, _stop) = start_proxy(upstream, options).await?;
    let head = exchange(addr, FORGED.as_bytes()).await?;
    assert_eq!(
        head.status, 200,
        "trust {trust}, fast path {fast}: {head:?}"
    );
    assert_eq!(echoed(&head.body, "host"), ["api.test"], "{}", head.body);
    Ok(head)
}

/// By default a client's `X-Forwarded-*` are replaced with what this hop
/// saw (the host it asked for, plain http, its own address only), and its
/// `Forwarded` and `X-Real-IP` dropped, on both HTTP/1.1 paths.
#[tokio::test]
async fn forged_forwarded_headers_are_overwritten_by_default() -> Result<(), AnyError> {
    let upstream = echo_upstream().await?;
    for fast in [true, false] {
        let head = forged_through(&upstream, false, fast).await?;
        assert_eq!(echoed(&head.body, "x-forwarded-host"), ["api.test"]);
        assert_eq!(echoed(&head.body, "x-forwarded-proto"), ["http"]);
        assert_eq!(echoed(&head.body, "x-forwarded-for"), ["127.0.0.1"]);
        assert!(
            echoed(&head.body, "forwarded").is_empty(),
            "fast path {fast}: {}",
            head.body
        );
        assert!(
            echoed(&head.body, "x-real-ip").is_empty(),
            "fast path {fast}: {}",
            head.body
        );
    }
    Ok(())
}

/// With `trust_forwarded_headers` (a trusted proxy in front), the incoming
/// values are kept and the client is appended to `X-Forwarded-For`.
#[tokio::test]
async fn trusted_forwarded_headers_are_kept_and_appended_to() -> Result<(), AnyError> {
    let upstream = echo_upstream().await?;
    for fast in [true, false] {
        let head = forged_through(&upstream, true, fast).await?;
        assert_eq!(echoed(&head.body, "x-forwarded-host"), ["evil.example"]);
        assert_eq!(echoed(&head.body, "x-forwarded-proto"), ["https"]);
        assert_eq!(
            echoed(&head.body, "x-forwarded-for"),
            ["203.0.113.9, 127.0.0.1"]
        );
        assert_eq!(
            echoed(&head.body, "forwarded"),
            ["for=203.0.113.9;proto=https"]
        );
        assert_eq!(echoed(&head.body, "x-real-ip"), ["203.0.113.9"]);
    }
    Ok(())
}

/// An HTTP/2 client (h2c prior knowledge) names its host in `:authority`
/// only: the upstream still gets it as `Host` and `X-Forwarded-Host`.
#[tokio::test]
async fn an_h2c_clients_authority_reaches_the_upstream_as_host() -> Result<(), AnyError> {
    let upstream = echo_upstream().await?;
    let (addr, _stop) = start_proxy(&upstream, options()).await?;
    let mut sender = h2c(addr).await?;
    let req = Request::get("http://h2.example:8443/echo")
        .header("origin", APP)
        .body(Empty::<Bytes>::new())?;
    let res = tokio::time::timeout(STEP, sender.send_request(req)).await??;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], APP);
    let body = tokio::time::timeout(STEP, res.into_body().collect())
        .await??
        .to_bytes();
    let body = String::from_utf8(body.to_vec())?;
    assert_eq!(echoed(&body, "host"), ["h2.example:8443"], "{body}");
    assert_eq!(echoed(&body, "x-forwarded-host"), ["h2.example:8443"]);
    Ok(())
}

/// `--upstream-host-header`: by default the upstream gets the client's host
/// as `Host`; with `upstream` it gets its own authority (what a virtual
/// host behind a CDN or an API gateway routes by) and the client's host in
/// `X-Forwarded-Host`, on the fast path (a plain GET) and hyper's (a POST
/// with a body, or any request with the fast path off).
#[tokio::test]
async fn the_upstream_host_header_flag_picks_whose_host_is_sent() -> Result<(), AnyError> {
    let upstream = echo_upstream().await?;
    let authority = upstream.trim_start_matches("http://");
    for (mode, host) in [
        (UpstreamHostHeader::Client, "api.test"),
        (UpstreamHostHeader::Upstream, authority),
    ] {
        for fast in [true, false] {
            let options = ProxyOptions {
                http1_fast_path: fast,
                upstream_host_header: mode,
                ..options()
            };
            let (addr, _stop) = start_proxy(&upstream, options).await?;
            for request in [
                "GET /echo HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n",
                "POST /echo HTTP/1.1\r\nhost: api.test\r\ncontent-length: 2\r\n\
                 connection: close\r\n\r\nhi",
            ] {
                let head = exchange(addr, request.as_bytes()).await?;
                let case = format!("{mode:?}, fast path {fast}, {request:?}");
                assert_eq!(head.status, 200, "{case}: {head:?}");
                assert_eq!(echoed(&head.body, "host"), [host], "{case}: {}", head.body);
                assert_eq!(
                    echoed(&head.body, "x-forwarded-host"),
                    ["api.test"],
                    "{case}: {}",
                    head.body
                );
            }
        }
    }
    Ok(())
}

/// `--upstream-host-header upstream` for an HTTP/2 client: its
/// `:authority` goes to `X-Forwarded-Host`, the upstream's own to `Host`.
#[tokio::test]
async fn an_h2c_clients_authority_gives_way_to_the_upstreams() -> Result<(), AnyError> {
    let upstream = echo_upstream().await?;
    let options = ProxyOptions {
        upstream_host_header: UpstreamHostHeader::Upstream,
        ..options()
    };
    let (addr, _stop) = start_proxy(&upstream, options).await?;
    let mut sender = h2c(addr).await?;
    let req = Request::get("http://h2.example:8443/echo")
        .header("origin", APP)
        .body(Empty::<Bytes>::new())?;
    let res = tokio::time::timeout(STEP, sender.send_request(req)).await??;
    assert_eq!(res.status(), 200);
    let body = tokio::time::timeout(STEP, res.into_body().collect())
        .await??
        .to_bytes();
    let body = String::from_utf8(body.to_vec())?;
    let authority = upstream.trim_start_matches("http://");
    assert_eq!(echoed(&body, "host"), [authority], "{body}");
    assert_eq!(echoed(&body, "x-forwarded-host"), ["h2.example:8443"]);
    Ok(())
}

/// An absolute-form HTTP/1.1 request: the URI's authority wins over `Host`
/// (RFC 9112 §3.2.2).
#[tokio::test]
async fn an_absolute_form_requests_authority_wins_over_host() -> Result<(), AnyError> {
    let upstream = echo_upstream().await?;
    let (addr, _stop) = start_proxy(&upstream, options()).await?;
    let head = exchange(
        addr,
        b"GET http://abs.example/echo HTTP/1.1\r\nhost: other.example\r\nconnection: close\r\n\r\n",
    )
    .await?;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(echoed(&head.body, "host"), ["abs.example"], "{}", head.body);
    assert_eq!(echoed(&head.body, "x-forwarded-host"), ["abs.example"]);
    Ok(())
}

/// A chunked request body reaches the upstream whatever the method: hyper's
/// client sends no body for a GET or HEAD of unknown length unless its
/// `Transfer-Encoding` says so, and the hop-by-hop header had been dropped,
/// so such a body was lost without a word.
#[tokio::test]
async fn a_chunked_body_reaches_the_upstream_for_every_method() -> Result<(), AnyError> {
    let upstream = echo_upstream().await?;
    for fast in [true, false] {
        let options = ProxyOptions {
            http1_fast_path: fast,
            ..options()
        };
        let (addr, _stop) = start_proxy(&upstream, options).await?;
        for method in ["GET", "POST", "DELETE", "OPTIONS"] {
            let request = format!(
                "{method} /echo HTTP/1.1\r\nhost: api.test\r\norigin: {APP}\r\n\
                 transfer-encoding: chunked\r\nconnection: close\r\n\r\n\
                 5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            );
            let head = exchange(addr, request.as_bytes()).await?;
            let case = format!("{method}, fast path {fast}");
            assert_eq!(head.status, 200, "{case}: {head:?}");
            assert_eq!(
                echoed(&head.body, "body-bytes"),
                ["11"],
                "{case}: {}",
                head.body
            );
            assert_eq!(
                echoed(&head.body, "transfer-encoding"),
                ["chunked"],
                "{case}: {}",
                head.body
            );
            assert!(
                echoed(&head.body, "content-length").is_empty(),
                "{case}: {}",
                head.body
            );
        }
    }
    Ok(())
}

/// An HTTP/2 GET with a body and no `content-length` (HTTP/2 frames it
/// itself) reaches the HTTP/1.1 upstream with its body, chunked.
#[tokio::test]
async fn an_h2c_get_with_a_body_reaches_the_upstream_whole() -> Result<(), AnyError> {
    let upstream = echo_upstream().await?;
    let (addr, _stop) = start_proxy(&upstream, options()).await?;
    let mut sender = h2c(addr).await?;
    for (method, body) in [("GET", "hello world"), ("GET", ""), ("POST", "posted")] {
        let frames = (!body.is_empty())
            .then(|| Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(body))));
        let req = Request::builder()
            .method(method)
            .uri("http://h2.example/echo")
            .header("origin", APP)
            .body(http_body_util::StreamBody::new(futures_util::stream::iter(
                frames,
            )))?;
        let res = tokio::time::timeout(STEP, sender.send_request(req)).await??;
        assert_eq!(res.status(), 200, "{method} {body:?}");
        let echo = tokio::time::timeout(STEP, res.into_body().collect())
            .await??
            .to_bytes();
        let echo = String::from_utf8(echo.to_vec())?;
        let expected = body.len().to_string();
        assert_eq!(
            echoed(&echo, "body-bytes"),
            [expected.as_str()],
            "{method} {body:?}: {echo}"
        );
    }
    Ok(())
}

/// A slow but steady upload that takes longer than `--upstream-timeout` is
/// the client's time, not the upstream's: it succeeds.
#[tokio::test]
async fn a_steady_upload_longer_than_the_upstream_timeout_succeeds() -> Result<(), AnyError> {
    let upstream = echo_upstream().await?;
    let options = ProxyOptions {
        upstream_timeout: Duration::from_millis(200),
        request_body_timeout: STEP,
        ..options()
    };
    let (addr, _stop) = start_proxy(&upstream, options).await?;
    let mut client = TcpStream::connect(addr).await?;
    client
        .write_all(
            format!(
                "POST /upload HTTP/1.1\r\nhost: api.test\r\norigin: {APP}\r\n\
                 content-length: 10\r\nconnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    // The upload's pace (not synchronisation): ten bytes over a second,
    // five times the upstream timeout.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.write_all(b"x").await?;
    }
    let head = Head::parse(&tokio::time::timeout(STEP, read_head(&mut client)).await??)?;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.get("access-control-allow-origin"), Some(APP));
    let mut body = String::new();
    tokio::time::timeout(STEP, client.read_to_string(&mut body)).await??;
    assert_eq!(echoed(&body, "body-bytes"), ["10"], "{body}");
    Ok(())
}

/// With equal timeouts, a client that stops sending its body always gets
/// 408 (the upstream was waiting on the client, not the other way round).
#[tokio::test]
async fn a_stalled_body_gets_408_even_with_equal_timeouts() -> Result<(), AnyError> {
    let upstream = TestUpstream::start(Behaviour::ReadsUntilClosed).await?;
    let options = ProxyOptions {
        upstream_timeout: Duration::from_millis(150),
        request_body_timeout: Duration::from_millis(150),
        ..options()
    };
    let (addr, _stop) = start_proxy(&upstream.url, options).await?;
    for attempt in 1..=8 {
        let mut client = TcpStream::connect(addr).await?;
        client
            .write_all(
                format!(
                    "POST /upload HTTP/1.1\r\nhost: api.test\r\norigin: {APP}\r\n\
                     content-length: 100\r\n\r\nfirst ten."
                )
                .as_bytes(),
            )
            .await?;
        let head = Head::parse(&tokio::time::timeout(STEP, read_head(&mut client)).await??)?;
        assert_eq!(head.status, 408, "attempt {attempt}: {head:?}");
        assert_eq!(head.get("access-control-allow-origin"), Some(APP));
        eventually("the upstream connection to be closed", || async {
            (upstream.closed() == attempt).then_some(())
        })
        .await?;
    }
    Ok(())
}

/// An upstream that does not take the request body is the upstream's
/// fault: 504 after `--upstream-timeout`, not a hang (the client keeps
/// sending, so the body timeout never fires).
#[tokio::test]
async fn an_upstream_that_never_reads_the_body_gets_504() -> Result<(), AnyError> {
    let upstream = TestUpstream::start(Behaviour::Silent).await?;
    let options = ProxyOptions {
        upstream_timeout: Duration::from_millis(300),
        request_body_timeout: STEP,
        ..options()
    };
    let (addr, _stop) = start_proxy(&upstream.url, options).await?;
    let stream = TcpStream::connect(addr).await?;
    let (mut read, mut write) = stream.into_split();
    // Far more than the socket buffers between here and the upstream hold.
    const SIZE: usize = 256 << 20;
    write
        .write_all(
            format!(
                "POST /upload HTTP/1.1\r\nhost: api.test\r\norigin: {APP}\r\n\
                 content-length: {SIZE}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let uploader = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..SIZE / chunk.len() {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(STEP, read.read(&mut byte)).await??;
        if n == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = Head::parse(&String::from_utf8(head)?)?;
    assert_eq!(head.status, 504, "{head:?}");
    assert_eq!(head.get("access-control-allow-origin"), Some(APP));
    uploader.abort();
    Ok(())
}

/// A connection that does not deliver a whole request head within
/// `head_timeout` is closed on both HTTP/1.1 paths: a trickled head
/// (slowloris), and idle keep-alive after an answer (hyper's path closes
/// after the timeout, the fast path within two of it).
#[tokio::test]
async fn a_head_not_sent_in_time_closes_the_connection() -> Result<(), AnyError> {
    let upstream = echo_upstream().await?;
    for fast in [true, false] {
        let options = ProxyOptions {
            head_timeout: Duration::from_millis(300),
            http1_fast_path: fast,
            ..options()
        };
        let (addr, _stop) = start_proxy(&upstream, options).await?;
        let mut trickled = TcpStream::connect(addr).await?;
        trickled
            .write_all(b"GET /echo HTTP/1.1\r\nhost: api.test\r\n")
            .await?;
        let mut idle = TcpStream::connect(addr).await?;
        idle.write_all(b"GET /echo HTTP/1.1\r\nhost: api.test\r\n\r\n")
            .await?;
        let head = Head::parse(&tokio::time::timeout(STEP, read_head(&mut idle)).await??)?;
        assert_eq!(head.status, 200, "fast path {fast}: {head:?}");
        for (what, stream) in [
            ("trickled head", &mut trickled),
            ("idle keep-alive", &mut idle),
        ] {
            // The rest of an answer, then the end: the proxy closed it.
            let mut rest = Vec::new();
            let closed =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
            assert!(
                closed.is_ok(),
                "fast path {fast}: {what}: still open 5 s after a 0.3 s head timeout"
            );
        }
    }
    Ok(())
}
