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
