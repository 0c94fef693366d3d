//! `evaluate` + `apply` on arbitrary requests against a few fixed policies,
//! asserting the engine's invariants rather than only "no panic":
//!
//! - an origin not on the list (by a plain restatement of the matching
//!   rules) never gets a preflight through or `Access-Control-Allow-Origin`
//!   in enforce mode, and report-only marks it "would block";
//! - a listed origin's actual request is granted;
//! - at most one `Access-Control-Allow-Origin`, equal to the request's origin
//!   or `*` for the any-origin policy; with credentials never a `*` origin;
//! - the local status matches the decision kind.

#![no_main]

use arbitrary::Arbitrary;
use corsair_agent::engine::{DecisionKind, Mode, Policy, PolicySpec, RequestParts};
use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ORIGIN};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// The fixed policies, with their origin lists for the oracle.
static POLICIES: LazyLock<Vec<(PolicySpec, Policy)>> = LazyLock::new(|| {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let specs = [
        PolicySpec {
            origins: s(&[
                "https://app.example.com",
                "https://*.example.org",
                "http://localhost:3000",
            ]),
            allow_methods: s(&["PUT", "PATCH"]),
            allow_headers: s(&["x-custom", "content-type"]),
            expose_headers: s(&["x-request-id"]),
            max_age_secs: 600,
            ..PolicySpec::default()
        },
        PolicySpec {
            origins: s(&["https://app.example.com", "https://*.example.org:8443"]),
            allow_credentials: true,
            allow_methods: s(&["*"]),
            allow_headers: s(&["*"]),
            allow_private_network: true,
            ..PolicySpec::default()
        },
        PolicySpec {
            origins: s(&["*"]),
            allow_headers: s(&["*"]),
            expose_headers: s(&["*"]),
            ..PolicySpec::default()
        },
        PolicySpec {
            origins: s(&["https://app.example.com", "http://*.example.org"]),
            allow_credentials: true,
            allow_insecure_http: true,
            mode: Mode::ReportOnly,
            ..PolicySpec::default()
        },
        PolicySpec {
            origins: s(&["https://app.example.com"]),
            strict: true,
            ..PolicySpec::default()
        },
    ];
    specs
        .into_iter()
        .map(|spec| {
            let policy = Policy::compile(&spec).expect("fixture compiles");
            (spec, policy)
        })
        .collect()
});

/// An `Origin` line: derived from a listed pattern (so the fuzzer reaches
/// grants without guessing hosts), or raw bytes.
#[derive(Debug, Arbitrary)]
enum OriginLine {
    Listed {
        index: u8,
        sub: String,
        suffix: String,
    },
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Name {
    Origin(OriginLine),
    RequestMethod(Vec<u8>),
    RequestHeaders(Vec<u8>),
    RequestPrivateNetwork(Vec<u8>),
    Other(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    policy: u8,
    options: bool,
    method: Vec<u8>,
    lines: Vec<Name>,
}

fn labels(s: &str) -> bool {
    s.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

fn on_list(list: &[String], origin: &str) -> bool {
    list.iter().any(|p| {
        p == "*"
            || (p == origin && !p.contains('*'))
            || p.split_once('*').is_some_and(|(scheme, suffix)| {
                origin
                    .strip_prefix(scheme)
                    .and_then(|r| r.strip_suffix(suffix))
                    .is_some_and(labels)
            })
    })
}

fuzz_target!(|input: Input| {
    let (spec, policy) = &POLICIES[usize::from(input.policy) % POLICIES.len()];
    let method = if input.options {
        Method::OPTIONS
    } else {
        Method::from_bytes(&input.method).unwrap_or(Method::GET)
    };
    let mut headers = HeaderMap::new();
    for line in input.lines.iter().take(16) {
        let (name, value) = match line {
            Name::Origin(OriginLine::Listed { index, sub, suffix }) => {
                let p = &spec.origins[usize::from(*index) % spec.origins.len()];
                let o = if p == "*" {
                    format!("https://{sub}")
                } else {
                    p.replacen('*', sub, 1)
                };
                (ORIGIN, format!("{o}{suffix}").into_bytes())
            }
            Name::Origin(OriginLine::Raw(v)) => (ORIGIN, v.clone()),
            Name::RequestMethod(v) => (http::header::ACCESS_CONTROL_REQUEST_METHOD, v.clone()),
            Name::RequestHeaders(v) => (http::header::ACCESS_CONTROL_REQUEST_HEADERS, v.clone()),
            Name::RequestPrivateNetwork(v) => (
                HeaderName::from_static("access-control-request-private-network"),
                v.clone(),
            ),
            Name::Other(v) => (HeaderName::from_static("x-other"), v.clone()),
        };
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            headers.append(name, v);
        }
    }
    let parts = RequestParts {
        method: &method,
        headers: &headers,
    };
    let d = policy.evaluate(&parts);

    let mut sent = headers.get_all(ORIGIN).iter();
    let single = match (sent.next(), sent.next()) {
        (Some(o), None) => o.to_str().ok(),
        _ => None,
    };
    let listed = single.is_some_and(|o| on_list(&spec.origins, o));
    let any = spec.origins.iter().any(|o| o == "*");
    let preflight = method == Method::OPTIONS
        && headers.contains_key(ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let report_only = spec.mode == Mode::ReportOnly;

    // The upstream sets its own CORS headers: only the engine's may remain.
    let mut out = HeaderMap::new();
    out.insert(
        ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("https://upstream.example"),
    );
    out.append(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    d.apply(&mut out);
    let acao: Vec<&HeaderValue> = out.get_all(ACCESS_CONTROL_ALLOW_ORIGIN).iter().collect();
    assert!(acao.len() <= 1, "two Access-Control-Allow-Origin: {acao:?}");
    if let [v] = acao.as_slice() {
        let echo = headers.get(ORIGIN) == Some(*v);
        assert!(
            echo || (any && *v == "*"),
            "granted {v:?} for {:?}",
            headers.get(ORIGIN)
        );
        assert!(
            !(spec.allow_credentials && *v == "*"),
            "`*` with credentials"
        );
    }

    if headers.contains_key(ORIGIN) && !listed {
        if report_only {
            assert!(
                acao.is_empty() || d.would_block(),
                "report-only grant not marked"
            );
        } else {
            assert!(acao.is_empty(), "unlisted origin granted {acao:?}");
            assert_ne!(
                d.kind(),
                DecisionKind::PreflightAllowed,
                "unlisted preflight allowed"
            );
            assert_ne!(d.kind(), DecisionKind::Allowed, "unlisted request allowed");
        }
    }
    if listed && !preflight {
        assert_eq!(d.kind(), DecisionKind::Allowed, "listed origin refused");
        assert_eq!(acao.len(), 1, "listed origin without a grant");
    }
    match d.kind() {
        DecisionKind::PreflightAllowed => {
            assert_eq!(d.local_response(), Some(StatusCode::NO_CONTENT))
        }
        DecisionKind::PreflightRejected => {
            assert_eq!(d.local_response(), Some(StatusCode::FORBIDDEN))
        }
        DecisionKind::Allowed | DecisionKind::NotCors => assert_eq!(d.local_response(), None),
        DecisionKind::Blocked => {}
    }
    assert_eq!(
        preflight,
        matches!(
            d.kind(),
            DecisionKind::PreflightAllowed | DecisionKind::PreflightRejected
        )
    );
});
