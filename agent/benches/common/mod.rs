//! What both layer benchmarks share: the policy, tower-http's equivalent
//! `CorsLayer`, the scenarios and the always-ready upstream
//! (`engine.rs`: criterion timings; `layer_instructions.rs`: instruction
//! counts under callgrind).

use corsair_agent::engine::PolicySpec;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::Service;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub fn origins(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("https://app{i}.example.com"))
        .collect()
}

pub struct Scenario {
    pub name: &'static str,
    pub method: Method,
    pub headers: HeaderMap,
}

/// The allowed origin is the last one listed: the worst case for a list scan.
pub fn scenarios(n: usize) -> Vec<Scenario> {
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

pub fn spec(n: usize) -> PolicySpec {
    PolicySpec {
        origins: origins(n),
        allow_methods: vec!["PUT".into(), "DELETE".into(), "PATCH".into()],
        allow_headers: vec!["content-type".into(), "x-custom".into()],
        expose_headers: vec!["x-request-id".into()],
        max_age_secs: 600,
        ..PolicySpec::default()
    }
}

pub fn tower_http_layer(n: usize) -> CorsLayer {
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

pub fn upstream(_req: Request<()>) -> std::future::Ready<Result<Response<String>, Infallible>> {
    std::future::ready(Ok(Response::new(String::new())))
}

/// `Vary: Origin`'s value, built at compile time as the engine's is
/// (`HeaderValue::from_static` at run time checks every byte).
pub const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

/// The upstream plus one `Vary: Origin` insert into its response: the
/// least a layer that answers by origin adds to a forwarded request (a
/// floor for both benches, not a contender).
pub fn upstream_with_vary(
    req: Request<()>,
) -> std::future::Ready<Result<Response<String>, Infallible>> {
    drop(req);
    let mut res = Response::new(String::new());
    res.headers_mut().insert(http::header::VARY, VARY_ORIGIN);
    std::future::ready(Ok(res))
}

pub fn request(s: &Scenario) -> Request<()> {
    let mut req = Request::new(());
    *req.method_mut() = s.method.clone();
    *req.headers_mut() = s.headers.clone();
    req
}

/// A reference layer for actual requests, not a contender: a plain layer
/// that answers by origin, written the obvious way — find `Origin` (one
/// `HeaderMap::get`), look it up in a hash set (the engine's hasher), and
/// from a future of its own insert the origin (when listed) and
/// `Vary: Origin` into the inner service's response. No credentials,
/// exposed headers, preflights, telemetry or policy swaps.
///
/// [`MinimalCors::lean`] is the same layer with two of Corsair's own
/// tricks: `Origin` found by scanning a map of up to 24 lines, and a
/// response without headers given a clone of a prebuilt map (default
/// sizing) instead of inserts. It is not the least possible layer either;
/// it shows how far this bench lets a layer go (BENCHMARKS.md, fifth pass).
pub struct MinimalCors<S> {
    inner: S,
    origins: rustc_hash::FxHashSet<Vec<u8>>,
    lean: bool,
}

impl<S> MinimalCors<S> {
    /// The plain layer around `inner`, listing the same `n` origins as
    /// [`spec`].
    pub fn new(n: usize, inner: S) -> Self {
        MinimalCors {
            inner,
            origins: origins(n).into_iter().map(String::into_bytes).collect(),
            lean: false,
        }
    }

    /// The lean variant (see the type's documentation).
    pub fn lean(n: usize, inner: S) -> Self {
        MinimalCors {
            lean: true,
            ..MinimalCors::new(n, inner)
        }
    }
}

/// The lean variant's prebuilt maps: `Vary` alone, and the origin (a
/// placeholder, replaced by position) with `Vary`.
fn prebuilt(allowed: bool) -> &'static HeaderMap {
    static MAPS: [std::sync::OnceLock<HeaderMap>; 2] =
        [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
    MAPS[usize::from(allowed)].get_or_init(|| {
        let mut map = HeaderMap::new();
        if allowed {
            map.insert(
                http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static(""),
            );
        }
        map.insert(http::header::VARY, VARY_ORIGIN);
        map
    })
}

impl<S> Service<Request<()>> for MinimalCors<S>
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response<String>;
    type Error = Infallible;
    type Future = MinimalFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        let headers = req.headers();
        let origin = if self.lean && headers.len() <= 24 {
            headers
                .iter()
                .find(|(name, _)| *name == http::header::ORIGIN)
                .map(|(_, v)| v)
        } else {
            headers.get(http::header::ORIGIN)
        };
        let allow = origin
            .filter(|o| self.origins.contains(o.as_bytes()))
            .cloned();
        MinimalFuture {
            inner: self.inner.call(req),
            allow,
            lean: self.lean,
        }
    }
}

pub struct MinimalFuture<F> {
    inner: F,
    allow: Option<http::HeaderValue>,
    lean: bool,
}

impl<F> Future for MinimalFuture<F>
where
    F: Future<Output = Result<Response<String>, Infallible>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut res = std::task::ready!(Pin::new(&mut self.inner).poll(cx))?;
        let allow = self.allow.take();
        let headers = res.headers_mut();
        if self.lean && headers.capacity() == 0 {
            *headers = prebuilt(allow.is_some()).clone();
            if let (Some(origin), Some(slot)) = (allow, headers.values_mut().next()) {
                *slot = origin;
            }
            return Poll::Ready(Ok(res));
        }
        if let Some(origin) = allow {
            headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
        headers.insert(http::header::VARY, VARY_ORIGIN);
        Poll::Ready(Ok(res))
    }
}
