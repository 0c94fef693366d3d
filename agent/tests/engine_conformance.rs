//! Conformance table: one row = policy × request → status, the exact CORS
//! response headers, `Vary`, whether the upstream was called, and the reason.
//!
//! Every row runs through the real `CorsairLayer` in front of an upstream that
//! tries to grant CORS itself (`Access-Control-Allow-Origin`,
//! `-Allow-Credentials`) and sets `Vary: Accept-Encoding`, so each forwarded
//! row also checks that only the policy's answer survives and that `Vary` is
//! merged, not replaced.

use corsair_agent::CorsairLayer;
use corsair_agent::engine::{Decision, Policy, RequestParts};
use corsair_agent::handle::{ActivePolicy, PolicyHandle};
use futures_util::FutureExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tower::{Layer, Service};

mod conformance;
use conformance::*;

/// Runs one request through `CorsairLayer` in front of a counting upstream.
fn run(handle: &PolicyHandle, method: &Method, headers: &HeaderMap) -> (Response<String>, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let upstream = tower::service_fn(move |_req: Request<()>| {
        counter.fetch_add(1, Ordering::SeqCst);
        let mut res = Response::new(String::from("upstream"));
        let h = res.headers_mut();
        h.insert(
            "access-control-allow-origin",
            HeaderValue::from_static("https://upstream.example"),
        );
        h.insert(
            "access-control-allow-credentials",
            HeaderValue::from_static("true"),
        );
        h.insert("vary", HeaderValue::from_static("Accept-Encoding"));
        std::future::ready(Ok::<_, Infallible>(res))
    });
    let mut svc = CorsairLayer::new(handle.clone()).layer(upstream);
    let mut req = Request::new(());
    *req.method_mut() = method.clone();
    *req.headers_mut() = headers.clone();
    let res = match svc.call(req).now_or_never() {
        Some(Ok(res)) => res,
        Some(Err(e)) => match e {},
        None => panic!("the layer's future was not ready"),
    };
    (res, calls.load(Ordering::SeqCst))
}

#[test]
fn conformance_table() {
    let rows = rows();
    assert!(rows.len() >= 150, "only {} rows", rows.len());
    let mut failures = Vec::new();
    for row in &rows {
        let handle = PolicyHandle::new();
        let compiled = spec(row.policy).map(|s| match Policy::compile(&s) {
            Ok(p) => p,
            Err(e) => panic!("fixture {}: {e}", row.policy),
        });
        let method = Method::from_bytes(row.method.as_bytes()).expect("row method");
        let mut headers = HeaderMap::new();
        for (k, v) in &row.req {
            let name = HeaderName::from_bytes(expand(k).as_bytes()).expect("row header name");
            headers.append(
                name,
                HeaderValue::from_bytes(v.as_bytes()).expect("row header value"),
            );
        }
        let parts = RequestParts {
            method: &method,
            headers: &headers,
        };
        let reason = match &compiled {
            Some(p) => p.evaluate(&parts).reason(),
            None => Decision::no_policy(&parts).reason(),
        };
        if let Some(policy) = compiled {
            handle.store(Some(Arc::new(ActivePolicy {
                service: "svc".into(),
                revision: 1,
                policy,
            })));
        }
        let (res, calls) = run(&handle, &method, &headers);

        let mut got: Vec<(String, String)> = res
            .headers()
            .iter()
            .filter(|(n, _)| n.as_str().starts_with("access-control-"))
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        got.sort();
        let mut want: Vec<(String, String)> = row
            .cors
            .iter()
            .map(|(k, v)| (expand(k).to_owned(), v.to_string()))
            .collect();
        want.sort();
        let vary = res
            .headers()
            .get_all("vary")
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");

        let mut errs = Vec::new();
        if res.status().as_u16() != row.status {
            errs.push(format!("status {} != {}", res.status(), row.status));
        }
        if (calls == 1) != row.forwarded {
            errs.push(format!(
                "upstream called {calls} times, forwarded = {}",
                row.forwarded
            ));
        }
        if got != want {
            errs.push(format!("CORS headers {got:?} != {want:?}"));
        }
        if vary != row.vary {
            errs.push(format!("Vary {vary:?} != {:?}", row.vary));
        }
        if reason.map(|r| r.as_str()) != row.reason {
            errs.push(format!("reason {reason:?} != {:?}", row.reason));
        }
        if !errs.is_empty() {
            failures.push(format!(
                "[{}] {}: {}",
                row.policy,
                row.name,
                errs.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn report_only_marks_would_block_and_enforce_does_not() {
    let (Some(report), Some(basic)) = (spec("report"), spec("basic")) else {
        unreachable!()
    };
    let (report, basic) = match (Policy::compile(&report), Policy::compile(&basic)) {
        (Ok(r), Ok(b)) => (r, b),
        _ => panic!("fixtures compile"),
    };
    let mut h = HeaderMap::new();
    h.insert("origin", HeaderValue::from_static(EVIL));
    let parts = RequestParts {
        method: &Method::GET,
        headers: &h,
    };
    assert!(report.evaluate(&parts).would_block());
    assert!(!basic.evaluate(&parts).would_block());
    h.insert("origin", HeaderValue::from_static(APP));
    let parts = RequestParts {
        method: &Method::GET,
        headers: &h,
    };
    assert!(!report.evaluate(&parts).would_block());
}
