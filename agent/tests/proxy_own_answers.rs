//! Every answer the proxy makes by itself carries the CORS decision an
//! upstream answer would get, over real sockets: one row per own-answer
//! case (policy, request, upstream behaviour, expected status and exact
//! headers, whether the upstream was reached). The first row is the
//! reference: the same request answered by a healthy upstream.

mod proxy_support;

use corsair_agent::engine::PolicySpec;
use corsair_agent::handle::PolicyHandle;
use corsair_agent::proxy::{Proxy, ProxyOptions};
use proxy_support::{
    AnyError, Behaviour, Head, NeverAccepts, STEP, TestUpstream, eventually, exchange, handle_with,
    read_head, refused_port, serve_proxy,
};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example.net";

/// What the proxy forwards to.
#[derive(Debug, Clone, Copy)]
enum Up {
    /// A live upstream behaving so.
    Live(Behaviour),
    /// Nothing listens: connection refused.
    Refused,
    /// A listener that never accepts (full backlog): the connect hangs.
    NeverAccepts,
}

#[derive(Debug, Clone, Copy)]
enum Pol {
    /// Allows APP, with credentials and an exposed header.
    Credentialed,
    /// Same, strict mode (disallowed origins get 403 before the upstream).
    Strict,
    /// No policy loaded: fail closed.
    None,
}

struct Row {
    name: &'static str,
    policy: Pol,
    up: Up,
    /// The request: method, target and extra header lines.
    method: &'static str,
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    /// Every header of the answer but `date` and `content-length`, in any
    /// order.
    expect: &'static [(&'static str, &'static str)],
    /// The whole body (`content-length` must match it).
    body: &'static str,
    upstream_reached: bool,
}

/// The CORS decision for an allowed, credentialed actual request.
const GRANT: [(&str, &str); 4] = [
    ("access-control-allow-origin", APP),
    ("access-control-allow-credentials", "true"),
    ("access-control-expose-headers", "x-request-id"),
    ("vary", "Origin"),
];

/// The headers of a failure answer (plain text, not cacheable) plus the
/// CORS ones.
macro_rules! own {
    ($($cors:expr),* $(,)?) => {
        &[
            ("content-type", "text/plain; charset=utf-8"),
            ("cache-control", "no-store"),
            $($cors),*
        ]
    };
}

const DOWN: &str = "corsair-agent: the upstream did not answer\n";
const SLOW: &str = "corsair-agent: the upstream did not answer in time\n";

