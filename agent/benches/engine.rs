//! Corsair's engine beside tower-http's `CorsLayer`, on the same policy and
//! the same requests, at 1, 10, 100, 1,000 and 10,000 approved origins (10
//! is where the "flat from 10 to 10,000" target starts).
//!
//! Scenarios: an allowed actual request, a disallowed one, a successful
//! preflight and a preflight with a hostile `Access-Control-Request-Headers`.
//! Contenders:
//! - `corsair/evaluate`: the decision alone (what the targets are about);
//! - `corsair/evaluate+count`: plus counting the granting pattern's use
//!   (what an agent with telemetry does per request: one relaxed atomic
//!   increment; see `Policy::count_use`);
//! - `corsair/evaluate+apply`: plus writing its headers into a response map;
//! - `corsair/layer` and `tower-http/layer`: each as a tower layer in front
//!   of the same always-ready upstream, request built outside the timing.
//!
//! `cargo bench -p corsair-agent --bench engine -- --warm-up-time 1 --measurement-time 2`
//! (figures and machine in `BENCHMARKS.md`).

use corsair_agent::CorsairLayer;
use corsair_agent::engine::{Policy, PolicySpec, RequestParts};
use corsair_agent::handle::{ActivePolicy, PolicyHandle};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, CorsLayer};

const SIZES: [usize; 5] = [1, 10, 100, 1_000, 10_000];

fn origins(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("https://app{i}.example.com"))
        .collect()
}

struct Scenario {
    name: &'static str,
    method: Method,
    headers: HeaderMap,
}

/// The allowed origin is the last one listed: the worst case for a list scan.
fn scenarios(n: usize) -> Vec<Scenario> {
    let allowed = HeaderValue::from_str(&format!("https://app{}.example.com", n - 1))
        .expect("generated origin is a valid header value");
    let mut allowed_get = HeaderMap::new();
    allowed_get.insert("origin", allowed.clone());
    let mut denied_get = HeaderMap::new();
    denied_get.insert(
        "origin",
        HeaderValue::from_static("https://evil.example.net"),
    );
    let mut preflight = HeaderMap::new();
    preflight.insert("origin", allowed.clone());
    preflight.insert(
        "access-control-request-method",
        HeaderValue::from_static("PUT"),
    );
    preflight.insert(
        "access-control-request-headers",
        HeaderValue::from_static("content-type,x-custom"),
    );
    let mut hostile = preflight.clone();
    let commas = format!("x-custom{}", ",".repeat(3000));
    hostile.insert(
        "access-control-request-headers",
        HeaderValue::from_str(&commas).expect("commas are a valid header value"),
    );
    vec![
        Scenario {
            name: "allowed",
            method: Method::GET,
            headers: allowed_get,
        },
        Scenario {
            name: "disallowed",
            method: Method::GET,
            headers: denied_get,
        },
        Scenario {
            name: "preflight",
            method: Method::OPTIONS,
            headers: preflight,
        },
        Scenario {
            name: "hostile_acrh",
            method: Method::OPTIONS,
            headers: hostile,
        },
    ]
}

fn spec(n: usize) -> PolicySpec {
    PolicySpec {
        origins: origins(n),
        allow_methods: vec!["PUT".into(), "DELETE".into(), "PATCH".into()],
        allow_headers: vec!["content-type".into(), "x-custom".into()],
        expose_headers: vec!["x-request-id".into()],
        max_age_secs: 600,
        ..PolicySpec::default()
    }
}

fn tower_http_layer(n: usize) -> CorsLayer {
    let list: Vec<HeaderValue> = origins(n)
        .iter()
        .map(|o| HeaderValue::from_str(o).expect("generated origin is a valid header value"))
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(list))
        .allow_methods([Method::PUT, Method::DELETE, Method::PATCH])
        .allow_headers([
            http::header::CONTENT_TYPE,
            http::HeaderName::from_static("x-custom"),
        ])
        .expose_headers([http::HeaderName::from_static("x-request-id")])
        .max_age(std::time::Duration::from_secs(600))
}

fn upstream(_req: Request<()>) -> std::future::Ready<Result<Response<String>, Infallible>> {
    std::future::ready(Ok(Response::new(String::new())))
}

fn request(s: &Scenario) -> Request<()> {
    let mut req = Request::new(());
    *req.method_mut() = s.method.clone();
    *req.headers_mut() = s.headers.clone();
    req
}

fn bench(c: &mut Criterion) {
    for n in SIZES {
        let policy = Policy::compile(&spec(n)).expect("bench policy compiles");
        let handle = PolicyHandle::new();
        handle.store(Some(Arc::new(ActivePolicy {
            service: "bench".into(),
            revision: 1,
            policy: Policy::compile(&spec(n)).expect("bench policy compiles"),
        })));
        let mut corsair = CorsairLayer::new(handle).layer(tower::service_fn(upstream));
        let mut tower_http = tower_http_layer(n).layer(tower::service_fn(upstream));

        for s in scenarios(n) {
            let mut g = c.benchmark_group(s.name);
            let parts = RequestParts {
                method: &s.method,
                headers: &s.headers,
            };
            g.bench_function(BenchmarkId::new("corsair/evaluate", n), |b| {
                b.iter(|| black_box(policy.evaluate(black_box(&parts))).kind())
            });
            g.bench_function(BenchmarkId::new("corsair/evaluate+count", n), |b| {
                b.iter(|| {
                    let d = policy.evaluate(black_box(&parts));
                    policy.count_use(&d);
                    d.kind()
                })
            });
            g.bench_function(BenchmarkId::new("corsair/evaluate+apply", n), |b| {
                b.iter(|| {
                    let mut out = HeaderMap::new();
                    policy.evaluate(black_box(&parts)).apply(&mut out);
                    out
                })
            });
            g.bench_function(BenchmarkId::new("corsair/layer", n), |b| {
                b.iter_batched(
                    || request(&s),
                    |req| corsair.call(req).now_or_never(),
                    BatchSize::SmallInput,
                )
            });
            g.bench_function(BenchmarkId::new("tower-http/layer", n), |b| {
                b.iter_batched(
                    || request(&s),
                    |req| tower_http.call(req).now_or_never(),
                    BatchSize::SmallInput,
                )
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
