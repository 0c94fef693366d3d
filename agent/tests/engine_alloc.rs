//! `evaluate` performs no heap allocation: allowed and disallowed actual
//! requests, preflights (exact and wildcard origins), and hostile headers.
//! The tower layer around it adds none of its own: a forwarded request
//! costs only what the inner service allocates, a local answer only its
//! header map.
//!
//! A counting global allocator counts allocations made by this thread while
//! a flag is set. Request headers are built before counting starts, the way
//! a server hands them over (already parsed, shared bytes).

use corsair_agent::engine::{Policy, PolicySpec, RequestParts};
use http::{HeaderMap, HeaderValue, Method};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: defers every operation to the system allocator unchanged; only
// counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn evaluate_never_allocates() {
    let mut origins: Vec<String> = (0..10_000)
        .map(|i| format!("https://app{i}.example.com"))
        .collect();
    origins.push("https://*.example.org".into());
    let policy = Policy::compile(&PolicySpec {
        origins,
        allow_methods: vec!["PUT".into()],
        allow_headers: vec!["content-type".into(), "x-custom".into()],
        expose_headers: vec!["x-request-id".into()],
        allow_credentials: true,
        max_age_secs: 600,
        allow_private_network: true,
        ..PolicySpec::default()
    })
    .expect("policy compiles");
    let hostile: &'static str = ",".repeat(3000).leak();
    let cases = [
        (
            "allowed exact",
            Method::GET,
            headers(&[("origin", "https://app9999.example.com")]),
        ),
        (
            "allowed wildcard",
            Method::POST,
            headers(&[("origin", "https://a.b.example.org")]),
        ),
        (
            "disallowed",
            Method::GET,
            headers(&[("origin", "https://evil.example.net")]),
        ),
        ("not CORS", Method::GET, headers(&[])),
        (
            "preflight",
            Method::OPTIONS,
            headers(&[
                ("origin", "https://app42.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "content-type,x-custom"),
                ("access-control-request-private-network", "true"),
            ]),
        ),
        (
            "preflight rejected",
            Method::OPTIONS,
            headers(&[
                ("origin", "https://app42.example.com"),
                ("access-control-request-method", "DELETE"),
            ]),
        ),
        (
            "hostile headers",
            Method::OPTIONS,
            headers(&[
                ("origin", "https://app42.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", hostile),
            ]),
        ),
    ];
    // The counter itself works.
    assert_eq!(allocations(|| drop(std::hint::black_box(vec![1u8]))), 1);
    for (name, method, h) in &cases {
        let parts = RequestParts { method, headers: h };
        let n = allocations(|| {
            let d = policy.evaluate(&parts);
            // Counting the granting pattern's use is on the hot path too.
            policy.count_use(&d);
            std::hint::black_box(&d);
            drop(d);
        });
        assert_eq!(n, 0, "{name}: {n} allocations");
    }
    // And it counted the granted ones, each under its pattern (the
    // rejected preflight not at all).
    let mut used = std::collections::BTreeMap::new();
    policy.take_uses(|pattern, n| {
        used.insert(pattern.to_owned(), n);
    });
    assert_eq!(
        used.get("https://app9999.example.com"),
        Some(&1),
        "{used:?}"
    );
    assert_eq!(used.get("https://*.example.org"), Some(&1), "{used:?}");
    assert!(
        matches!(used.get("https://app42.example.com"), Some(1 | 2)),
        "{used:?}"
    );
    assert_eq!(used.len(), 3, "{used:?}");
}

/// The layer's own fixed path: no boxed future, no policy reference count,
/// no copies of header values. Forwarded requests allocate nothing beyond
/// the inner service (whose response has room for the CORS headers); a
/// preflight answered locally allocates only its header map (indices and
/// entries).
#[test]
fn the_layer_adds_no_allocation_of_its_own() {
    use corsair_agent::CorsairLayer;
    use corsair_agent::handle::{ActivePolicy, PolicyHandle};
    use futures_util::FutureExt;
    use http::{Request, Response};
    use std::sync::Arc;
    use tower::{Layer, Service};

    let handle = PolicyHandle::new();
    handle.store(Some(Arc::new(ActivePolicy {
        service: "alloc".into(),
        revision: 1,
        policy: Policy::compile(&PolicySpec {
            origins: (0..1_000)
                .map(|i| format!("https://app{i}.example.com"))
                .collect(),
            allow_methods: vec!["PUT".into()],
            allow_headers: vec!["content-type".into(), "x-custom".into()],
            expose_headers: vec!["x-request-id".into()],
            max_age_secs: 600,
            ..PolicySpec::default()
        })
        .expect("policy compiles"),
    })));
    // The upstream's response is made before counting, as a real one
    // arrives already built.
    let inner = tower::service_fn(|_req: Request<()>| {
        std::future::ready(Ok::<_, std::convert::Infallible>(
            RESPONSE.with(|r| r.borrow_mut().take().expect("a response was prepared")),
        ))
    });
    thread_local! {
        static RESPONSE: std::cell::RefCell<Option<Response<()>>> = const { std::cell::RefCell::new(None) };
    }
    let prepare = || {
        let mut res = Response::new(());
        res.headers_mut().reserve(8);
        RESPONSE.with(|r| *r.borrow_mut() = Some(res));
    };
    let mut layer = CorsairLayer::new(handle).layer(inner);
    let request = |method: Method, pairs: &[(&'static str, &'static str)]| {
        let mut req = Request::new(());
        *req.method_mut() = method;
        *req.headers_mut() = headers(pairs);
        req
    };
    type Case = (
        &'static str,
        Method,
        &'static [(&'static str, &'static str)],
        usize,
    );
    let cases: [Case; 3] = [
        (
            "allowed",
            Method::GET,
            &[("origin", "https://app999.example.com")],
            0,
        ),
        (
            "disallowed",
            Method::GET,
            &[("origin", "https://evil.example.net")],
            0,
        ),
        (
            "preflight",
            Method::OPTIONS,
            &[
                ("origin", "https://app999.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "content-type,x-custom"),
            ],
            2,
        ),
    ];
    for (name, method, pairs, expected) in cases {
        // Once outside the count: the policy's shared header values are
        // promoted to reference-counted bytes on their first clone.
        prepare();
        drop(layer.call(request(method.clone(), pairs)).now_or_never());
        prepare();
        let req = request(method, pairs);
        let mut out = None;
        let n = allocations(|| out = layer.call(req).now_or_never());
        let res = out.expect("the layer answers at once").expect("infallible");
        assert!(
            res.headers().contains_key("vary"),
            "{name}: the layer wrote its headers"
        );
        assert_eq!(n, expected, "{name}: {n} allocations");
        RESPONSE.with(|r| r.borrow_mut().take());
    }
}
