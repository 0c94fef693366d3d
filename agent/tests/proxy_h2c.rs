//! HTTP/2 (h2c, prior knowledge) clients of the sidecar proxy, over real
//! sockets: hyper runs each HTTP/2 stream in a task of its own, unlike an
//! HTTP/1.1 request, which runs inside its connection's task.
//!
//! - A request that needs a new upstream connection is forwarded at once,
//!   on a connection the client sends nothing more on (the new upstream
//!   connection once waited for the client's next frame to be polled).
//! - The agent's own answers to `HEAD` (here a 502 for an upstream that is
//!   down) arrive as a status with the CORS decision, not as a reset
//!   stream (a body on a HEAD answer is a protocol error in HTTP/2).
//! - A drain tells an HTTP/2 connection to go away (GOAWAY) and lets its
//!   request in flight finish.

mod proxy_support;

use bytes::Bytes;
use corsair_agent::engine::PolicySpec;
use corsair_agent::proxy::{Proxy, ProxyOptions};
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use proxy_support::{
    AnyError, Behaviour, STEP, TestUpstream, eventually, h2c, h2c_with_task, handle_with,
    refused_port, serve_proxy,
};
use std::net::SocketAddr;
use std::time::Duration;

const APP: &str = "https://app.example.com";

/// Far below the upstream timeout the proxy is given, so an answer within
/// it is not the timeout's 504.
const PROMPT: Duration = Duration::from_secs(10);

/// The proxy in front of `upstream`, with a 60 s upstream timeout; the
/// returned sender stops it.
async fn start_proxy(
    upstream: &str,
) -> Result<(SocketAddr, tokio::sync::oneshot::Sender<()>), AnyError> {
    let spec = PolicySpec {
        origins: vec![APP.into()],
        allow_methods: vec!["PUT".into()],
        ..PolicySpec::default()
    };
    let options = ProxyOptions {
        upstream_timeout: Duration::from_secs(60),
        ..ProxyOptions::default()
    };
    serve_proxy(Proxy::with_options(handle_with(&spec)?, upstream, options)?).await
}

fn request(method: Method, path: &str) -> Result<Request<Empty<Bytes>>, AnyError> {
    Ok(Request::builder()
        .method(method)
        .uri(format!("http://api.test{path}"))
        .header("origin", APP)
        .body(Empty::new())?)
}

#[tokio::test]
async fn a_request_on_a_settled_connection_opens_its_upstream_at_once() -> Result<(), AnyError> {
    let upstream = TestUpstream::start(Behaviour::Ok).await?;
    let (addr, _stop) = start_proxy(&upstream.url).await?;
    let mut sender = h2c(addr).await?;

    // A preflight is answered by the agent itself: once it is back, the
    // connection's settings are exchanged and the client has nothing more
    // to send.
    let mut preflight = request(Method::OPTIONS, "/items")?;
    preflight
        .headers_mut()
        .insert("access-control-request-method", "PUT".parse()?);
    let res = tokio::time::timeout(PROMPT, sender.send_request(preflight)).await??;
    assert_eq!(res.status(), 204);
    assert_eq!(
        upstream.accepted(),
        0,
        "a preflight never reaches the upstream"
    );

    // The first forwarded request needs a new upstream connection, opened
    // in the stream's own task.
    let res = tokio::time::timeout(PROMPT, sender.send_request(request(Method::GET, "/items")?))
        .await
        .map_err(|_| "the request was not forwarded: no answer within 10 s")??;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], APP);
    assert_eq!(upstream.accepted(), 1);
    Ok(())
}

#[tokio::test]
async fn the_agents_own_answer_to_head_is_a_status_not_a_reset() -> Result<(), AnyError> {
    let refused = refused_port().await?;
    let down = format!("http://{}", refused.addr);
    let (addr, _stop) = start_proxy(&down).await?;
    let mut sender = h2c(addr).await?;

    let head =
        tokio::time::timeout(PROMPT, sender.send_request(request(Method::HEAD, "/x")?)).await??;
    assert_eq!(head.status(), 502);
    assert_eq!(head.headers()["access-control-allow-origin"], APP);
    assert_eq!(head.headers()["vary"], "Origin");
    let length: usize = head.headers()["content-length"].to_str()?.parse()?;
    assert!(length > 0, "the length a GET would get");
    let body = head.into_body().collect().await?.to_bytes();
    assert!(body.is_empty(), "a HEAD answer has no content: {body:?}");

    // The GET on the same connection carries the message itself, of that
    // length.
    let get =
        tokio::time::timeout(PROMPT, sender.send_request(request(Method::GET, "/x")?)).await??;
    assert_eq!(get.status(), 502);
    assert_eq!(get.headers()["access-control-allow-origin"], APP);
    let body = get.into_body().collect().await?.to_bytes();
    assert_eq!(body.len(), length);
    Ok(())
}

#[tokio::test]
async fn a_drain_sends_an_http2_connection_away_after_its_request() -> Result<(), AnyError> {
    let upstream = TestUpstream::start(Behaviour::Late(Duration::from_millis(500))).await?;
    let spec = PolicySpec {
        origins: vec![APP.into()],
        ..PolicySpec::default()
    };
    let options = ProxyOptions {
        // Past the test's deadlines: only a GOAWAY ends the connection.
        drain_timeout: STEP * 2,
        ..ProxyOptions::default()
    };
    let proxy = Proxy::with_options(handle_with(&spec)?, &upstream.url, options)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(corsair_agent::proxy::serve(listener, proxy, async {
        let _ = stopped.await;
    }));
    let (mut sender, conn) = h2c_with_task(addr).await?;
    let answer = tokio::spawn(sender.send_request(request(Method::GET, "/slow")?));
    eventually("the request to reach the upstream", || async {
        upstream.accepted() == 1
    })
    .await?;

    let _ = stop.send(());
    let res = tokio::time::timeout(STEP, answer).await???;
    assert_eq!(res.status(), 200);
    assert_eq!(res.into_body().collect().await?.to_bytes(), "ok\n");
    tokio::time::timeout(STEP, conn)
        .await
        .map_err(|_| "the connection is still open after its request, while draining")???;
    tokio::time::timeout(STEP, serving).await???;
    Ok(())
}