const ROWS: &[Row] = &[
    Row {
        name: "reference: a healthy upstream's answer",
        policy: Pol::Credentialed,
        up: Up::Live(Behaviour::Ok),
        method: "GET",
        target: "/items",
        headers: &[("origin", APP)],
        status: 200,
        expect: &[GRANT[0], GRANT[1], GRANT[2], GRANT[3]],
        body: "ok\n",
        upstream_reached: true,
    },
    Row {
        name: "upstream refuses the connection: 502 with the grant",
        policy: Pol::Credentialed,
        up: Up::Refused,
        method: "GET",
        target: "/items",
        headers: &[("origin", APP)],
        status: 502,
        expect: own!(GRANT[0], GRANT[1], GRANT[2], GRANT[3]),
        body: DOWN,
        upstream_reached: false,
    },
    Row {
        name: "upstream refuses, disallowed origin: 502, Vary only",
        policy: Pol::Credentialed,
        up: Up::Refused,
        method: "GET",
        target: "/items",
        headers: &[("origin", EVIL)],
        status: 502,
        expect: own!(("vary", "Origin")),
        body: DOWN,
        upstream_reached: false,
    },
    Row {
        name: "upstream refuses, not a CORS request: 502, Vary",
        policy: Pol::Credentialed,
        up: Up::Refused,
        method: "GET",
        target: "/items",
        headers: &[],
        status: 502,
        expect: own!(("vary", "Origin")),
        body: DOWN,
        upstream_reached: false,
    },
    Row {
        name: "no policy (fail closed), upstream refuses: 502, no grant",
        policy: Pol::None,
        up: Up::Refused,
        method: "GET",
        target: "/items",
        headers: &[("origin", APP)],
        status: 502,
        expect: own!(("vary", "Origin")),
        body: DOWN,
        upstream_reached: false,
    },
    Row {
        name: "no policy (fail closed), preflight: 403 without the upstream",
        policy: Pol::None,
        up: Up::Live(Behaviour::Ok),
        method: "OPTIONS",
        target: "/items",
        headers: &[("origin", APP), ("access-control-request-method", "PUT")],
        status: 403,
        expect: &[("vary", "Origin")],
        body: "",
        upstream_reached: false,
    },
    Row {
        name: "preflight granted: 204 without the upstream",
        policy: Pol::Credentialed,
        up: Up::Live(Behaviour::Ok),
        method: "OPTIONS",
        target: "/items",
        headers: &[("origin", APP), ("access-control-request-method", "PUT")],
        status: 204,
        expect: &[
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "PUT"),
            (
                "vary",
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        ],
        body: "",
        upstream_reached: false,
    },
    Row {
        name: "strict mode, disallowed origin: 403 without the upstream",
        policy: Pol::Strict,
        up: Up::Live(Behaviour::Ok),
        method: "GET",
        target: "/items",
        headers: &[("origin", EVIL)],
        status: 403,
        expect: &[("vary", "Origin")],
        body: "",
        upstream_reached: false,
    },
    Row {
        name: "a request that cannot be forwarded (CONNECT): 400 with the grant",
        policy: Pol::Credentialed,
        up: Up::Live(Behaviour::Ok),
        method: "CONNECT",
        target: "internal.example:443",
        headers: &[("origin", APP)],
        status: 400,
        expect: own!(GRANT[0], GRANT[1], GRANT[2], GRANT[3]),
        body: "corsair-agent: cannot forward this request: CONNECT tunnels are not forwarded\n",
        upstream_reached: false,
    },
    Row {
        name: "upstream switches protocols unasked: 502 with the grant",
        policy: Pol::Credentialed,
        up: Up::Live(Behaviour::SwitchesProtocols),
        method: "GET",
        target: "/items",
        headers: &[("origin", APP)],
        status: 502,
        expect: own!(GRANT[0], GRANT[1], GRANT[2], GRANT[3]),
        body: "corsair-agent: the upstream switched protocols without being asked\n",
        upstream_reached: true,
    },
    Row {
        name: "upstream answers with Transfer-Encoding: gzip, chunked: 502 with the grant",
        policy: Pol::Credentialed,
        up: Up::Live(Behaviour::GzipCoded),
        method: "GET",
        target: "/items",
        headers: &[("origin", APP)],
        status: 502,
        expect: own!(GRANT[0], GRANT[1], GRANT[2], GRANT[3]),
        body: "corsair-agent: the upstream answered with an unsupported Transfer-Encoding\n",
        upstream_reached: true,
    },
    Row {
        name: "a request with Transfer-Encoding: gzip, chunked: 501 with the grant",
        policy: Pol::Credentialed,
        up: Up::Live(Behaviour::Ok),
        method: "POST",
        target: "/items",
        headers: &[("origin", APP), ("transfer-encoding", "gzip, chunked")],
        status: 501,
        expect: own!(GRANT[0], GRANT[1], GRANT[2], GRANT[3]),
        body: "corsair-agent: the request's Transfer-Encoding is not supported; send chunked or a Content-Length\n",
        upstream_reached: false,
    },
    Row {
        name: "two Host lines (RFC 9112 §3.2): 400 with the grant, never forwarded",
        policy: Pol::Credentialed,
        up: Up::Live(Behaviour::Ok),
        method: "GET",
        target: "/items",
        headers: &[("origin", APP), ("host", "other.test")],
        status: 400,
        expect: own!(GRANT[0], GRANT[1], GRANT[2], GRANT[3]),
        body: "corsair-agent: cannot forward this request: an HTTP/1.1 request has one Host line, this one has 2 (RFC 9112 §3.2)\n",
        upstream_reached: false,
    },
    Row {
        name: "upstream never accepts: 504 after the connect timeout",
        policy: Pol::Credentialed,
        up: Up::NeverAccepts,
        method: "GET",
        target: "/items",
        headers: &[("origin", APP)],
        status: 504,
        expect: own!(GRANT[0], GRANT[1], GRANT[2], GRANT[3]),
        body: "corsair-agent: timed out connecting to the upstream\n",
        upstream_reached: false,
    },
    Row {
        name: "upstream accepts and never answers: 504 after the upstream timeout",
        policy: Pol::Credentialed,
        up: Up::Live(Behaviour::Silent),
        method: "GET",
        target: "/items",
        headers: &[("origin", APP)],
        status: 504,
        expect: own!(GRANT[0], GRANT[1], GRANT[2], GRANT[3]),
        body: SLOW,
        upstream_reached: true,
    },
    Row {
        name: "upstream never answers, disallowed origin: 504, Vary only",
        policy: Pol::Credentialed,
        up: Up::Live(Behaviour::Silent),
        method: "GET",
        target: "/items",
        headers: &[("origin", EVIL)],
        status: 504,
        expect: own!(("vary", "Origin")),
        body: SLOW,
        upstream_reached: true,
    },
];

