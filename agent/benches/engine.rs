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
//!   of the same always-ready upstream, request built outside the timing;
//! - references for actual requests at 1,000 origins, not contenders:
//!   `floor/upstream` (the upstream alone), `floor/upstream+vary` (plus one
//!   `Vary: Origin` insert), `floor/minimal-layer` and `floor/lean-layer`
//!   (a plain and a lean layer that answer by origin, `common::MinimalCors`).
//!
//! `cargo bench -p corsair-agent --bench engine -- --warm-up-time 1 --measurement-time 2`
//! (figures and machine in `BENCHMARKS.md`).

mod common;

use common::{
    MinimalCors, Scenario, request, scenarios, spec, tower_http_layer, upstream, upstream_with_vary,
};
use corsair_agent::CorsairLayer;
use corsair_agent::engine::{Policy, RequestParts};
use corsair_agent::handle::{ActivePolicy, PolicyHandle};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main,
};
use futures_util::FutureExt;
use http::{HeaderMap, Request, Response};
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use tower::{Layer, Service};

const SIZES: [usize; 5] = [1, 10, 100, 1_000, 10_000];

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
            layer_cell(
                &mut g,
                BenchmarkId::new("corsair/layer", n),
                &s,
                &mut corsair,
            );
            layer_cell(
                &mut g,
                BenchmarkId::new("tower-http/layer", n),
                &s,
                &mut tower_http,
            );
            // References for actual requests, not contenders (as in
            // `layer_instructions.rs`): the upstream alone, the upstream
            // plus one `Vary: Origin` insert, and a plain and a lean layer
            // that answer by origin ([`MinimalCors`]).
            if n == 1_000 && s.method != http::Method::OPTIONS {
                let id = |name| BenchmarkId::new(name, n);
                let bare = tower::service_fn(upstream);
                layer_cell(&mut g, id("floor/upstream"), &s, bare);
                let plain = MinimalCors::new(n, tower::service_fn(upstream));
                layer_cell(&mut g, id("floor/minimal-layer"), &s, plain);
                let lean = MinimalCors::lean(n, tower::service_fn(upstream));
                layer_cell(&mut g, id("floor/lean-layer"), &s, lean);
                let vary = tower::service_fn(upstream_with_vary);
                layer_cell(&mut g, id("floor/upstream+vary"), &s, vary);
            }
            g.finish();
        }
    }
}

/// One layer cell: `svc` takes one request per iteration (built outside
/// the timing) and is polled once; the response is dropped outside it.
fn layer_cell<S>(g: &mut BenchmarkGroup<'_, WallTime>, id: BenchmarkId, s: &Scenario, mut svc: S)
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible>,
{
    g.bench_function(id, |b| {
        b.iter_batched(
            || request(s),
            |req| svc.call(req).now_or_never(),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
