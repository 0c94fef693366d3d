//! `CorsairLayer` reads the handle on every request: a policy swapped in (or
//! out) applies to the very next request, and no policy fails closed.

use corsair_agent::CorsairLayer;
use corsair_agent::engine::{Policy, PolicySpec};
use corsair_agent::handle::{ActivePolicy, PolicyHandle};
use futures_util::FutureExt;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;
use tower::{Layer, Service};

fn preflight_status(handle: &PolicyHandle) -> StatusCode {
    let upstream = tower::service_fn(|_req: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
    });
    let mut svc = CorsairLayer::new(handle.clone()).layer(upstream);
    let mut req = Request::new(());
    *req.method_mut() = Method::OPTIONS;
    let h = req.headers_mut();
    h.insert(
        "origin",
        HeaderValue::from_static("https://app.example.com"),
    );
    h.insert(
        "access-control-request-method",
        HeaderValue::from_static("GET"),
    );
    match svc.call(req).now_or_never() {
        Some(Ok(res)) => res.status(),
        Some(Err(e)) => match e {},
        None => panic!("not ready"),
    }
}

fn active(origins: &[&str]) -> Option<Arc<ActivePolicy>> {
    let spec = PolicySpec {
        origins: origins.iter().map(|s| s.to_string()).collect(),
        ..PolicySpec::default()
    };
    let policy = Policy::compile(&spec).expect("policy compiles");
    Some(Arc::new(ActivePolicy {
        service: "svc".into(),
        revision: 1,
        policy,
    }))
}

#[test]
fn swaps_apply_to_the_next_request() {
    let handle = PolicyHandle::new();
    assert_eq!(
        preflight_status(&handle),
        StatusCode::FORBIDDEN,
        "no policy fails closed"
    );
    handle.store(active(&["https://app.example.com"]));
    assert_eq!(preflight_status(&handle), StatusCode::NO_CONTENT);
    handle.store(active(&[]));
    assert_eq!(
        preflight_status(&handle),
        StatusCode::FORBIDDEN,
        "last origin revoked"
    );
    handle.store(active(&["https://*.example.com"]));
    assert_eq!(preflight_status(&handle), StatusCode::NO_CONTENT);
    handle.store(None);
    assert_eq!(preflight_status(&handle), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn works_inside_an_axum_router() {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    let handle = PolicyHandle::new();
    handle.store(active(&["https://app.example.com"]));
    let app = Router::new()
        .route("/", get(|| async { "hi" }))
        .layer(CorsairLayer::new(handle));
    let req = Request::get("/")
        .header("origin", "https://app.example.com")
        .body(Body::empty())
        .expect("request builds");
    let res = app.oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(res.headers()["vary"], "Origin");
}

/// An embedded agent reports like the sidecar: blocked preflights are
/// counted under the requested method, allowed requests are not counted,
/// and without a policy the refusals are counted as `no_policy`.
#[tokio::test]
async fn counts_blocked_decisions_with_a_reporter() {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use corsair_agent::metrics::AgentMetrics;
    use corsair_agent::report::counter::Key;
    use corsair_agent::report::{Recorder, Reporter};
    use tower::ServiceExt;

    let handle = PolicyHandle::new();
    handle.store(active(&["https://app.example.com"]));
    let recorder = Recorder::new(100);
    let metrics = AgentMetrics::new();
    let app = Router::new().route("/", get(|| async { "hi" })).layer(
        CorsairLayer::new(handle.clone()).with_reporter(Reporter::new(
            "svc",
            recorder.clone(),
            metrics.clone(),
        )),
    );
    let send = |method: Method, origin: &'static str| {
        let app = app.clone();
        async move {
            let mut req = Request::builder().method(method.clone()).uri("/");
            req = req.header("origin", origin);
            if method == Method::OPTIONS {
                req = req.header("access-control-request-method", "DELETE");
            }
            let req = req.body(Body::empty()).expect("request builds");
            app.oneshot(req).await.expect("infallible").status()
        }
    };
    assert_eq!(
        send(Method::GET, "https://app.example.com").await,
        StatusCode::OK
    );
    for _ in 0..3 {
        assert_eq!(
            send(Method::OPTIONS, "https://evil.example").await,
            StatusCode::FORBIDDEN
        );
    }
    handle.store(None);
    assert_eq!(
        send(Method::OPTIONS, "https://app.example.com").await,
        StatusCode::FORBIDDEN
    );

    let counts = recorder.take();
    let key = |origin: &str, reason: &str| Key {
        service: "svc".into(),
        origin: origin.into(),
        method: "DELETE".into(),
        reason: reason.into(),
        would_block: false,
    };
    assert_eq!(
        counts.get(&key("https://evil.example", "origin_not_allowed")),
        Some(&3)
    );
    assert_eq!(
        counts.get(&key("https://app.example.com", "no_policy")),
        Some(&1)
    );
    assert_eq!(
        counts.len(),
        2,
        "the allowed GET is not counted: {counts:?}"
    );
    let text = metrics.encode();
    assert!(
        text.lines()
            .any(|l| l.starts_with("corsair_agent_blocked_total{service=\"svc\"} 4")),
        "blocked metric counts all four refusals:\n{text}"
    );
}

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Log(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = self.0.lock() {
            log.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default()
    }
}

/// Sends one request from an unlisted origin through the layer with a
/// thread-local subscriber at `level`; returns what it logged.
fn log_of_a_refusal(level: tracing::Level) -> String {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let handle = PolicyHandle::new();
    handle.store(active(&["https://app.example.com"]));
    let upstream = tower::service_fn(|_req: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
    });
    let mut svc = CorsairLayer::new(handle).layer(upstream);
    let mut req = Request::new(());
    req.headers_mut().insert(
        "origin",
        HeaderValue::from_static("https://evil.example.net"),
    );
    match svc.call(req).now_or_never() {
        Some(Ok(res)) => assert_eq!(
            res.headers().get("vary").map(|v| v.as_bytes()),
            Some(&b"Origin"[..])
        ),
        Some(Err(e)) => match e {},
        None => panic!("not ready"),
    }
    log.text()
}

/// A refusal is logged at debug level, with its service and reason (the
/// layer checks the level before building the line), and not at info.
#[test]
fn a_refusal_is_logged_at_debug_level_only() {
    let debug = log_of_a_refusal(tracing::Level::DEBUG);
    let line = debug
        .lines()
        .find(|l| l.contains("CORS request not granted"))
        .unwrap_or_else(|| panic!("no refusal logged at debug level:\n{debug}"));
    assert!(line.contains("DEBUG"), "{line}");
    assert!(line.contains("service=\"svc\""), "{line}");
    assert!(line.contains("reason=\"origin_not_allowed\""), "{line}");
    let info = log_of_a_refusal(tracing::Level::INFO);
    assert!(
        !info.contains("CORS request not granted"),
        "logged at info level:\n{info}"
    );
}
