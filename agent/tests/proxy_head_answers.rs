//! A HEAD request's answer has no body, the agent's own failure answers
//! (502, 504) included, on both HTTP/1.1 paths: body bytes after the head
//! would be read as the start of the next answer on a keep-alive
//! connection. Checked with a raw client (hyper's client would hide stray
//! bytes), HEAD then GET on one connection, against an upstream that is
//! down and one that never answers; the fast path's heads must be the ones
//! hyper's path sends.

mod proxy_support;

use corsair_agent::engine::PolicySpec;
use corsair_agent::proxy::{Proxy, ProxyOptions};
use proxy_support::{
    AnyError, Behaviour, Head, STEP, TestUpstream, handle_with, read_head, refused_port,
    serve_proxy,
};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const APP: &str = "https://app.example.com";

/// The CORS decision (and the failure's own headers) every own answer here
/// carries, as `tests/proxy_own_answers.rs` expects them.
const EXPECTED: [(&str, &str); 6] = [
    ("access-control-allow-origin", APP),
    ("access-control-allow-credentials", "true"),
    ("access-control-expose-headers", "x-request-id"),
    ("vary", "Origin"),
    ("content-type", "text/plain; charset=utf-8"),
    ("cache-control", "no-store"),
];

/// Serves a proxy in front of `upstream` until the returned sender drops.
async fn start_proxy(
    upstream: &str,
    options: ProxyOptions,
) -> Result<(SocketAddr, tokio::sync::oneshot::Sender<()>), AnyError> {
    let handle = handle_with(&PolicySpec {
        origins: vec![APP.into()],
        expose_headers: vec!["x-request-id".into()],
        allow_credentials: true,
        ..PolicySpec::default()
    })?;
    serve_proxy(Proxy::with_options(handle, upstream, options)?).await
}

/// Reads one answer's head on `stream`, failing unless it starts with a
/// status line (stray body bytes of the previous answer would come first).
async fn next_head(stream: &mut TcpStream, what: &str) -> Result<Head, AnyError> {
    let raw = tokio::time::timeout(STEP, read_head(stream)).await??;
    if !raw.starts_with("HTTP/1.1 ") {
        return Err(
            format!("{what}: the answer does not start with a status line: {raw:?}").into(),
        );
    }
    Head::parse(&raw)
}

/// HEAD, then GET (`connection: close`) on one connection; returns the
/// HEAD's head and the GET's head with its body.
async fn head_then_get(addr: SocketAddr, what: &str) -> Result<(Head, Head), AnyError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("HEAD /x HTTP/1.1\r\nhost: api.test\r\norigin: {APP}\r\n\r\n").as_bytes(),
        )
        .await?;
    let head = next_head(&mut stream, &format!("{what}: HEAD")).await?;
    stream
        .write_all(
            format!(
                "GET /x HTTP/1.1\r\nhost: api.test\r\norigin: {APP}\r\nconnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut get = next_head(&mut stream, &format!("{what}: GET after HEAD")).await?;
    let mut body = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut body)).await??;
    get.body = String::from_utf8(body)?;
    Ok((head, get))
}

#[tokio::test]
async fn own_answers_to_head_have_no_body_on_a_keep_alive_connection() -> Result<(), AnyError> {
    let refused_port = refused_port().await?;
    let refused = format!("http://{}", refused_port.addr);
    let silent = TestUpstream::start(Behaviour::Silent).await?;
    let cases = [
        (
            "upstream down",
            refused.as_str(),
            502,
            "corsair-agent: the upstream did not answer\n",
        ),
        (
            "upstream silent",
            silent.url.as_str(),
            504,
            "corsair-agent: the upstream did not answer in time\n",
        ),
    ];
    for (case, upstream, status, body) in cases {
        let mut heads = Vec::new();
        for fast in [true, false] {
            let what = format!("{case}, fast path {fast}");
            let options = ProxyOptions {
                connect_timeout: Duration::from_secs(1),
                upstream_timeout: Duration::from_millis(300),
                http1_fast_path: fast,
                ..ProxyOptions::default()
            };
            let (addr, _stop) = start_proxy(upstream, options).await?;
            let (head, get) = head_then_get(addr, &what).await?;
            for answer in [&head, &get] {
                assert_eq!(answer.status, status, "{what}: {answer:?}");
                for (name, value) in EXPECTED {
                    assert_eq!(
                        answer.get(name),
                        Some(value),
                        "{what}: {name} in {answer:?}"
                    );
                }
            }
            assert_eq!(get.body, body, "{what}: the GET's body");
            // HEAD: the length a GET would get, and no bytes of it.
            assert_eq!(
                head.get("content-length"),
                Some(body.len().to_string().as_str()),
                "{what}: {head:?}"
            );
            heads.push(head.stable_headers());
        }
        assert_eq!(
            heads[0], heads[1],
            "{case}: fast path's HEAD head vs hyper's"
        );
    }
    Ok(())
}
