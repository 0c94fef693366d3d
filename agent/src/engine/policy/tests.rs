//! Smoke tests of the decision paths; the full table lives in
//! `agent/tests/engine_conformance.rs`.

use super::*;
use crate::engine::{ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK, DecisionKind};
use http::{HeaderMap, Method, StatusCode};

fn policy(origins: &[&str]) -> Policy {
    let spec = PolicySpec {
        origins: origins.iter().map(|s| s.to_string()).collect(),
        allow_methods: vec!["PUT".into()],
        allow_headers: vec!["x-custom".into()],
        max_age_secs: 600,
        ..PolicySpec::default()
    };
    match Policy::compile(&spec) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn preflight_allowed_and_rejected() {
    let p = policy(&["https://app.example.com"]);
    let h = headers(&[
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "x-custom"),
    ]);
    let d = p.evaluate(&RequestParts {
        method: &Method::OPTIONS,
        headers: &h,
    });
    assert_eq!(d.kind(), DecisionKind::PreflightAllowed);
    assert_eq!(d.local_response(), Some(StatusCode::NO_CONTENT));
    let mut out = HeaderMap::new();
    d.apply(&mut out);
    assert_eq!(
        out["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(out["access-control-allow-methods"], "PUT");
    assert_eq!(out["access-control-allow-headers"], "x-custom");
    assert_eq!(out["access-control-max-age"], "600");

    let h = headers(&[
        ("origin", "https://evil.com"),
        ("access-control-request-method", "PUT"),
    ]);
    let d = p.evaluate(&RequestParts {
        method: &Method::OPTIONS,
        headers: &h,
    });
    assert_eq!(d.local_response(), Some(StatusCode::FORBIDDEN));
    assert_eq!(d.reason(), Some(Reason::OriginNotAllowed));
    let mut out = HeaderMap::new();
    d.apply(&mut out);
    assert!(out.get("access-control-allow-origin").is_none());
}

#[test]
fn actual_request_replaces_upstream_grant_and_merges_vary() {
    let p = policy(&["https://app.example.com"]);
    let h = headers(&[("origin", "https://app.example.com")]);
    let d = p.evaluate(&RequestParts {
        method: &Method::GET,
        headers: &h,
    });
    assert_eq!(d.kind(), DecisionKind::Allowed);
    let mut out = headers(&[
        ("access-control-allow-origin", "*"),
        ("vary", "accept-encoding"),
    ]);
    d.apply(&mut out);
    let acao: Vec<_> = out.get_all("access-control-allow-origin").iter().collect();
    assert_eq!(acao, ["https://app.example.com"]);
    let vary: Vec<_> = out.get_all("vary").iter().collect();
    assert_eq!(vary, ["accept-encoding", "Origin"]);
}

#[test]
fn empty_origins_compile_to_deny_all() {
    let p = policy(&[]);
    let h = headers(&[("origin", "https://app.example.com")]);
    let d = p.evaluate(&RequestParts {
        method: &Method::GET,
        headers: &h,
    });
    assert_eq!(d.kind(), DecisionKind::Blocked);
    assert!(Policy::compile_authored(p.spec()).is_err());
}

#[test]
fn no_policy_fails_closed() {
    let h = headers(&[
        ("origin", "https://a.com"),
        ("access-control-request-method", "GET"),
    ]);
    let d = Decision::no_policy(&RequestParts {
        method: &Method::OPTIONS,
        headers: &h,
    });
    assert_eq!(d.local_response(), Some(StatusCode::FORBIDDEN));
    assert_eq!(d.reason().map(Reason::as_str), Some("no_policy"));
    let d = Decision::no_policy(&RequestParts {
        method: &Method::GET,
        headers: &h,
    });
    assert_eq!(d.kind(), DecisionKind::Blocked);
    assert_eq!(d.local_response(), None);
}

#[test]
fn simulator_view_of_a_decision() {
    let p = policy(&["https://app.example.com"]);
    let h = headers(&[
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "PUT"),
    ]);
    let d = p.evaluate(&RequestParts {
        method: &Method::OPTIONS,
        headers: &h,
    });
    assert_eq!(d.kind().as_str(), "preflight_allowed");
    let out = d.response_headers();
    assert_eq!(out["access-control-allow-methods"], "PUT");
}

/// What the tower layer carries across the upstream's await writes exactly
/// what the whole decision would, on empty and on busy upstream responses.
#[test]
fn forward_headers_write_what_the_decision_writes() {
    let credentialed = Policy::compile(&PolicySpec {
        origins: vec![
            "https://app.example.com".into(),
            "https://*.example.org".into(),
        ],
        expose_headers: vec!["x-request-id".into()],
        allow_credentials: true,
        ..PolicySpec::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let report_only = Policy::compile(&PolicySpec {
        origins: vec!["https://app.example.com".into()],
        mode: crate::engine::Mode::ReportOnly,
        ..PolicySpec::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let upstreams = [
        headers(&[]),
        headers(&[
            ("vary", "accept-encoding"),
            ("access-control-allow-origin", "*"),
            ("content-type", "text/plain"),
        ]),
    ];
    for p in [
        &credentialed,
        &report_only,
        &policy(&["https://app.example.com"]),
    ] {
        for origin in [
            None,
            Some("https://app.example.com"),
            Some("https://a.example.org"),
            Some("https://evil.example"),
        ] {
            let h = origin.map_or_else(HeaderMap::new, |o| headers(&[("origin", o)]));
            let d = p.evaluate(&RequestParts {
                method: &Method::GET,
                headers: &h,
            });
            assert!(d.forwards());
            for upstream in &upstreams {
                let (mut whole, mut carried) = (upstream.clone(), upstream.clone());
                d.apply(&mut whole);
                d.forward_headers().apply(&mut carried);
                assert_eq!(carried, whole, "{origin:?}");
            }
        }
    }
}

fn get(p: &Policy, method: Method, pairs: &[(&'static str, &'static str)]) -> Option<usize> {
    let h = headers(pairs);
    let d = p.evaluate(&RequestParts {
        method: &method,
        headers: &h,
    });
    p.count_use(&d);
    d.granted_pattern()
}

#[test]
fn granted_requests_name_and_count_their_pattern() {
    let p = policy(&[
        "https://app.example.com",
        "https://*.example.org",
        "http://*.example.org",
    ]);
    let origin = |o| [("origin", o)];
    assert_eq!(
        get(&p, Method::GET, &origin("https://app.example.com")),
        Some(0)
    );
    // A wildcard names itself, per scheme, whichever origin it matched.
    assert_eq!(
        get(&p, Method::GET, &origin("https://a.example.org")),
        Some(1)
    );
    assert_eq!(
        get(&p, Method::GET, &origin("https://b.c.example.org")),
        Some(1)
    );
    assert_eq!(
        get(&p, Method::GET, &origin("http://a.example.org")),
        Some(2)
    );
    let preflight = |m| {
        [
            ("origin", "https://app.example.com"),
            ("access-control-request-method", m),
        ]
    };
    assert_eq!(get(&p, Method::OPTIONS, &preflight("PUT")), Some(0));
    // Refused: no pattern, nothing counted.
    assert_eq!(get(&p, Method::OPTIONS, &preflight("DELETE")), None);
    assert_eq!(
        get(&p, Method::GET, &origin("https://evil.example.net")),
        None
    );
    assert_eq!(get(&p, Method::GET, &[]), None);
    let mut used = Vec::new();
    p.take_uses(|pattern, n| used.push((pattern.to_owned(), n)));
    assert_eq!(
        used,
        [
            ("https://app.example.com".to_owned(), 2),
            ("https://*.example.org".to_owned(), 2),
            ("http://*.example.org".to_owned(), 1),
        ]
    );
    // Drained: a second take finds nothing.
    assert!(!p.has_uses());
    p.take_uses(|pattern, n| panic!("{pattern} counted {n} again"));
}

#[test]
fn report_only_counts_only_what_the_policy_grants() {
    let spec = PolicySpec {
        origins: vec!["https://app.example.com".into()],
        mode: crate::engine::Mode::ReportOnly,
        ..PolicySpec::default()
    };
    let p = match Policy::compile(&spec) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        get(&p, Method::GET, &[("origin", "https://app.example.com")]),
        Some(0)
    );
    // Let through as if allowed, but would have been blocked: not a use.
    assert_eq!(
        get(&p, Method::GET, &[("origin", "https://evil.example.net")]),
        None
    );
    let preflight = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "DELETE"),
    ];
    assert_eq!(get(&p, Method::OPTIONS, &preflight), None);
    let mut total = 0;
    p.take_uses(|_, n| total += n);
    assert_eq!(total, 1);
}

#[test]
fn any_origin_counts_under_star() {
    let p = policy(&["*"]);
    assert_eq!(
        get(&p, Method::GET, &[("origin", "https://x.example")]),
        Some(0)
    );
    let mut used = Vec::new();
    p.take_uses(|pattern, n| used.push((pattern.to_owned(), n)));
    assert_eq!(used, [("*".to_owned(), 1)]);
}

/// The Private Network Access ask is found (first line only, `true` only)
/// whether the request's map is scanned (small) or looked up (large).
#[test]
fn private_network_ask_in_small_and_large_maps() {
    let filler: Vec<HeaderMap> = [0usize, 40]
        .iter()
        .map(|&n| {
            let mut h = HeaderMap::new();
            for i in 0..n {
                h.append(
                    http::HeaderName::from_bytes(format!("x-filler-{i}").as_bytes())
                        .expect("valid name"),
                    HeaderValue::from_static("1"),
                );
            }
            h
        })
        .collect();
    for base in &filler {
        for (values, asked) in [
            (&["true"][..], true),
            (&["false"][..], false),
            (&["TRUE"][..], false),
            (&["true", "false"][..], true),
            (&["false", "true"][..], false),
            (&[][..], false),
        ] {
            let mut h = base.clone();
            for v in values {
                h.append(
                    ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK,
                    HeaderValue::from_static(v),
                );
            }
            assert_eq!(
                crate::engine::request_lines::PreflightLines::read(&h).private_network_asked(),
                asked,
                "{values:?} among {} lines",
                base.len()
            );
        }
    }
}
