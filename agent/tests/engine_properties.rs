//! Properties of the engine, checked with proptest on generated policies
//! and requests (a failure shrinks to a small case and is saved under
//! `proptest-regressions/`).
//!
//! - a preflight never succeeds, and an actual request never gets
//!   `Access-Control-Allow-Origin`, for an origin not on the list (report-only
//!   mode answers "as if allowed", so there the decision must say it would
//!   have blocked); an exact listed origin is always granted;
//! - a response never carries two `Access-Control-Allow-Origin` values, and
//!   the one it carries is the request's origin or `*` (any-origin only);
//! - with credentials, never a literal `*`;
//! - `evaluate` never panics on arbitrary method and header bytes;
//! - `parse_origin_pattern` never panics, and its canonical output re-parses
//!   to itself; `Policy::compile` never panics on arbitrary specs.
//!
//! The oracle, [`on_list`], is a plain restatement of the matching rules, not
//! the engine's hash-map lookups.

use corsair_agent::engine::{
    Decision, DecisionKind, Mode, Policy, PolicySpec, Reason, RequestParts, parse_origin_pattern,
};
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD,
    ORIGIN, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select, subsequence};
use proptest::test_runner::TestRunner;

// ---------------------------------------------------------------- policies

/// Small pools, so that generated requests often hit, or nearly hit, the
/// generated allowlist.
const LABELS: &[&str] = &["app", "api", "a", "x-1", "ex", "evil"];
const TLDS: &[&str] = &["com", "org", "net", "test"];
const PORTS: &[&str] = &["", ":8080", ":3000"];
const SCHEMES: &[&str] = &["https://", "http://"];
const LOOPBACK: &[&str] = &[
    "http://localhost:3000",
    "http://127.0.0.1:8080",
    "http://[::1]:3000",
];

fn host() -> impl Strategy<Value = String> {
    (vec(select(LABELS), 1..3), select(TLDS))
        .prop_map(|(ls, tld)| format!("{}.{tld}", ls.join(".")))
}

/// A valid, canonical pattern: exact, wildcard or loopback.
fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (select(SCHEMES), host(), select(PORTS)).prop_map(|(s, h, p)| format!("{s}{h}{p}")),
        2 => (select(SCHEMES), host(), select(PORTS)).prop_map(|(s, h, p)| format!("{s}*.{h}{p}")),
        1 => select(LOOPBACK).prop_map(str::to_owned),
    ]
}

fn owned(v: Vec<&str>) -> Vec<String> {
    v.into_iter().map(str::to_owned).collect()
}

/// A policy that compiles: `*` never with credentials, plain http allowed
/// by the explicit opt-in.
fn spec() -> impl Strategy<Value = PolicySpec> {
    let origins = prop_oneof![
        8 => vec(pattern(), 0..5),
        1 => Just(vec!["*".to_owned()]),
    ];
    let fields = (
        subsequence(&["PUT", "DELETE", "PATCH", "QUERY", "*"][..], 0..=5),
        subsequence(
            &["x-custom", "content-type", "X-Other", "authorization", "*"][..],
            0..=5,
        ),
        subsequence(&["x-request-id", "*"][..], 0..=2),
        select(&[0i64, 600][..]),
    );
    let flags = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
    (origins, fields, flags).prop_map(
        |(origins, (methods, headers, expose, max_age), (credentials, pna, report, strict))| {
            let any_origin = origins.iter().any(|o| o == "*");
            let credentials = credentials && !any_origin;
            let mut expose = owned(expose);
            if credentials {
                expose.retain(|h| h != "*");
            }
            PolicySpec {
                origins,
                allow_methods: owned(methods),
                allow_headers: owned(headers),
                expose_headers: expose,
                allow_credentials: credentials,
                max_age_secs: max_age,
                allow_private_network: pna,
                mode: if report {
                    Mode::ReportOnly
                } else {
                    Mode::Enforce
                },
                strict,
                allow_insecure_http: true,
            }
        },
    )
}

fn compile(spec: &PolicySpec) -> Policy {
    match Policy::compile(spec) {
        Ok(p) => p,
        Err(e) => panic!("generated spec must compile: {e}\n{spec:?}"),
    }
}

// ---------------------------------------------------------------- requests

/// What to do to a listed pattern to get a request origin: near misses
/// (the classic traps) and exact hits.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    None,
    Uppercase,
    AppendEvil,
    PrefixHost,
    SwapScheme,
    DefaultPort,
    TrailingSlash,
    TrailingDot,
    DropLast,
    LeadingSpace,
}

