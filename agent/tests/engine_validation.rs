//! Validation table: policies and origin patterns the engine must refuse
//! (each with the field named and a message that says why), and ones it must
//! accept, with their canonical form.

use corsair_agent::engine::{Policy, PolicySpec, parse_origin_pattern};

fn o(pattern: &str) -> PolicySpec {
    PolicySpec {
        origins: vec![pattern.to_owned()],
        ..PolicySpec::default()
    }
}

fn creds(pattern: &str) -> PolicySpec {
    PolicySpec {
        allow_credentials: true,
        ..o(pattern)
    }
}

fn with(f: impl FnOnce(&mut PolicySpec)) -> PolicySpec {
    let mut s = o("https://app.example.com");
    f(&mut s);
    s
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// (spec, field of the first problem, substring of its message)
#[rustfmt::skip]
fn invalid() -> Vec<(PolicySpec, &'static str, &'static str)> {
    vec![
        (o(""), "origins[0]", "is empty"),
        (o(" https://a.com"), "origins[0]", "whitespace"),
        (o("https://a.com\t"), "origins[0]", "whitespace"),
        (o("null"), "origins[0]", "opaque origin"),
        (o("NULL"), "origins[0]", "opaque origin"),
        (o("file:///etc/passwd"), "origins[0]", "opaque origin"),
        (o("file:"), "origins[0]", "opaque origin"),
        (o("data:text/html,hi"), "origins[0]", "opaque origin"),
        (o("ftp://a.com"), "origins[0]", "only http:// and https://"),
        (o("app.example.com"), "origins[0]", "no scheme"),
        (o("*.example.com"), "origins[0]", "no scheme"),
        (o("HTTPS://a.com"), "origins[0]", "must be lowercase"),
        (o("https://"), "origins[0]", "no host"),
        (o("https://a.com/"), "origins[0]", "trailing `/`"),
        (o("https://a.com/app"), "origins[0]", "a path"),
        (o("https://a.com?x=1"), "origins[0]", "a query"),
        (o("https://a.com#top"), "origins[0]", "a fragment"),
        (o("https://user@a.com"), "origins[0]", "userinfo"),
        (o("https://user:pw@a.com"), "origins[0]", "userinfo"),
        (o("https://App.example.com"), "origins[0]", "uppercase"),
        (o("https://bücher.de"), "origins[0]", "punycode"),
        (o("https://a..com"), "origins[0]", "empty label"),
        (o("https://a.com."), "origins[0]", "empty label"),
        (o("https://-a.com"), "origins[0]", "starts or ends with `-`"),
        (o("https://a_b.com"), "origins[0]", "`_`"),
        (o("http://127.1"), "origins[0]", "canonical IPv4"),
        (o("http://0x7f.0.0.1"), "origins[0]", "canonical IPv4"),
        (o("http://127.0.0.01"), "origins[0]", "canonical IPv4"),
        (o("http://256.0.0.1"), "origins[0]", "canonical IPv4"),
        (o("http://[fe80::1%25eth0]"), "origins[0]", "zone id"),
        (o("http://[::1"), "origins[0]", "unterminated"),
        (o("http://::1"), "origins[0]", "without brackets"),
        (o("http://[0:0:0:0:0:0:0:1]"), "origins[0]", "write [::1]"),
        (o("http://[::1]x"), "origins[0]", "after the IPv6"),
        (o("https://a.com:0"), "origins[0]", "port 0"),
        (o("https://a.com:65536"), "origins[0]", "out of range"),
        (o("https://a.com:99999999999"), "origins[0]", "out of range"),
        (o("https://a.com:080"), "origins[0]", "leading zeros"),
        (o("https://a.com:"), "origins[0]", "empty port"),
        (o("https://a.com:https"), "origins[0]", "not a number"),
        (o("https://a.com:443"), "origins[0]", "default port"),
        (o("http://a.com:80"), "origins[0]", "default port"),
        (o("https://h*.example.com"), "origins[0]", "one whole leading label"),
        (o("https://a.*.example.com"), "origins[0]", "one whole leading label"),
        (o("https://*.*.example.com"), "origins[0]", "one whole leading label"),
        (o("https://*"), "origins[0]", "one whole leading label"),
        (o("https://*."), "origins[0]", "must be followed by a domain"),
        (o("https://*.com"), "origins[0]", "public suffix"),
        (o("https://*.co.uk"), "origins[0]", "public suffix"),
        (o("https://*.github.io"), "origins[0]", "public suffix"),
        (o("https://*.local"), "origins[0]", "public suffix"),
        (o("https://*.127.0.0.1"), "origins[0]", "IP address"),
        (o("https://*.[::1]"), "origins[0]", "IP address"),
        (PolicySpec { origins: strings(&["*", "https://a.com"]), ..PolicySpec::default() }, "origins[0]", "only entry"),
        (creds("*"), "origins[0]", "credentials"),
        (creds("http://app.example.com"), "origins[0]", "plain-http"),
        (creds("http://*.example.com"), "origins[0]", "plain-http"),
        (with(|s| s.allow_methods = strings(&["CONNECT"])), "allow_methods[0]", "forbidden method"),
        (with(|s| s.allow_methods = strings(&["trace"])), "allow_methods[0]", "forbidden method"),
        (with(|s| s.allow_methods = strings(&["TRACK"])), "allow_methods[0]", "forbidden method"),
        (with(|s| s.allow_methods = strings(&["GE T"])), "allow_methods[0]", "not a valid method"),
        (with(|s| s.allow_methods = strings(&[""])), "allow_methods[0]", "not a valid method"),
        (with(|s| s.allow_methods = strings(&["put"])), "allow_methods[0]", "write PUT"),
        (with(|s| s.allow_headers = strings(&["Connection"])), "allow_headers[0]", "forbidden request header"),
        (with(|s| s.allow_headers = strings(&["Cookie"])), "allow_headers[0]", "forbidden request header"),
        (with(|s| s.allow_headers = strings(&["host"])), "allow_headers[0]", "forbidden request header"),
        (with(|s| s.allow_headers = strings(&["Sec-Fetch-Mode"])), "allow_headers[0]", "forbidden request header"),
        (with(|s| s.allow_headers = strings(&["Proxy-Authorization"])), "allow_headers[0]", "forbidden request header"),
        (with(|s| s.allow_headers = strings(&["Access-Control-Allow-Origin"])), "allow_headers[0]", "CORS protocol header"),
        (with(|s| s.allow_headers = strings(&["x bad"])), "allow_headers[0]", "not a valid header name"),
        (with(|s| s.expose_headers = strings(&["Set-Cookie"])), "expose_headers[0]", "forbidden response header"),
        (with(|s| s.expose_headers = strings(&["x:y"])), "expose_headers[0]", "not a valid header name"),
        (with(|s| { s.allow_credentials = true; s.expose_headers = strings(&["*"]) }), "expose_headers[0]", "credentialed"),
        (with(|s| s.max_age_secs = -1), "max_age_secs", "between 0 and 86400"),
        (with(|s| s.max_age_secs = 86_401), "max_age_secs", "between 0 and 86400"),
    ]
}

/// (spec) that must compile.
#[rustfmt::skip]
fn valid() -> Vec<PolicySpec> {
    vec![
        PolicySpec::default(), // every origin revoked: deny-all, not an error
        o("*"),
        creds("https://app.example.com"),
        creds("http://localhost:3000"),
        creds("http://127.0.0.1:8080"),
        creds("http://[::1]:3000"),
        creds("http://*.localhost"),
        PolicySpec { allow_insecure_http: true, ..creds("http://intranet.example.com") },
        with(|s| { s.allow_credentials = true; s.allow_headers = strings(&["*"]); s.allow_methods = strings(&["*"]) }),
        with(|s| s.allow_methods = strings(&["PURGE", "PUT", "PATCH"])),
        with(|s| s.allow_headers = strings(&["Authorization", "*"])),
        with(|s| s.allow_headers = strings(&["X-Custom", "content-type"])),
        with(|s| s.expose_headers = strings(&["*"])),
        with(|s| s.expose_headers = strings(&["X-Request-Id", "ETag"])),
        with(|s| s.max_age_secs = 0),
        with(|s| s.max_age_secs = 86_400),
        with(|s| { s.allow_private_network = true; s.strict = true }),
        PolicySpec { origins: strings(&["https://foo.com", "https://bar.com", "https://*.example.org"]), ..PolicySpec::default() },
    ]
}

/// (pattern, canonical form)
#[rustfmt::skip]
const VALID_PATTERNS: [(&str, &str); 20] = [
    ("https://app.example.com", "https://app.example.com"),
    ("http://localhost:3000", "http://localhost:3000"),
    ("http://localhost", "http://localhost"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("https://1.2.3.4", "https://1.2.3.4"),
    ("http://[::1]:3000", "http://[::1]:3000"),
    ("http://[2001:db8::1]:8443", "http://[2001:db8::1]:8443"),
    ("https://a.com:8443", "https://a.com:8443"),
    ("https://a.com:1", "https://a.com:1"),
    ("https://a.com:65535", "https://a.com:65535"),
    ("http://a.com:443", "http://a.com:443"),
    ("https://xn--bcher-kva.de", "https://xn--bcher-kva.de"),
    ("https://a-b.c-d.com", "https://a-b.c-d.com"),
    ("https://*.example.com", "https://*.example.com"),
    ("https://*.example.co.uk", "https://*.example.co.uk"),
    ("https://*.me.github.io", "https://*.me.github.io"),
    ("https://*.a.b.example.com:8443", "https://*.a.b.example.com:8443"),
    ("http://*.localhost", "http://*.localhost"),
    ("http://*.localhost:3000", "http://*.localhost:3000"),
    ("*", "*"),
];

#[test]
fn invalid_policies_name_the_field_and_the_reason() {
    let rows = invalid();
    assert!(rows.len() >= 40, "only {} invalid rows", rows.len());
    let mut failures = Vec::new();
    for (spec, field, needle) in &rows {
        match Policy::compile(spec) {
            Ok(_) => failures.push(format!("{spec:?}: compiled, expected {field}: {needle}")),
            Err(e) => {
                let hit = e
                    .problems
                    .iter()
                    .any(|p| p.field == *field && p.message.contains(needle));
                if !hit {
                    failures.push(format!("{spec:?}: expected {field}: {needle}; got {e}"));
                }
            }
        }
        // A pattern refused on its own gives the control plane the same message.
        if let [pattern] = spec.origins.as_slice()
            && *field == "origins[0]"
            && let Err(msg) = parse_origin_pattern(pattern)
            && !msg.contains(needle)
        {
            failures.push(format!(
                "parse_origin_pattern({pattern:?}) = {msg:?}, expected {needle}"
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
fn valid_policies_compile() {
    let rows = valid();
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|s| Policy::compile(s).err().map(|e| format!("{s:?}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(rows.len() + VALID_PATTERNS.len() >= 20);
}

#[test]
fn valid_patterns_have_a_canonical_form() {
    for (pattern, canonical) in VALID_PATTERNS {
        assert_eq!(
            parse_origin_pattern(pattern).as_deref(),
            Ok(canonical),
            "{pattern}"
        );
        assert!(Policy::compile(&o(pattern)).is_ok(), "{pattern}");
    }
}

#[test]
fn every_problem_is_listed_in_field_order() {
    let spec = PolicySpec {
        origins: strings(&["https://ok.example.com", "null", "https://*.com"]),
        allow_methods: strings(&["CONNECT", "PUT", "GE T"]),
        allow_headers: strings(&["Cookie"]),
        expose_headers: strings(&["Set-Cookie"]),
        max_age_secs: 100_000,
        ..PolicySpec::default()
    };
    let Err(e) = Policy::compile(&spec) else {
        panic!("must not compile")
    };
    let fields: Vec<&str> = e.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "origins[1]",
            "origins[2]",
            "allow_methods[0]",
            "allow_methods[2]",
            "allow_headers[0]",
            "expose_headers[0]",
            "max_age_secs"
        ]
    );
    assert_eq!(e.problems[1].value, "https://*.com");
}

#[test]
fn authored_configs_need_an_origin() {
    let Err(e) = Policy::compile_authored(&PolicySpec::default()) else {
        panic!("must not compile")
    };
    assert_eq!(e.problems[0].field, "origins");
    assert!(e.problems[0].message.contains("no origins"));
    // The same spec from the control plane's effective policy is deny-all.
    assert!(Policy::compile(&PolicySpec::default()).is_ok());
    assert!(Policy::compile_authored(&o("https://app.example.com")).is_ok());
}
