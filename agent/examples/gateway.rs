//! A minimal API gateway with Corsair embedded as a tower layer.
//!
//! ```text
//! cargo run -p corsair-agent --example gateway -- 127.0.0.1:8080 https://app.example.com 'https://*.example.org'
//! curl -i -X OPTIONS http://127.0.0.1:8080/api/hello \
//!      -H 'Origin: https://app.example.com' -H 'Access-Control-Request-Method: PUT'
//! ```
//!
//! In a real gateway the sync client stores each new policy into the same
//! `PolicyHandle`, and `corsair_agent::report::run` uploads the reporter's
//! counts to the control plane; here the policy comes from the command line
//! once and the blocked counts are printed every ten seconds.

use axum::extract::Request;
use axum::routing::get;
use axum::{Router, ServiceExt};
use corsair_agent::CorsairLayer;
use corsair_agent::engine::{Policy, PolicySpec};
use corsair_agent::handle::{ActivePolicy, PolicyHandle};
use corsair_agent::metrics::AgentMetrics;
use corsair_agent::report::{Recorder, Reporter};
use std::sync::Arc;
use tower::Layer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let spec = PolicySpec {
        origins: args.collect(),
        allow_methods: vec!["PUT".into(), "DELETE".into()],
        allow_headers: vec!["content-type".into(), "x-request-id".into()],
        expose_headers: vec!["x-request-id".into()],
        max_age_secs: 600,
        ..PolicySpec::default()
    };
    // compile_authored: a person typed these origins, so "none" is a mistake.
    let policy = Policy::compile_authored(&spec)?;
    let handle = PolicyHandle::new();
    handle.store(Some(Arc::new(ActivePolicy {
        service: "example".into(),
        revision: 1,
        policy,
    })));

    let routes = Router::new().route(
        "/api/hello",
        get(|| async { ([("x-request-id", "42")], "hello\n") }).put(|| async { "updated\n" }),
    );
    // Wrap the whole router rather than `Router::layer`: CORS is decided
    // before routing, so preflights to any path (even unknown ones) are
    // answered by the policy, not by the router's 404/405 handling.
    let recorder = Recorder::new(10_000);
    // Allowed requests are counted by the policy; the recorder drains them.
    recorder.track(handle.clone());
    let reporter = Reporter::new("example", recorder.clone(), AgentMetrics::new());
    let app = CorsairLayer::new(handle)
        .with_reporter(reporter)
        .layer(routes);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            every.tick().await;
            for (key, count) in recorder.take() {
                println!(
                    "blocked {count}x: {} {} ({})",
                    key.origin, key.method, key.reason
                );
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("gateway listening on http://{}", listener.local_addr()?);
    axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await?;
    Ok(())
}