const MUTATIONS: &[Mutation] = &[
    Mutation::None,
    Mutation::None,
    Mutation::None,
    Mutation::Uppercase,
    Mutation::AppendEvil,
    Mutation::PrefixHost,
    Mutation::SwapScheme,
    Mutation::DefaultPort,
    Mutation::TrailingSlash,
    Mutation::TrailingDot,
    Mutation::DropLast,
    Mutation::LeadingSpace,
];

/// Labels put in place of a wildcard's `*`: valid and invalid ones.
const SUBLABELS: &[&str] = &[
    "a", "b2", "x-y", "app", "", "A", "-a", "a-", "a_b", "a:1", "é", "*",
];

fn mutate(origin: &str, m: Mutation) -> String {
    let (scheme, rest) = origin.split_once("://").unwrap_or(("https", origin));
    match m {
        Mutation::None => origin.to_owned(),
        Mutation::Uppercase => origin.to_ascii_uppercase(),
        Mutation::AppendEvil => format!("{origin}.evil.com"),
        Mutation::PrefixHost => format!("{scheme}://evil{rest}"),
        Mutation::SwapScheme if scheme == "https" => format!("http://{rest}"),
        Mutation::SwapScheme => format!("https://{rest}"),
        Mutation::DefaultPort if scheme == "https" => format!("{origin}:443"),
        Mutation::DefaultPort => format!("{origin}:80"),
        Mutation::TrailingSlash => format!("{origin}/"),
        Mutation::TrailingDot => format!("{origin}."),
        Mutation::DropLast => origin[..origin.len() - 1].to_owned(),
        Mutation::LeadingSpace => format!(" {origin}"),
    }
}

/// An `Origin` value, mostly derived from `list`.
fn origin_value(list: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let derived = (
        any::<Index>(),
        vec(select(SUBLABELS), 1..3),
        select(MUTATIONS),
    )
        .prop_map(move |(i, sub, m)| {
            let Some(p) = (!list.is_empty()).then(|| &list[i.index(list.len())]) else {
                return b"https://app.com".to_vec();
            };
            let sub = sub.join(".");
            let instance = match p.as_str() {
                "*" => format!("https://{sub}.example"),
                p => p.replacen('*', &sub, 1),
            };
            mutate(&instance, m).into_bytes()
        });
    prop_oneof![
        8 => derived,
        2 => pattern().prop_map(|p| p.replacen('*', "a", 1).into_bytes()),
        1 => select(&["null", "*", "", "https://", "https://*.ex.com", "file://"][..])
            .prop_map(|s| s.as_bytes().to_vec()),
        1 => vec(any::<u8>(), 0..40),
    ]
}

fn acrm_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => select(&["GET", "PUT", "put", "PATCH", "DELETE", "QUERY", "CONNECT", "*", ""][..])
            .prop_map(|s| s.as_bytes().to_vec()),
        1 => vec(any::<u8>(), 0..12),
    ]
}

fn acrh_value() -> impl Strategy<Value = Vec<u8>> {
    let names = select(
        &[
            "x-custom",
            "X-Custom",
            "content-type",
            "authorization",
            "x-other",
            "*",
            "",
            " ",
        ][..],
    );
    prop_oneof![
        6 => (vec(names, 0..5), select(&[",", ", ", " ,,"][..]))
            .prop_map(|(ns, sep)| ns.join(sep).into_bytes()),
        1 => (1..5000usize).prop_map(|n| format!("x-custom{}", ",".repeat(n)).into_bytes()),
        1 => vec(any::<u8>(), 0..64),
    ]
}

/// A request: its method and its header lines (names may repeat).
#[derive(Debug, Clone)]
struct Req {
    method: Method,
    lines: Vec<(HeaderName, Vec<u8>)>,
}

impl Req {
    /// The header map a server would hand over; values that are not valid
    /// header bytes are dropped (a server would refuse them before us).
    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in &self.lines {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                h.append(name.clone(), v);
            }
        }
        h
    }
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        4 => Just(Method::OPTIONS),
        2 => select(&[Method::GET, Method::POST, Method::PUT, Method::DELETE][..]),
        1 => "[-!#$%&'*+.^_`|~0-9A-Za-z]{1,10}"
            .prop_map(|s| Method::from_bytes(s.as_bytes()).unwrap_or(Method::PATCH)),
    ]
}

