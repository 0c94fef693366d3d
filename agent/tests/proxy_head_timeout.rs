//! A connection that has not completed its first request head (or the
//! HTTP/2 preface) within the head timeout is closed, on every listener:
//! hyper's path (whose protocol sniff has no timer of its own), the fast
//! path's hand-over of a partial HTTP/2 preface, and the admin listener.
//! An HTTP/2 connection whose peer stops answering is closed too (pings),
//! and so is one whose peer answers but sends no request for the head
//! timeout (the idle limit hyper lacks for HTTP/2); a request in flight,
//! however long, keeps it open.

mod proxy_support;

use bytes::Bytes;
use corsair_agent::authz::{self, Authz};
use corsair_agent::engine::PolicySpec;
use corsair_agent::handle::PolicyHandle;
use corsair_agent::proxy::admin::{self, AdminState};
use corsair_agent::proxy::{Proxy, ProxyOptions, serve};
use http::Request;
use http_body_util::{BodyExt, Empty};
use proxy_support::{AnyError, Behaviour, STEP, TestUpstream, h2c_with_task, handle_with};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The head timeout every server here gets.
const HEAD_TIMEOUT: Duration = Duration::from_millis(300);
/// How long a test waits for the server to close: far past the head
/// timeout (and two of it, the fast path's bound, and a ping round), short
/// enough that a connection held forever fails the test quickly.
const CLOSED_WITHIN: Duration = Duration::from_secs(5);

/// What a client sends and then waits with.
const STALLS: [(&str, &[u8]); 3] = [
    ("nothing", b""),
    ("a partial HTTP/2 preface", b"PRI * HTTP/2"),
    ("a partial HTTP/1.1 head", b"GET / HTTP/1.1\r\nhost: a\r\n"),
];

/// Serves a proxy (fast path on or off) in front of a live upstream.
async fn start_proxy(fast: bool) -> Result<(SocketAddr, oneshot::Sender<()>), AnyError> {
    let upstream = TestUpstream::start(Behaviour::Ok).await?;
    let options = ProxyOptions {
        head_timeout: HEAD_TIMEOUT,
        http1_fast_path: fast,
        ..ProxyOptions::default()
    };
    start_proxy_with(Proxy::with_options(
        PolicyHandle::new(),
        &upstream.url,
        options,
    )?)
    .await
}

/// Serves `proxy`.
async fn start_proxy_with(proxy: Proxy) -> Result<(SocketAddr, oneshot::Sender<()>), AnyError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, proxy, async {
        let _ = stopped.await;
    }));
    Ok((addr, stop))
}

/// Serves the admin endpoints.
async fn start_admin() -> Result<(SocketAddr, oneshot::Sender<()>), AnyError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = AdminState {
        service: "api".into(),
        handle: PolicyHandle::new(),
        status: Arc::new(|| serde_json::json!({})),
        metrics: None,
        draining: Arc::new(AtomicBool::new(false)),
        head_timeout: HEAD_TIMEOUT,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(admin::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Ok((addr, stop))
}

/// Serves the authz endpoint.
async fn start_authz() -> Result<(SocketAddr, oneshot::Sender<()>), AnyError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(authz::serve(
        listener,
        Authz::new(PolicyHandle::new()),
        Duration::from_secs(1),
        HEAD_TIMEOUT,
        async {
            let _ = stopped.await;
        },
    ));
    Ok((addr, stop))
}

/// Connects to `addr`, sends `first` and then nothing; `Err` unless the
/// server closes the connection within [`CLOSED_WITHIN`].
async fn closed_after_sending(addr: SocketAddr, first: &[u8], what: &str) -> Result<(), AnyError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(first).await?;
    let mut rest = Vec::new();
    match tokio::time::timeout(CLOSED_WITHIN, stream.read_to_end(&mut rest)).await {
        // Closed (an answer such as a 408 may come first), or reset.
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "{what}: still open {CLOSED_WITHIN:?} after a {HEAD_TIMEOUT:?} head timeout \
             (read {:?})",
            String::from_utf8_lossy(&rest)
        )
        .into()),
    }
}

