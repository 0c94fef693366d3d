//! Randomised properties of the engine, from a fixed-seed generator so a
//! failure is reproducible (the seed and case are in the message).
//!
//! - `parse_origin_pattern` never panics, and its canonical output parses to
//!   itself;
//! - `evaluate` never panics on arbitrary header bytes;
//! - a preflight never succeeds, and an actual request never gets
//!   `Access-Control-Allow-Origin`, for an origin that is not on the list.

use corsair_agent::engine::{DecisionKind, Policy, PolicySpec, RequestParts, parse_origin_pattern};
use http::{HeaderMap, HeaderValue, Method};

/// xorshift64*: tiny, deterministic, good enough to spread inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

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

fn random_pattern(rng: &mut Rng) -> String {
    let n = 1 + rng.below(7);
    (0..n).map(|_| rng.pick(PIECES)).collect()
}

#[test]
fn origin_parsing_is_total_and_canonical_is_a_fixed_point() {
    let mut rng = Rng(0x5EED_0001);
    for case in 0..50_000 {
        let p = random_pattern(&mut rng);
        if let Ok(canonical) = parse_origin_pattern(&p) {
            assert_eq!(
                parse_origin_pattern(&canonical).as_deref(),
                Ok(canonical.as_str()),
                "case {case}: {p:?} -> {canonical:?} does not re-parse to itself"
            );
        }
    }
}

fn random_header_value(rng: &mut Rng) -> HeaderValue {
    let len = rng.below(40);
    let bytes: Vec<u8> = (0..len)
        .map(|_| match rng.below(4) {
            0 => b',',
            1 => b' ',
            _ => 0x21 + rng.below(0xFF - 0x21) as u8,
        })
        .filter(|&b| b != 0x7F)
        .collect();
    HeaderValue::from_bytes(&bytes).unwrap_or(HeaderValue::from_static(""))
}

fn policies() -> Vec<Policy> {
    let specs = [
        PolicySpec {
            origins: vec![
                "https://app.example.com".into(),
                "https://*.example.org".into(),
            ],
            allow_methods: vec!["PUT".into()],
            allow_headers: vec!["x-custom".into()],
            ..PolicySpec::default()
        },
        PolicySpec {
            origins: vec!["https://app.example.com".into()],
            allow_credentials: true,
            allow_methods: vec!["*".into()],
            allow_headers: vec!["*".into()],
            ..PolicySpec::default()
        },
        PolicySpec {
            origins: vec!["*".into()],
            allow_headers: vec!["*".into()],
            ..PolicySpec::default()
        },
        PolicySpec::default(),
    ];
    specs
        .iter()
        .map(|s| Policy::compile(s).expect("fixture compiles"))
        .collect()
}

fn on_list(origin: &[u8]) -> bool {
    origin == b"https://app.example.com"
        || std::str::from_utf8(origin).is_ok_and(|o| {
            o.strip_prefix("https://")
                .and_then(|r| r.strip_suffix(".example.org"))
                .is_some_and(|l| {
                    !l.is_empty()
                        && l.split('.').all(|x| {
                            !x.is_empty()
                                && !x.starts_with('-')
                                && !x.ends_with('-')
                                && x.bytes().all(|b| {
                                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
                                })
                        })
                })
        })
}

#[test]
fn evaluate_is_total_and_never_grants_an_unlisted_origin() {
    let policies = policies();
    let mut rng = Rng(0x5EED_0002);
    let names = [
        "origin",
        "access-control-request-method",
        "access-control-request-headers",
        "access-control-request-private-network",
    ];
    let origins = [
        "https://app.example.com",
        "https://a.example.org",
        "https://evil.example.org.evil",
        "https://app.example.com.evil.com",
        "null",
        "https://APP.example.com",
    ];
    let (mut granted_preflights, mut granted_actual) = (0, 0);
    for case in 0..30_000 {
        let mut h = HeaderMap::new();
        for _ in 0..rng.below(6) {
            let name = names[rng.below(names.len())];
            let curated: &[&'static str] = match name {
                "origin" => &origins,
                "access-control-request-method" => {
                    &["GET", "PUT", "POST", "DELETE", "put", "CONNECT"]
                }
                "access-control-request-headers" => &[
                    "x-custom",
                    "content-type",
                    "X-Custom,,x-custom",
                    "authorization",
                    "",
                ],
                _ => &["true", "false"],
            };
            let value = match rng.below(4) {
                0 | 1 => HeaderValue::from_static(curated[rng.below(curated.len())]),
                2 if name == "origin" => HeaderValue::from_str(&random_pattern(&mut rng))
                    .unwrap_or(HeaderValue::from_static("")),
                _ => random_header_value(&mut rng),
            };
            h.append(name, value);
        }
        let method = if rng.below(2) == 0 {
            Method::OPTIONS
        } else {
            Method::GET
        };
        let parts = RequestParts {
            method: &method,
            headers: &h,
        };
        let origins_sent: Vec<&HeaderValue> = h.get_all("origin").iter().collect();
        let listed = matches!(origins_sent.as_slice(), [o] if on_list(o.as_bytes()));
        for (i, policy) in policies.iter().enumerate() {
            let d = policy.evaluate(&parts);
            match d.kind() {
                DecisionKind::PreflightAllowed => granted_preflights += 1,
                DecisionKind::Allowed => granted_actual += 1,
                _ => {}
            }
            let mut out = HeaderMap::new();
            d.apply(&mut out);
            if i == 0 || i == 1 || i == 3 {
                let granted = out.contains_key("access-control-allow-origin");
                let listed =
                    listed && i != 3 && (i == 0 || origins_sent[0] == "https://app.example.com");
                assert!(
                    listed || !granted,
                    "case {case}, policy {i}: granted {:?} to unlisted origin(s) {origins_sent:?}",
                    out.get("access-control-allow-origin")
                );
                assert!(
                    listed || d.kind() != DecisionKind::PreflightAllowed,
                    "case {case}, policy {i}: preflight allowed for {origins_sent:?}"
                );
            }
            assert!(out.get_all("access-control-allow-origin").iter().count() <= 1);
        }
    }
    // The property is not vacuous: the generator does reach grants.
    assert!(
        granted_preflights > 100 && granted_actual > 100,
        "{granted_preflights} preflights, {granted_actual} actual"
    );
}