/// A request shaped by `list`: usually one `Origin`, sometimes none or two,
/// and the preflight headers more often than not.
fn request(list: Vec<String>) -> impl Strategy<Value = Req> {
    let origins = prop_oneof![
        8 => vec(origin_value(list.clone()), 1..=1),
        1 => Just(Vec::new()),
        1 => vec(origin_value(list), 2..=2),
    ];
    let acrpn = select(&["true", "false", "TRUE"][..]).prop_map(|s| s.as_bytes().to_vec());
    (
        method(),
        origins,
        proptest::option::weighted(0.8, acrm_value()),
        vec(acrh_value(), 0..3),
        proptest::option::weighted(0.3, acrpn),
    )
        .prop_map(|(method, origins, acrm, acrh, pna)| {
            let mut lines: Vec<(HeaderName, Vec<u8>)> =
                origins.into_iter().map(|o| (ORIGIN, o)).collect();
            lines.extend(acrm.map(|v| (ACCESS_CONTROL_REQUEST_METHOD, v)));
            lines.extend(
                acrh.into_iter()
                    .map(|v| (ACCESS_CONTROL_REQUEST_HEADERS, v)),
            );
            lines.extend(pna.map(|v| {
                (
                    HeaderName::from_static("access-control-request-private-network"),
                    v,
                )
            }));
            Req { method, lines }
        })
}

/// A policy and a request aimed at it.
fn case() -> impl Strategy<Value = (PolicySpec, Req)> {
    spec().prop_flat_map(aimed)
}

/// A credentialed policy (no `*` anywhere) and a request aimed at it.
fn credentialed_case() -> impl Strategy<Value = (PolicySpec, Req)> {
    spec()
        .prop_map(|mut spec| {
            spec.allow_credentials = true;
            spec.origins.retain(|o| o != "*");
            spec.expose_headers.retain(|h| h != "*");
            spec
        })
        .prop_flat_map(aimed)
}

fn aimed(spec: PolicySpec) -> impl Strategy<Value = (PolicySpec, Req)> {
    let list = spec.origins.clone();
    (Just(spec), request(list))
}

// ---------------------------------------------------------------- oracle

/// One or more lowercase DNS labels joined by dots.
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

/// Whether exactly one `Origin` was sent and the list covers it: `*`, an
/// identical entry, or a `scheme://*.base[:port]` entry with labels in
/// place of the `*`.
fn on_list(list: &[String], headers: &HeaderMap) -> bool {
    let mut sent = headers.get_all(ORIGIN).iter();
    let (Some(origin), None) = (sent.next(), sent.next()) else {
        return false;
    };
    let Ok(o) = origin.to_str() else {
        return false;
    };
    list.iter().any(|p| {
        p == "*"
            || (p == o && !p.contains('*'))
            || p.split_once('*').is_some_and(|(scheme, suffix)| {
                o.strip_prefix(scheme)
                    .and_then(|r| r.strip_suffix(suffix))
                    .is_some_and(labels)
            })
    })
}

/// What the properties read from a decision, kept beyond its borrow of
/// the request.
struct Outcome {
    kind: DecisionKind,
    reason: Option<Reason>,
    would_block: bool,
    local_response: Option<http::StatusCode>,
    response_headers: HeaderMap,
}

impl Outcome {
    fn of(d: &Decision<'_>) -> Outcome {
        Outcome {
            kind: d.kind(),
            reason: d.reason(),
            would_block: d.would_block(),
            local_response: d.local_response(),
            response_headers: d.response_headers(),
        }
    }
    fn kind(&self) -> DecisionKind {
        self.kind
    }
    fn reason(&self) -> Option<Reason> {
        self.reason
    }
    fn would_block(&self) -> bool {
        self.would_block
    }
    fn local_response(&self) -> Option<http::StatusCode> {
        self.local_response
    }
    fn response_headers(&self) -> HeaderMap {
        self.response_headers.clone()
    }
}