#[tokio::test]
async fn a_stalled_connection_is_closed_on_every_listener() -> Result<(), AnyError> {
    let (hyper_path, _stop_hyper) = start_proxy(false).await?;
    let (fast_path, _stop_fast) = start_proxy(true).await?;
    let (admin, _stop_admin) = start_admin().await?;
    let (authz, _stop_authz) = start_authz().await?;
    let mut failures = Vec::new();
    for (listener, addr) in [
        ("hyper's path", hyper_path),
        ("fast path", fast_path),
        ("admin listener", admin),
        ("authz endpoint", authz),
    ] {
        for (stall, first) in STALLS {
            let what = format!("{listener}, a client that sent {stall}");
            if let Err(e) = closed_after_sending(addr, first, &what).await {
                failures.push(e.to_string());
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// An HTTP/2 client that sends the preface and its SETTINGS, then never
/// answers again (a dead peer behind a live TCP path, or a stalled one):
/// the server pings it and closes the connection when no ack comes.
#[tokio::test]
async fn an_unresponsive_http2_peer_is_cut() -> Result<(), AnyError> {
    let (hyper_path, _stop_hyper) = start_proxy(false).await?;
    let (admin, _stop_admin) = start_admin().await?;
    // The preface, then an empty SETTINGS frame (length 0, type 4, no
    // flags, stream 0).
    let mut opening = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    opening.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let mut failures = Vec::new();
    for (listener, addr) in [("hyper's path", hyper_path), ("admin listener", admin)] {
        let what = format!("{listener}, an HTTP/2 peer that answers nothing");
        if let Err(e) = closed_after_sending(addr, &opening, &what).await {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// An HTTP/2 client that makes one request and then sends nothing, while
/// it keeps answering the server's pings (as every HTTP/2 client does):
/// the server closes the connection (GOAWAY, then close) once it has had
/// no request in flight for the head timeout, on every listener.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_on_every_listener() -> Result<(), AnyError> {
    let (hyper_path, _stop_hyper) = start_proxy(false).await?;
    let (fast_path, _stop_fast) = start_proxy(true).await?;
    let (admin, _stop_admin) = start_admin().await?;
    let (authz, _stop_authz) = start_authz().await?;
    let mut failures = Vec::new();
    for (listener, addr, path) in [
        ("hyper's path", hyper_path, "/items"),
        ("fast path's listener", fast_path, "/items"),
        ("admin listener", admin, "/healthz"),
        ("authz endpoint", authz, "/authz"),
    ] {
        let (mut sender, conn) = h2c_with_task(addr).await?;
        let req = Request::get(format!("http://{addr}{path}")).body(Empty::<Bytes>::new())?;
        let res = tokio::time::timeout(STEP, sender.send_request(req)).await??;
        tokio::time::timeout(STEP, res.into_body().collect()).await??;
        // The client keeps its sender: it does not close the connection.
        match tokio::time::timeout(CLOSED_WITHIN, conn).await {
            Ok(Ok(Ok(()))) => {}
            Ok(ended) => failures.push(format!(
                "{listener}: the idle connection ended, but not cleanly: {ended:?}"
            )),
            Err(_) => failures.push(format!(
                "{listener}: an idle HTTP/2 connection still open {CLOSED_WITHIN:?} \
                 after its only request, with a {HEAD_TIMEOUT:?} head timeout"
            )),
        }
        drop(sender);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// Requests that outlast the idle limit on an HTTP/2 connection complete,
/// and the connection is not sent away while they are in flight: an
/// upstream that answers three limits late, and one whose answer's body
/// ends three limits after its head. A second request sent on the same
/// connection two limits into the slow one (past the point where an idle
/// connection would have been closed) is answered too.
#[tokio::test]
async fn a_request_longer_than_the_idle_limit_completes_on_http2() -> Result<(), AnyError> {
    let limit = Duration::from_secs(1);
    let app = "https://app.example.com";
    let spec = PolicySpec {
        origins: vec![app.into()],
        allow_methods: vec!["PUT".into()],
        ..PolicySpec::default()
    };
    for (behaviour, body) in [
        (Behaviour::Late(limit * 3), "ok\n"),
        (Behaviour::Trickles(limit * 3), "ok\ndone\n"),
    ] {
        let upstream = TestUpstream::start(behaviour).await?;
        let options = ProxyOptions {
            head_timeout: limit,
            ..ProxyOptions::default()
        };
        let proxy = Proxy::with_options(handle_with(&spec)?, &upstream.url, options)?;
        let (addr, _stop) = start_proxy_with(proxy).await?;
        let (mut sender, _conn) = h2c_with_task(addr).await?;
        let mut second = sender.clone();

        let slow = async {
            let req = Request::get(format!("http://{addr}/slow"))
                .header("origin", app)
                .body(Empty::<Bytes>::new())?;
            let res = tokio::time::timeout(STEP, sender.send_request(req)).await??;
            assert_eq!(res.status(), 200, "{behaviour:?}");
            let got = tokio::time::timeout(STEP, res.into_body().collect()).await??;
            Ok::<_, AnyError>(got.to_bytes())
        };
        // A preflight, answered by the agent, while the slow request is
        // still in flight. The wait is the condition under test (time
        // passing on a busy connection), not a stand-in for an event.
        let preflight = async {
            tokio::time::sleep(limit * 2).await;
            let req = Request::options(format!("http://{addr}/slow"))
                .header("origin", app)
                .header("access-control-request-method", "PUT")
                .body(Empty::<Bytes>::new())?;
            let res = tokio::time::timeout(STEP, second.send_request(req))
                .await?
                .map_err(|e| {
                    format!("{behaviour:?}: a request two limits into the slow one: {e}")
                })?;
            Ok::<_, AnyError>(res.status())
        };
        let (got, status) = tokio::try_join!(slow, preflight)?;
        assert_eq!(got, body, "{behaviour:?}: the whole body");
        assert_eq!(status, 204, "{behaviour:?}");
    }
    Ok(())
}
