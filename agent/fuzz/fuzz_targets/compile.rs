//! `Policy::compile` on arbitrary specs: never panics; a refusal lists at
//! least one problem, each naming a field the spec has; an accepted spec
//! keeps the rules every accepted policy obeys (every origin parses on its
//! own, `*` alone and never with credentials, max-age in range), and
//! `compile_authored` never accepts what `compile` refuses.

#![no_main]

use arbitrary::Arbitrary;
use corsair_agent::engine::{Mode, Policy, PolicySpec, parse_origin_pattern};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Spec {
    origins: Vec<String>,
    allow_methods: Vec<String>,
    allow_headers: Vec<String>,
    expose_headers: Vec<String>,
    allow_credentials: bool,
    max_age_secs: i64,
    allow_private_network: bool,
    report_only: bool,
    strict: bool,
    allow_insecure_http: bool,
}

/// `origins[3]` → ("origins", Some(3)); `max_age_secs` → ("max_age_secs", None).
fn split_field(field: &str) -> (&str, Option<usize>) {
    match field.split_once('[') {
        Some((name, rest)) => (name, rest.strip_suffix(']').and_then(|i| i.parse().ok())),
        None => (field, None),
    }
}

fuzz_target!(|s: Spec| {
    let spec = PolicySpec {
        origins: s.origins,
        allow_methods: s.allow_methods,
        allow_headers: s.allow_headers,
        expose_headers: s.expose_headers,
        allow_credentials: s.allow_credentials,
        max_age_secs: s.max_age_secs,
        allow_private_network: s.allow_private_network,
        mode: if s.report_only {
            Mode::ReportOnly
        } else {
            Mode::Enforce
        },
        strict: s.strict,
        allow_insecure_http: s.allow_insecure_http,
    };
    let compiled = Policy::compile(&spec);
    let authored = Policy::compile_authored(&spec);
    assert!(
        compiled.is_ok() || authored.is_err(),
        "authored accepts what compile refuses"
    );
    match compiled {
        Err(e) => {
            assert!(!e.problems.is_empty(), "refused without a problem");
            for p in &e.problems {
                let len = match split_field(&p.field) {
                    ("origins", Some(i)) => Some((i, spec.origins.len())),
                    ("allow_methods", Some(i)) => Some((i, spec.allow_methods.len())),
                    ("allow_headers", Some(i)) => Some((i, spec.allow_headers.len())),
                    ("expose_headers", Some(i)) => Some((i, spec.expose_headers.len())),
                    ("max_age_secs", None) => None,
                    _ => panic!("problem names an unknown field: {p}"),
                };
                if let Some((i, n)) = len {
                    assert!(i < n, "problem names a missing entry: {p}");
                }
                assert!(!p.message.is_empty(), "problem without a message: {p}");
            }
        }
        Ok(_) => {
            for o in &spec.origins {
                assert!(
                    parse_origin_pattern(o).is_ok(),
                    "{o:?} accepted in a policy only"
                );
            }
            let any = spec.origins.iter().any(|o| o == "*");
            assert!(!any || spec.origins.len() == 1, "`*` beside other origins");
            assert!(!any || !spec.allow_credentials, "`*` with credentials");
            assert!(
                (0..=86_400).contains(&spec.max_age_secs),
                "max-age out of range"
            );
        }
    }
});
