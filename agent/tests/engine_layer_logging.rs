//! `CorsairLayer` logs a refused request at debug level. In a test binary
//! of its own: `tracing` caches each call site's interest the first time it
//! is hit, and another test refusing a request on another thread (with no
//! subscriber there) could make this one's subscriber miss the line.

use corsair_agent::CorsairLayer;
use corsair_agent::engine::{Policy, PolicySpec};
use corsair_agent::handle::{ActivePolicy, PolicyHandle};
use futures_util::FutureExt;
use http::{HeaderValue, Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use tower::{Layer, Service};

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
    assert!(line.contains("service=\"svc\""), "{line}");
    assert!(line.contains("reason=\"origin_not_allowed\""), "{line}");
    let info = log_of_a_refusal(tracing::Level::INFO);
    assert!(
        !info.contains("CORS request not granted"),
        "logged at info level:\n{info}"
    );
}