fn spec(policy: Pol) -> Option<PolicySpec> {
    let base = PolicySpec {
        origins: vec![APP.into()],
        allow_methods: vec!["PUT".into()],
        expose_headers: vec!["x-request-id".into()],
        allow_credentials: true,
        ..PolicySpec::default()
    };
    match policy {
        Pol::Credentialed => Some(base),
        Pol::Strict => Some(PolicySpec {
            strict: true,
            ..base
        }),
        Pol::None => None,
    }
}

/// Short timeouts, so the hanging rows end in seconds, yet long enough that
/// a loopback connect on a busy machine never hits them. The answers' texts
/// differ, so a row shows which timeout fired.
fn options() -> ProxyOptions {
    ProxyOptions {
        connect_timeout: Duration::from_secs(1),
        upstream_timeout: Duration::from_secs(2),
        request_body_timeout: Duration::from_millis(300),
        ..ProxyOptions::default()
    }
}

/// Serves a proxy in front of `upstream` until the returned sender drops.
async fn start_proxy(
    handle: PolicyHandle,
    upstream: &str,
    options: ProxyOptions,
) -> Result<(SocketAddr, tokio::sync::oneshot::Sender<()>), AnyError> {
    serve_proxy(Proxy::with_options(handle, upstream, options)?).await
}

