//! `parse_origin_pattern` on arbitrary strings: never panics; an accepted
//! pattern's canonical form is a fixed point, is plain visible ASCII (it
//! becomes a header value), and an exact one is granted to a browser that
//! sends it as its `Origin`.

#![no_main]

use corsair_agent::engine::{DecisionKind, Policy, PolicySpec, RequestParts, parse_origin_pattern};
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let Ok(canonical) = parse_origin_pattern(input) else {
        return;
    };
    assert_eq!(
        parse_origin_pattern(&canonical).as_deref(),
        Ok(canonical.as_str()),
        "{input:?} -> {canonical:?} does not re-parse to itself"
    );
    assert!(
        canonical.bytes().all(|b| b.is_ascii_graphic()),
        "{input:?} -> {canonical:?} is not visible ASCII"
    );
    if canonical == "*" || canonical.contains('*') {
        return;
    }
    let policy = Policy::compile(&PolicySpec {
        origins: vec![canonical.clone()],
        allow_insecure_http: true,
        ..PolicySpec::default()
    })
    .expect("an accepted pattern compiles on its own");
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::ORIGIN,
        HeaderValue::from_str(&canonical).expect("canonical origin is a header value"),
    );
    let d = policy.evaluate(&RequestParts {
        method: &Method::GET,
        headers: &headers,
    });
    assert_eq!(
        d.kind(),
        DecisionKind::Allowed,
        "{canonical:?} not granted to itself"
    );
});
