//! Instructions per request of Corsair's tower layer and tower-http's
//! `CorsLayer`, the same calls as `engine.rs`'s `*/layer` cells: one `call`
//! on the layer around the always-ready upstream, polled once; the request
//! is built outside the counted function and dropped inside it, the
//! response is dropped outside it.
//!
//! Run it under callgrind, which counts only inside `measured` (repeatable
//! whatever the machine's load, unlike a time):
//!
//! `agent/benches/layer-vs-tower-http.sh --instructions` (all scenarios, both layers, the
//! ratio table), or by hand:
//! `valgrind --tool=callgrind --toggle-collect='*measured*' <bench binary> preflight corsair 1000 20000`
//!
//! Arguments: scenario (`allowed`, `disallowed`, `preflight`,
//! `hostile_acrh`), layer (`corsair`, `tower-http`; or a floor: `none`,
//! the upstream alone, `vary-only`, the upstream plus one `Vary: Origin`
//! insert; `minimal-layer`, a plain layer that answers actual requests by
//! origin, and `lean-layer`, the same with two of Corsair's tricks, both
//! `common::MinimalCors`), origins, calls. Without valgrind it just runs the calls (and `cargo bench` runs it with no
//! arguments: a quick self-check of every cell).

mod common;

use common::{
    MinimalCors, Scenario, request, scenarios, spec, tower_http_layer, upstream, upstream_with_vary,
};
use corsair_agent::CorsairLayer;
use corsair_agent::engine::Policy;
use corsair_agent::handle::{ActivePolicy, PolicyHandle};
use futures_util::FutureExt;
use http::{Request, Response};
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use tower::{Layer, Service};

/// The counted part: one call and its poll. Not inlined, so callgrind's
/// `--toggle-collect` finds it.
#[inline(never)]
fn measured<S>(svc: &mut S, req: Request<()>) -> Option<Result<Response<String>, Infallible>>
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible>,
{
    svc.call(req).now_or_never()
}

fn run<S>(mut svc: S, s: &Scenario, calls: usize)
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible>,
{
    // Not counted: warms up lazily initialised state.
    for _ in 0..1_000 {
        black_box(svc.call(request(s)).now_or_never());
    }
    // Requests are built in batches outside `measured`, as criterion's
    // `iter_batched` does; responses are dropped outside it too.
    const BATCH: usize = 1_000;
    let mut done = 0;
    while done < calls {
        let n = BATCH.min(calls - done);
        let requests: Vec<_> = (0..n).map(|_| request(s)).collect();
        let mut responses = Vec::with_capacity(n);
        for req in requests {
            responses.push(measured(&mut svc, black_box(req)));
        }
        for r in &responses {
            assert!(matches!(r, Some(Ok(_))), "the layer answered at once");
        }
        drop(black_box(responses));
        done += n;
    }
}

pub fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`: run every cell briefly as a check.
    let cells: Vec<(String, String, usize, usize)> = match args.as_slice() {
        [scenario, layer, origins, calls] => vec![(
            scenario.clone(),
            layer.clone(),
            origins.parse().expect("origins is a number"),
            calls.parse().expect("calls is a number"),
        )],
        _ => ["allowed", "disallowed", "preflight", "hostile_acrh"]
            .iter()
            .flat_map(|s| {
                ["corsair", "tower-http"].map(|l| (s.to_string(), l.to_string(), 1_000, 1_000))
            })
            .collect(),
    };
    for (scenario, layer, n, calls) in cells {
        let all = scenarios(n);
        let s = all
            .iter()
            .find(|s| s.name == scenario)
            .unwrap_or_else(|| panic!("unknown scenario {scenario}"));
        match layer.as_str() {
            "corsair" => {
                let handle = PolicyHandle::new();
                handle.store(Some(Arc::new(ActivePolicy {
                    service: "bench".into(),
                    revision: 1,
                    policy: Policy::compile(&spec(n)).expect("bench policy compiles"),
                })));
                run(
                    CorsairLayer::new(handle).layer(tower::service_fn(upstream)),
                    s,
                    calls,
                );
            }
            "tower-http" => run(
                tower_http_layer(n).layer(tower::service_fn(upstream)),
                s,
                calls,
            ),
            // Floors, not contenders: the upstream alone (what every cell
            // pays: the request's drop, the response's construction), and
            // the upstream plus the one `Vary: Origin` insert any layer that
            // answers by origin writes into its response.
            "none" => run(tower::service_fn(upstream), s, calls),
            "vary-only" => run(tower::service_fn(upstream_with_vary), s, calls),
            "minimal-layer" => run(MinimalCors::new(n, tower::service_fn(upstream)), s, calls),
            "lean-layer" => run(MinimalCors::lean(n, tower::service_fn(upstream)), s, calls),
            other => panic!(
                "unknown layer {other} (corsair, tower-http; references: none, vary-only, minimal-layer, lean-layer)"
            ),
        }
        println!("{scenario} {layer} {n} origins: {calls} calls");
    }
}
