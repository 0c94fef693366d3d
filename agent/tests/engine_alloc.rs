//! `evaluate` performs no heap allocation: allowed and disallowed actual
//! requests, preflights (exact and wildcard origins), and hostile headers.
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
            std::hint::black_box(&d);
            drop(d);
        });
        assert_eq!(n, 0, "{name}: {n} allocations");
    }
}