#[tokio::test]
async fn own_answers_carry_the_cors_decision() -> Result<(), AnyError> {
    let mut failures = Vec::new();
    for row in ROWS {
        let handle = match spec(row.policy) {
            Some(spec) => handle_with(&spec)?,
            None => PolicyHandle::new(),
        };
        // Kept alive for the row: the listeners must outlive the exchange.
        let mut live = None;
        let mut _never = None;
        let mut _refused = None;
        let upstream = match row.up {
            Up::Live(b) => {
                let up = TestUpstream::start(b).await?;
                let url = up.url.clone();
                live = Some(up);
                url
            }
            Up::Refused => {
                let port = refused_port().await?;
                let url = format!("http://{}", port.addr);
                _refused = Some(port);
                url
            }
            Up::NeverAccepts => {
                let n = NeverAccepts::start().await?;
                let url = format!("http://{}", n.addr);
                _never = Some(n);
                url
            }
        };
        let (addr, _stop) = start_proxy(handle, &upstream, options()).await?;
        let mut request = format!(
            "{} {} HTTP/1.1\r\nhost: api.test\r\n",
            row.method, row.target
        );
        for (name, value) in row.headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("connection: close\r\n\r\n");
        let head = exchange(addr, request.as_bytes()).await?;
        let mut expect: Vec<(String, String)> = row
            .expect
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        // hyper marks the last answer on a `connection: close` exchange.
        expect.push(("connection".into(), "close".into()));
        // A 204 has no body and says nothing of its length.
        if row.status != 204 {
            expect.push(("content-length".into(), row.body.len().to_string()));
        }
        expect.sort();
        if head.status != row.status || head.stable_headers() != expect || head.body != row.body {
            failures.push(format!(
                "{}:\n  got  {} {:?} {:?}\n  want {} {:?} {:?}",
                row.name,
                head.status,
                head.stable_headers(),
                head.body,
                row.status,
                expect,
                row.body,
            ));
        }
        let reached = live.as_ref().is_some_and(|u| u.accepted() > 0);
        if reached != row.upstream_reached {
            failures.push(format!(
                "{}: upstream reached = {reached}, want {}",
                row.name, row.upstream_reached
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// A client that stops sending its body mid-way gets a 408 with the CORS
/// decision, and the upstream's connection is closed rather than left
/// waiting for the rest.
#[tokio::test]
async fn a_stalled_request_body_gets_408_and_frees_the_upstream() -> Result<(), AnyError> {
    let upstream = TestUpstream::start(Behaviour::ReadsUntilClosed).await?;
    let handle = handle_with(&spec(Pol::Credentialed).ok_or("policy")?)?;
    let options = ProxyOptions {
        // Only the body timeout can fire here.
        upstream_timeout: STEP * 2,
        ..options()
    };
    let (addr, _stop) = start_proxy(handle, &upstream.url, options).await?;
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
    // The client keeps its socket open and sends nothing more.
    let head = Head::parse(&tokio::time::timeout(STEP, read_head(&mut client)).await??)?;
    assert_eq!(head.status, 408, "{head:?}");
    for (name, value) in GRANT {
        assert_eq!(head.get(name), Some(value), "{name} in {head:?}");
    }
    assert_eq!(upstream.accepted(), 1);
    eventually("the upstream connection to be closed", || async {
        (upstream.closed() == 1).then_some(())
    })
    .await?;
    Ok(())
}

/// A client that closes its side before sending the body it announced gets
/// a 400 with the CORS decision (if it still reads), and the upstream's
/// connection is closed.
#[tokio::test]
async fn a_broken_off_request_body_gets_400_and_frees_the_upstream() -> Result<(), AnyError> {
    let upstream = TestUpstream::start(Behaviour::ReadsUntilClosed).await?;
    let handle = handle_with(&spec(Pol::Credentialed).ok_or("policy")?)?;
    let options = ProxyOptions {
        // Neither timeout can fire here.
        upstream_timeout: STEP * 2,
        request_body_timeout: STEP * 2,
        ..options()
    };
    let (addr, _stop) = start_proxy(handle, &upstream.url, options).await?;
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
    client.shutdown().await?;
    let head = Head::parse(&tokio::time::timeout(STEP, read_head(&mut client)).await??)?;
    assert_eq!(head.status, 400, "{head:?}");
    for (name, value) in GRANT {
        assert_eq!(head.get(name), Some(value), "{name} in {head:?}");
    }
    eventually("the upstream connection to be closed", || async {
        (upstream.closed() == 1).then_some(())
    })
    .await?;
    Ok(())
}

/// Every own answer is counted in the agent's metrics by failure and
/// status (`corsair_agent_proxy_failures_total`), on the fast path (a
/// bodiless GET) and on hyper's path (a POST with a body) alike, and so is
/// the timeout's 504 (the fast path's own timer).
#[tokio::test]
async fn own_answers_are_counted_in_the_metrics() -> Result<(), AnyError> {
    use corsair_agent::metrics::AgentMetrics;
    use corsair_agent::report::{Recorder, Reporter};

    let metrics = AgentMetrics::new();
    let reporter = Reporter::new("api", Recorder::new(100), metrics.clone());
    let handle = || handle_with(&spec(Pol::Credentialed).ok_or("policy")?);
    let start = |handle: PolicyHandle, upstream: String| {
        let reporter = reporter.clone();
        async move {
            serve_proxy(Proxy::with_options(handle, &upstream, options())?.with_reporter(reporter))
                .await
        }
    };

    let refused = refused_port().await?;
    let (down, _stop_down) = start(handle()?, format!("http://{}", refused.addr)).await?;
    let get = format!(
        "GET /items HTTP/1.1\r\nhost: api.test\r\norigin: {APP}\r\nconnection: close\r\n\r\n"
    );
    let post = format!(
        "POST /items HTTP/1.1\r\nhost: api.test\r\norigin: {APP}\r\ncontent-length: 2\r\n\
         connection: close\r\n\r\nhi"
    );
    assert_eq!(exchange(down, get.as_bytes()).await?.status, 502);
    assert_eq!(exchange(down, post.as_bytes()).await?.status, 502);

    let silent = TestUpstream::start(Behaviour::Silent).await?;
    let (slow, _stop_slow) = start(handle()?, silent.url.clone()).await?;
    assert_eq!(exchange(slow, get.as_bytes()).await?.status, 504);

    let text = metrics.encode();
    for line in [
        r#"corsair_agent_proxy_failures_total{failure="unreachable",status="502"} 2"#,
        r#"corsair_agent_proxy_failures_total{failure="upstream_timeout",status="504"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    Ok(())
}
