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
