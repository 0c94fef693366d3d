//! `CorsairLayer` logs a refused request at debug level. In a test binary
//! of its own: `tracing` caches each call site's interest the first time it
//! is hit, and another test refusing a request on another thread (with no
//! subscriber there) could make this one's subscriber miss the line.

mod proxy_support;

use corsair_agent::CorsairLayer;
use corsair_agent::engine::PolicySpec;
use futures_util::FutureExt;
use http::{HeaderValue, Request, Response};
use proxy_support::{Log, handle_with};
use std::convert::Infallible;
use tower::{Layer, Service};

/// Sends one request from an unlisted origin through the layer with a
/// thread-local subscriber at `level`; returns what it logged.
fn log_of_a_refusal(level: tracing::Level) -> String {
    let (log, _guard) = Log::capture(level);
    let spec = PolicySpec {
        origins: vec!["https://app.example.com".into()],
        ..PolicySpec::default()
    };
    let handle = handle_with(&spec).expect("policy compiles");
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

/// A refusal is logged at debug level, with its service and reason, and
/// not at info.
#[test]
fn a_refusal_is_logged_at_debug_level_only() {
    let debug = log_of_a_refusal(tracing::Level::DEBUG);
    let line = debug
        .lines()
        .find(|l| l.contains("CORS request not granted"))
        .unwrap_or_else(|| panic!("no refusal logged at debug level:\n{debug}"));
    assert!(line.contains("DEBUG"), "{line}");
    assert!(line.contains("service=\"api\""), "{line}");
    assert!(line.contains("reason=\"origin_not_allowed\""), "{line}");
    let info = log_of_a_refusal(tracing::Level::INFO);
    assert!(
        !info.contains("CORS request not granted"),
        "logged at info level:\n{info}"
    );
}