/// Evaluates and applies the decision onto an upstream response that set
/// its own CORS headers (the layer's worst case for duplicates).
fn respond(policy: &Policy, req: &Req) -> (Outcome, HeaderMap, HeaderMap) {
    let headers = req.headers();
    let parts = RequestParts {
        method: &req.method,
        headers: &headers,
    };
    let decision = policy.evaluate(&parts);
    let d = Outcome::of(&decision);
    let mut out = HeaderMap::new();
    if decision.forwards() {
        out.insert(
            ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://upstream.example"),
        );
        out.append(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        out.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
    decision.apply(&mut out);
    (d, headers, out)
}

fn elements(v: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    v.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

fn asked_for_star(req: &HeaderMap, name: HeaderName) -> bool {
    req.get_all(name)
        .iter()
        .any(|v| elements(v).any(|e| e == b"*"))
}

// ---------------------------------------------------------------- properties

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(512)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_patterns_are_canonical(p in pattern()) {
        prop_assert_eq!(parse_origin_pattern(&p), Ok(p.clone()));
    }

    #[test]
    fn a_preflight_never_succeeds_for_an_unlisted_origin((spec, req) in case()) {
        let policy = compile(&spec);
        let (d, headers, _) = respond(&policy, &req);
        if !on_list(&spec.origins, &headers) {
            match spec.mode {
                Mode::Enforce => prop_assert_ne!(d.kind(), DecisionKind::PreflightAllowed),
                Mode::ReportOnly => prop_assert!(
                    d.kind() != DecisionKind::PreflightAllowed || d.would_block()
                ),
            }
        }
    }

    #[test]
    fn an_actual_request_never_grants_an_unlisted_origin((spec, req) in case()) {
        let policy = compile(&spec);
        let (d, headers, out) = respond(&policy, &req);
        let actual = !matches!(
            d.kind(),
            DecisionKind::PreflightAllowed | DecisionKind::PreflightRejected
        );
        let any_origin = spec.origins.iter().any(|o| o == "*");
        if actual && !any_origin && !on_list(&spec.origins, &headers) {
            match spec.mode {
                Mode::Enforce => prop_assert!(
                    !out.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN),
                    "granted {:?}", out.get(ACCESS_CONTROL_ALLOW_ORIGIN)
                ),
                Mode::ReportOnly => prop_assert!(
                    !out.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN) || d.would_block()
                ),
            }
        }
    }

    #[test]
    fn an_exact_listed_origin_is_granted_on_an_actual_request(
        spec in spec(),
        i in any::<Index>(),
        method in select(&[Method::GET, Method::POST, Method::OPTIONS][..]),
    ) {
        let exact: Vec<&String> =
            spec.origins.iter().filter(|o| !o.contains('*')).collect();
        prop_assume!(!exact.is_empty());
        let origin = exact[i.index(exact.len())];
        let policy = compile(&spec);
        let req = Req { method, lines: vec![(ORIGIN, origin.clone().into_bytes())] };
        let (d, _, out) = respond(&policy, &req);
        prop_assert_eq!(d.kind(), DecisionKind::Allowed);
        prop_assert_eq!(d.reason(), None);
        prop_assert_eq!(
            out.get(ACCESS_CONTROL_ALLOW_ORIGIN).map(HeaderValue::as_bytes),
            Some(origin.as_bytes())
        );
    }

    #[test]
    fn never_two_allow_origin_values((spec, req) in case()) {
        let policy = compile(&spec);
        let (_, headers, out) = respond(&policy, &req);
        let acao: Vec<&HeaderValue> = out.get_all(ACCESS_CONTROL_ALLOW_ORIGIN).iter().collect();
        prop_assert!(acao.len() <= 1, "{:?}", acao);
        // The one value is the request's own origin, or `*` for any-origin.
        if let [v] = acao.as_slice() {
            let any_origin = spec.origins.iter().any(|o| o == "*");
            prop_assert!(
                (*v == "*" && any_origin) || headers.get(ORIGIN) == Some(*v),
                "{:?} for request origin {:?}", v, headers.get(ORIGIN)
            );
        }
        // Whenever the answer depends on the origin, caches are told.
        if !spec.origins.iter().any(|o| o == "*") {
            prop_assert!(
                out.get_all(VARY).iter().any(|v| elements(v).any(|e| e == b"Origin")),
                "{:?}", out
            );
        }
    }

    /// With credentials `*` means the literal name `*` to a browser, so the
    /// engine must echo instead. The one `*` that may appear is the echo of
    /// a request that itself asked for a method or header literally named
    /// `*` (a valid token): echoing it grants exactly what was asked.
    #[test]
    fn with_credentials_never_a_literal_star((spec, req) in credentialed_case()) {
        let policy = compile(&spec);
        let (_, headers, out) = respond(&policy, &req);
        let star = |name: HeaderName| {
            out.get_all(name).iter().any(|v| elements(v).any(|e| e == b"*"))
        };
        prop_assert!(!star(ACCESS_CONTROL_ALLOW_ORIGIN), "{:?}", out);
        prop_assert!(!star(ACCESS_CONTROL_EXPOSE_HEADERS), "{:?}", out);
        prop_assert!(
            !star(ACCESS_CONTROL_ALLOW_METHODS)
                || asked_for_star(&headers, ACCESS_CONTROL_REQUEST_METHOD),
            "{:?}", out
        );
        prop_assert!(
            !star(ACCESS_CONTROL_ALLOW_HEADERS)
                || asked_for_star(&headers, ACCESS_CONTROL_REQUEST_HEADERS),
            "{:?}", out
        );
    }

    #[test]
    fn evaluate_never_panics_on_arbitrary_bytes(
        spec in spec(),
        method in "[-!#$%&'*+.^_`|~0-9A-Za-z]{1,16}",
        lines in vec(
            (
                prop_oneof![
                    4 => select(&[
                        "origin",
                        "access-control-request-method",
                        "access-control-request-headers",
                        "access-control-request-private-network",
                    ][..]).prop_map(str::to_owned),
                    1 => "[a-z0-9-]{1,12}",
                ],
                vec(any::<u8>(), 0..300),
            ),
            0..8,
        ),
    ) {
        let policy = compile(&spec);
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            return Err(TestCaseError::reject("not a method"));
        };
        let lines = lines
            .into_iter()
            .filter_map(|(n, v)| Some((HeaderName::from_bytes(n.as_bytes()).ok()?, v)))
            .collect();
        let (d, _, _) = respond(&policy, &Req { method, lines });
        let _ = (d.kind(), d.reason(), d.local_response(), d.response_headers());
    }

    #[test]
    fn origin_parsing_is_total_and_canonical_is_a_fixed_point(
        input in prop_oneof![
            2 => any::<String>(),
            2 => vec(select(PIECES), 1..8).prop_map(|v| v.concat()),
            1 => pattern(),
        ],
    ) {
        if let Ok(canonical) = parse_origin_pattern(&input) {
            prop_assert_eq!(parse_origin_pattern(&canonical), Ok(canonical.clone()));
            // A browser sending the canonical exact origin is granted.
            if canonical != "*" && !canonical.contains('*') {
                let policy = compile(&PolicySpec {
                    origins: vec![canonical.clone()],
                    ..PolicySpec::default()
                });
                let req = Req { method: Method::GET, lines: vec![(ORIGIN, canonical.into_bytes())] };
                prop_assert_eq!(respond(&policy, &req).0.kind(), DecisionKind::Allowed);
            }
        }
    }

    #[test]
    fn compile_never_panics_on_arbitrary_specs(
        origins in vec(prop_oneof![any::<String>(), vec(select(PIECES), 1..6).prop_map(|v| v.concat())], 0..4),
        methods in vec(any::<String>(), 0..3),
        headers in vec(any::<String>(), 0..3),
        expose in vec(any::<String>(), 0..3),
        max_age in any::<i64>(),
        flags in any::<(bool, bool, bool)>(),
    ) {
        let spec = PolicySpec {
            origins,
            allow_methods: methods,
            allow_headers: headers,
            expose_headers: expose,
            max_age_secs: max_age,
            allow_credentials: flags.0,
            allow_private_network: flags.1,
            allow_insecure_http: flags.2,
            ..PolicySpec::default()
        };
        if let Err(e) = Policy::compile(&spec) {
            prop_assert!(!e.problems.is_empty());
        }
    }
}

/// Pieces of origins, glued at random: near-valid patterns reach deeper
/// into the parser than arbitrary strings do.
const PIECES: &[&str] = &[
    "https://",
    "http://",
    "HTTPS://",
    "file:",
    "null",
    "*",
    "*.",
    ".",
    "..",
    "a",
    "app",
    "example",
    "com",
    "co.uk",
    "github.io",
    "localhost",
    "127.0.0.1",
    "127.1",
    "0x7f",
    "[::1]",
    "[",
    "]",
    ":",
    ":443",
    ":80",
    ":8080",
    ":0",
    ":65536",
    ":080",
    "/",
    "?",
    "#",
    "@",
    "%",
    "-",
    "_",
    "Ä",
    "xn--",
    " ",
    "\t",
    "org",
    "example.org",
    "evil",
    "1",
    "*.example.com",
];

/// The generator is not vacuous: over a fixed sample it reaches granted and
/// refused preflights and actual requests, listed and unlisted origins.
#[test]
fn the_request_generator_reaches_every_outcome() {
    use proptest::strategy::ValueTree;
    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    for _ in 0..1000 {
        let (spec, req) = strategy
            .new_tree(&mut runner)
            .expect("strategy generates")
            .current();
        let policy = compile(&spec);
        let (d, headers, _) = respond(&policy, &req);
        *seen.entry(d.kind().as_str()).or_default() += 1;
        let listed = on_list(&spec.origins, &headers);
        *seen
            .entry(if listed { "listed" } else { "unlisted" })
            .or_default() += 1;
    }
    for outcome in [
        "preflight_allowed",
        "preflight_rejected",
        "allowed",
        "blocked",
        "not_cors",
        "listed",
        "unlisted",
    ] {
        let n = seen.get(outcome).copied().unwrap_or(0);
        assert!(n >= 20, "only {n} cases of {outcome}: {seen:?}");
    }
}
