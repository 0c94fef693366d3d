//! The engine's conformance table, shared by the test binaries that run it:
//! `engine_conformance.rs` (through `CorsairLayer`, in process) and
//! `nginx_authz.rs` (nginx + `corsair-agent authz` against the sidecar,
//! over real sockets). One row = policy fixture × request → status, the
//! exact CORS response headers, `Vary`, whether the upstream was called,
//! and the reason.

use corsair_agent::engine::{Mode, PolicySpec};

// Vary as the client sees it.
/// Forwarded, origin-dependent policy.
pub const VF: &str = "Accept-Encoding, Origin";
/// Forwarded, any-origin policy: the answer never depends on Origin.
pub const VFA: &str = "Accept-Encoding";
/// Local preflight answer.
pub const VP: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
/// Local preflight answer on a policy that answers Private Network Access.
pub const VPN: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network";
/// Local preflight answer on an any-origin policy.
pub const VPA: &str = "Access-Control-Request-Method, Access-Control-Request-Headers";
/// Local non-preflight answer (strict block, no policy).
pub const VL: &str = "Origin";

/// The allowed origin of most fixtures.
pub const APP: &str = "https://app.example.com";
/// An origin no fixture allows.
pub const EVIL: &str = "https://evil.example.net";

/// One row: the request, and the answer a client must see.
pub struct Row {
    pub name: &'static str,
    pub policy: &'static str,
    pub method: &'static str,
    pub req: Vec<(&'static str, &'static str)>,
    pub status: u16,
    pub forwarded: bool,
    pub cors: Vec<(&'static str, &'static str)>,
    pub vary: &'static str,
    pub reason: Option<&'static str>,
}

/// A row; forwarded (upstream called once) exactly when `status` is 200.
#[allow(clippy::too_many_arguments)]
pub fn r(
    name: &'static str,
    policy: &'static str,
    method: &'static str,
    req: &[(&'static str, &'static str)],
    status: u16,
    cors: &[(&'static str, &'static str)],
    vary: &'static str,
    reason: Option<&'static str>,
) -> Row {
    Row {
        name,
        policy,
        method,
        req: req.to_vec(),
        status,
        forwarded: status == 200,
        cors: cors.to_vec(),
        vary,
        reason,
    }
}

/// The policy fixture `name` (`None` for `"none"`: no policy at all).
pub fn spec(name: &str) -> Option<PolicySpec> {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let basic = PolicySpec {
        origins: s(&[APP, "http://localhost:3000"]),
        allow_methods: s(&["PUT", "DELETE", "PATCH"]),
        allow_headers: s(&["content-type", "X-Custom"]),
        expose_headers: s(&["x-request-id"]),
        max_age_secs: 600,
        ..PolicySpec::default()
    };
    Some(match name {
        "basic" => basic,
        "report" => PolicySpec {
            mode: Mode::ReportOnly,
            ..basic
        },
        "strict" => PolicySpec {
            strict: true,
            ..basic
        },
        "strict_report" => PolicySpec {
            strict: true,
            mode: Mode::ReportOnly,
            ..basic
        },
        "wild" => PolicySpec {
            origins: s(&[
                "https://*.example.org",
                "https://foo.com",
                "https://bar.com",
            ]),
            allow_methods: s(&["PUT"]),
            allow_headers: s(&["x-custom"]),
            ..PolicySpec::default()
        },
        "creds" => PolicySpec {
            origins: s(&[APP, "https://*.example.org"]),
            allow_credentials: true,
            allow_methods: s(&["*"]),
            allow_headers: s(&["*"]),
            expose_headers: s(&["x-request-id"]),
            ..PolicySpec::default()
        },
        "report_creds" => PolicySpec {
            mode: Mode::ReportOnly,
            ..spec("creds")?
        },
        "any" => PolicySpec {
            origins: s(&["*"]),
            allow_methods: s(&["PUT"]),
            allow_headers: s(&["*"]),
            expose_headers: s(&["*"]),
            ..PolicySpec::default()
        },
        "any_auth" => PolicySpec {
            origins: s(&["*"]),
            allow_headers: s(&["*", "Authorization"]),
            ..PolicySpec::default()
        },
        "pna" => PolicySpec {
            origins: s(&[APP]),
            allow_private_network: true,
            ..PolicySpec::default()
        },
        "ports" => PolicySpec {
            origins: s(&[
                "https://app.example.com:8443",
                "http://127.0.0.1:8080",
                "http://[::1]:3000",
            ]),
            ..PolicySpec::default()
        },
        "empty" => PolicySpec::default(),
        "none" => return None,
        other => panic!("unknown fixture {other}"),
    })
}

/// Expands the table's header abbreviations (`o` → `origin`, …).
pub fn expand(name: &str) -> &str {
    match name {
        "o" => "origin",
        "m" => "access-control-request-method",
        "h" => "access-control-request-headers",
        "pn" => "access-control-request-private-network",
        "ao" => "access-control-allow-origin",
        "ac" => "access-control-allow-credentials",
        "am" => "access-control-allow-methods",
        "ah" => "access-control-allow-headers",
        "ma" => "access-control-max-age",
        "eh" => "access-control-expose-headers",
        "apn" => "access-control-allow-private-network",
        other => other,
    }
}

fn leak(s: String) -> &'static str {
    s.leak()
}

/// Every row.
#[rustfmt::skip]
pub fn rows() -> Vec<Row> {
    let commas = leak(",".repeat(2000));
    let huge = leak("x-custom,".repeat(600));
    let many = leak("x-custom,".repeat(100));
    let sixty = leak(vec!["x-custom"; 60].join(","));
    vec![
        // --- basic: preflights
        r("pf put + header", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "x-custom")], 204, &[("ao", APP), ("am", "PUT"), ("ah", "x-custom"), ("ma", "600")], VP, None),
        r("pf safelisted GET names no method", "basic", "OPTIONS", &[("o", APP), ("m", "GET")], 204, &[("ao", APP), ("ma", "600")], VP, None),
        r("pf POST + content-type", "basic", "OPTIONS", &[("o", APP), ("m", "POST"), ("h", "content-type")], 204, &[("ao", APP), ("ah", "content-type"), ("ma", "600")], VP, None),
        r("pf HEAD", "basic", "OPTIONS", &[("o", APP), ("m", "HEAD")], 204, &[("ao", APP), ("ma", "600")], VP, None),
        r("pf DELETE", "basic", "OPTIONS", &[("o", APP), ("m", "DELETE")], 204, &[("ao", APP), ("am", "DELETE"), ("ma", "600")], VP, None),
        r("pf PATCH", "basic", "OPTIONS", &[("o", APP), ("m", "PATCH")], 204, &[("ao", APP), ("am", "PATCH"), ("ma", "600")], VP, None),
        r("pf lowercase put is not PUT", "basic", "OPTIONS", &[("o", APP), ("m", "put")], 403, &[], VP, Some("method_not_allowed")),
        r("pf lowercase patch", "basic", "OPTIONS", &[("o", APP), ("m", "patch")], 403, &[], VP, Some("method_not_allowed")),
        r("pf CONNECT", "basic", "OPTIONS", &[("o", APP), ("m", "CONNECT")], 403, &[], VP, Some("method_not_allowed")),
        r("pf TRACE", "basic", "OPTIONS", &[("o", APP), ("m", "TRACE")], 403, &[], VP, Some("method_not_allowed")),
        r("pf OPTIONS not listed", "basic", "OPTIONS", &[("o", APP), ("m", "OPTIONS")], 403, &[], VP, Some("method_not_allowed")),
        r("pf unknown method", "basic", "OPTIONS", &[("o", APP), ("m", "FOO")], 403, &[], VP, Some("method_not_allowed")),
        r("pf empty method", "basic", "OPTIONS", &[("o", APP), ("m", "")], 403, &[], VP, Some("method_not_allowed")),
        r("pf method list is not a token", "basic", "OPTIONS", &[("o", APP), ("m", "PUT, DELETE")], 403, &[], VP, Some("method_not_allowed")),
        r("pf two method lines", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("m", "PUT")], 403, &[], VP, Some("method_not_allowed")),
        r("pf header any case", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "X-Custom")], 204, &[("ao", APP), ("am", "PUT"), ("ah", "X-Custom"), ("ma", "600")], VP, None),
        r("pf two headers", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "content-type,x-custom")], 204, &[("ao", APP), ("am", "PUT"), ("ah", "content-type,x-custom"), ("ma", "600")], VP, None),
        r("pf headers with spaces", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "x-custom, content-type")], 204, &[("ao", APP), ("am", "PUT"), ("ah", "x-custom, content-type"), ("ma", "600")], VP, None),
        r("pf headers with tabs", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "x-custom\t,\tcontent-type")], 204, &[("ao", APP), ("am", "PUT"), ("ah", "x-custom\t,\tcontent-type"), ("ma", "600")], VP, None),
        r("pf duplicate commas", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "x-custom,,content-type")], 204, &[("ao", APP), ("am", "PUT"), ("ah", "x-custom,,content-type"), ("ma", "600")], VP, None),
        r("pf leading and trailing commas", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", ",x-custom,")], 204, &[("ao", APP), ("am", "PUT"), ("ah", ",x-custom,"), ("ma", "600")], VP, None),
        r("pf headers over two lines", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "x-custom"), ("h", "content-type")], 204, &[("ao", APP), ("am", "PUT"), ("ah", "x-custom,content-type"), ("ma", "600")], VP, None),
        r("pf empty second header line", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "x-custom"), ("h", "")], 204, &[("ao", APP), ("am", "PUT"), ("ah", "x-custom"), ("ma", "600")], VP, None),
        r("pf mixed-case list", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "Content-Type, X-CUSTOM")], 204, &[("ao", APP), ("am", "PUT"), ("ah", "Content-Type, X-CUSTOM"), ("ma", "600")], VP, None),
        r("pf header not allowed", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "x-other")], 403, &[], VP, Some("header_not_allowed")),
        r("pf one of two headers not allowed", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "x-custom,x-other")], 403, &[], VP, Some("header_not_allowed")),
        r("pf authorization not listed", "basic", "OPTIONS", &[("o", APP), ("m", "GET"), ("h", "authorization")], 403, &[], VP, Some("header_not_allowed")),
        r("pf header with inner space", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "x custom")], 403, &[], VP, Some("header_not_allowed")),
        r("pf sec- header", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "sec-fetch-mode")], 403, &[], VP, Some("header_not_allowed")),
        r("pf empty header list", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "")], 204, &[("ao", APP), ("am", "PUT"), ("ma", "600")], VP, None),
        r("pf only commas", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", ",")], 204, &[("ao", APP), ("am", "PUT"), ("ma", "600")], VP, None),
        r("pf hostile: 2000 commas", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", commas)], 403, &[], VP, Some("header_not_allowed")),
        r("pf hostile: 5 KB value", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", huge)], 403, &[], VP, Some("header_not_allowed")),
        r("pf hostile: 100 names", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", many)], 403, &[], VP, Some("header_not_allowed")),
        r("pf 60 names within bounds", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", sixty)], 204, &[("ao", APP), ("am", "PUT"), ("ah", sixty), ("ma", "600")], VP, None),
        r("pf hostile: 9 header lines", "basic", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "x-custom"), ("h", "x-custom"), ("h", "x-custom"), ("h", "x-custom"), ("h", "x-custom"), ("h", "x-custom"), ("h", "x-custom"), ("h", "x-custom"), ("h", "x-custom")], 403, &[], VP, Some("header_not_allowed")),
        r("pf disallowed origin", "basic", "OPTIONS", &[("o", EVIL), ("m", "PUT")], 403, &[], VP, Some("origin_not_allowed")),
        r("pf uppercase origin", "basic", "OPTIONS", &[("o", "https://APP.example.com"), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("pf explicit default port", "basic", "OPTIONS", &[("o", "https://app.example.com:443"), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("pf null origin", "basic", "OPTIONS", &[("o", "null"), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("pf allowed origin as prefix of evil host", "basic", "OPTIONS", &[("o", "https://app.example.com.evil.com"), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("pf other scheme", "basic", "OPTIONS", &[("o", "http://app.example.com"), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("pf localhost with port", "basic", "OPTIONS", &[("o", "http://localhost:3000"), ("m", "GET")], 204, &[("ao", "http://localhost:3000"), ("ma", "600")], VP, None),
        r("pf localhost other port", "basic", "OPTIONS", &[("o", "http://localhost:3001"), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("pf localhost no port", "basic", "OPTIONS", &[("o", "http://localhost"), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("pf two Origin headers", "basic", "OPTIONS", &[("o", APP), ("o", APP), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("pf origin checked before method", "basic", "OPTIONS", &[("o", EVIL), ("m", "FOO")], 403, &[], VP, Some("origin_not_allowed")),
        r("pf method checked before headers", "basic", "OPTIONS", &[("o", APP), ("m", "FOO"), ("h", "x-other")], 403, &[], VP, Some("method_not_allowed")),
        r("OPTIONS without ACRM is an actual request", "basic", "OPTIONS", &[("o", APP)], 200, &[("ao", APP), ("eh", "x-request-id")], VF, None),
        r("OPTIONS without Origin is not CORS", "basic", "OPTIONS", &[("m", "PUT")], 200, &[], VF, None),
        r("pf private network not allowed", "basic", "OPTIONS", &[("o", APP), ("m", "GET"), ("pn", "true")], 403, &[], VP, Some("private_network_not_allowed")),
        r("pf private network false is no request", "basic", "OPTIONS", &[("o", APP), ("m", "GET"), ("pn", "false")], 204, &[("ao", APP), ("ma", "600")], VP, None),
        r("pf POST safelisted with header", "basic", "OPTIONS", &[("o", APP), ("m", "POST"), ("h", "content-type")], 204, &[("ao", APP), ("ah", "content-type"), ("ma", "600")], VP, None),
        // --- basic: actual requests
        r("GET allowed", "basic", "GET", &[("o", APP)], 200, &[("ao", APP), ("eh", "x-request-id")], VF, None),
        r("POST allowed", "basic", "POST", &[("o", APP)], 200, &[("ao", APP), ("eh", "x-request-id")], VF, None),
        r("PUT from localhost", "basic", "PUT", &[("o", "http://localhost:3000")], 200, &[("ao", "http://localhost:3000"), ("eh", "x-request-id")], VF, None),
        r("DELETE allowed (methods only gate preflights)", "basic", "DELETE", &[("o", APP)], 200, &[("ao", APP), ("eh", "x-request-id")], VF, None),
        r("GET disallowed origin", "basic", "GET", &[("o", EVIL)], 200, &[], VF, Some("origin_not_allowed")),
        r("GET without Origin", "basic", "GET", &[], 200, &[], VF, None),
        r("GET null", "basic", "GET", &[("o", "null")], 200, &[], VF, Some("origin_not_allowed")),
        r("GET uppercase origin", "basic", "GET", &[("o", "HTTPS://APP.EXAMPLE.COM")], 200, &[], VF, Some("origin_not_allowed")),
        r("GET explicit default port", "basic", "GET", &[("o", "https://app.example.com:443")], 200, &[], VF, Some("origin_not_allowed")),
        r("GET allowed origin + evil suffix", "basic", "GET", &[("o", "https://app.example.com.evil.com")], 200, &[], VF, Some("origin_not_allowed")),
        r("GET truncated origin", "basic", "GET", &[("o", "https://app.example.co")], 200, &[], VF, Some("origin_not_allowed")),
        r("GET two origins", "basic", "GET", &[("o", APP), ("o", APP)], 200, &[], VF, Some("origin_not_allowed")),
        r("GET origin with trailing slash", "basic", "GET", &[("o", "https://app.example.com/")], 200, &[], VF, Some("origin_not_allowed")),
        r("GET origin with trailing space", "basic", "GET", &[("o", "https://app.example.com ")], 200, &[], VF, Some("origin_not_allowed")),
        r("GET non-ASCII origin", "basic", "GET", &[("o", "https://äpp.example.com")], 200, &[], VF, Some("origin_not_allowed")),
        r("GET origin `*`", "basic", "GET", &[("o", "*")], 200, &[], VF, Some("origin_not_allowed")),
        r("GET origin with userinfo", "basic", "GET", &[("o", "https://x@app.example.com")], 200, &[], VF, Some("origin_not_allowed")),
        r("HEAD allowed", "basic", "HEAD", &[("o", APP)], 200, &[("ao", APP), ("eh", "x-request-id")], VF, None),
        // --- wildcard and the classic traps
        r("wild: subdomain", "wild", "GET", &[("o", "https://a.example.org")], 200, &[("ao", "https://a.example.org")], VF, None),
        r("wild: nested subdomain", "wild", "GET", &[("o", "https://a.b.example.org")], 200, &[("ao", "https://a.b.example.org")], VF, None),
        r("wild: digits and hyphen", "wild", "GET", &[("o", "https://x-1.example.org")], 200, &[("ao", "https://x-1.example.org")], VF, None),
        r("wild: apex not covered", "wild", "GET", &[("o", "https://example.org")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: evilexample.org", "wild", "GET", &[("o", "https://evilexample.org")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: example.org.evil.com", "wild", "GET", &[("o", "https://example.org.evil.com")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: a.example.org.evil.com", "wild", "GET", &[("o", "https://a.example.org.evil.com")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: other port", "wild", "GET", &[("o", "https://a.example.org:8443")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: http scheme", "wild", "GET", &[("o", "http://a.example.org")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: empty label", "wild", "GET", &[("o", "https://.example.org")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: double dot", "wild", "GET", &[("o", "https://a..example.org")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: leading hyphen", "wild", "GET", &[("o", "https://-a.example.org")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: uppercase label", "wild", "GET", &[("o", "https://A.example.org")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: path smuggled into host", "wild", "GET", &[("o", "https://x/.example.org")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: the pattern itself as Origin", "wild", "GET", &[("o", "https://*.example.org")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: userinfo smuggled", "wild", "GET", &[("o", "https://a:b@c.example.org")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: barfoo.com vs foo.com + bar.com", "wild", "GET", &[("o", "https://barfoo.com")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: foobar.com", "wild", "GET", &[("o", "https://foobar.com")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: foo.com exact", "wild", "GET", &[("o", "https://foo.com")], 200, &[("ao", "https://foo.com")], VF, None),
        r("wild: bar.com exact", "wild", "GET", &[("o", "https://bar.com")], 200, &[("ao", "https://bar.com")], VF, None),
        r("wild: sub.foo.com not covered", "wild", "GET", &[("o", "https://sub.foo.com")], 200, &[], VF, Some("origin_not_allowed")),
        r("wild: pf subdomain PUT", "wild", "OPTIONS", &[("o", "https://a.example.org"), ("m", "PUT"), ("h", "x-custom")], 204, &[("ao", "https://a.example.org"), ("am", "PUT"), ("ah", "x-custom")], VP, None),
        r("wild: pf DELETE not allowed", "wild", "OPTIONS", &[("o", "https://a.example.org"), ("m", "DELETE")], 403, &[], VP, Some("method_not_allowed")),
        r("wild: pf evilexample.org", "wild", "OPTIONS", &[("o", "https://evilexample.org"), ("m", "PUT")], 403, &[], VP, Some("origin_not_allowed")),
        r("wild: pf foo.com GET", "wild", "OPTIONS", &[("o", "https://foo.com"), ("m", "GET")], 204, &[("ao", "https://foo.com")], VP, None),
        r("wild: pf barfoo.com", "wild", "OPTIONS", &[("o", "https://barfoo.com"), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("wild: pf apex", "wild", "OPTIONS", &[("o", "https://example.org"), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("wild: pf private network not allowed", "wild", "OPTIONS", &[("o", "https://a.example.org"), ("m", "GET"), ("pn", "true")], 403, &[], VP, Some("private_network_not_allowed")),
        // --- credentials: never a literal `*`
        r("creds: GET exact", "creds", "GET", &[("o", APP)], 200, &[("ao", APP), ("ac", "true"), ("eh", "x-request-id")], VF, None),
        r("creds: GET wildcard echoes", "creds", "GET", &[("o", "https://a.example.org")], 200, &[("ao", "https://a.example.org"), ("ac", "true"), ("eh", "x-request-id")], VF, None),
        r("creds: GET disallowed strips upstream grant", "creds", "GET", &[("o", EVIL)], 200, &[], VF, Some("origin_not_allowed")),
        r("creds: GET no origin", "creds", "GET", &[], 200, &[], VF, None),
        r("creds: pf methods * echoes", "creds", "OPTIONS", &[("o", APP), ("m", "PURGE")], 204, &[("ao", APP), ("ac", "true"), ("am", "PURGE")], VP, None),
        r("creds: pf headers * echoes", "creds", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "x-anything")], 204, &[("ao", APP), ("ac", "true"), ("am", "PUT"), ("ah", "x-anything")], VP, None),
        r("creds: pf many headers echoed", "creds", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "x-a,x-b,x-c")], 204, &[("ao", APP), ("ac", "true"), ("am", "PUT"), ("ah", "x-a,x-b,x-c")], VP, None),
        r("creds: pf CONNECT never allowed", "creds", "OPTIONS", &[("o", APP), ("m", "CONNECT")], 403, &[], VP, Some("method_not_allowed")),
        r("creds: pf TRACK never allowed", "creds", "OPTIONS", &[("o", APP), ("m", "TRACK")], 403, &[], VP, Some("method_not_allowed")),
        r("creds: pf * never covers authorization", "creds", "OPTIONS", &[("o", APP), ("m", "GET"), ("h", "authorization")], 403, &[], VP, Some("header_not_allowed")),
        r("creds: pf * never covers Authorization in a list", "creds", "OPTIONS", &[("o", APP), ("m", "GET"), ("h", "x-a,Authorization")], 403, &[], VP, Some("header_not_allowed")),
        r("creds: pf disallowed origin", "creds", "OPTIONS", &[("o", EVIL), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("creds: pf wildcard origin", "creds", "OPTIONS", &[("o", "https://a.example.org"), ("m", "POST"), ("h", "content-type")], 204, &[("ao", "https://a.example.org"), ("ac", "true"), ("ah", "content-type")], VP, None),
        r("creds: pf private network not allowed", "creds", "OPTIONS", &[("o", APP), ("m", "GET"), ("pn", "true")], 403, &[], VP, Some("private_network_not_allowed")),
        r("creds: OPTIONS without ACRM forwarded", "creds", "OPTIONS", &[("o", APP)], 200, &[("ao", APP), ("ac", "true"), ("eh", "x-request-id")], VF, None),
        // --- any origin (anonymous)
        r("any: GET", "any", "GET", &[("o", "https://random.net")], 200, &[("ao", "*"), ("eh", "*")], VFA, None),
        r("any: GET null", "any", "GET", &[("o", "null")], 200, &[("ao", "*"), ("eh", "*")], VFA, None),
        r("any: GET uppercase", "any", "GET", &[("o", "HTTPS://X.COM")], 200, &[("ao", "*"), ("eh", "*")], VFA, None),
        r("any: GET no origin", "any", "GET", &[], 200, &[], VFA, None),
        r("any: pf PUT", "any", "OPTIONS", &[("o", "https://random.net"), ("m", "PUT"), ("h", "x-a")], 204, &[("ao", "*"), ("am", "PUT"), ("ah", "x-a")], VPA, None),
        r("any: pf GET", "any", "OPTIONS", &[("o", "https://random.net"), ("m", "GET")], 204, &[("ao", "*")], VPA, None),
        r("any: pf DELETE not allowed", "any", "OPTIONS", &[("o", "https://random.net"), ("m", "DELETE")], 403, &[], VPA, Some("method_not_allowed")),
        r("any: pf * does not cover authorization", "any", "OPTIONS", &[("o", "https://random.net"), ("m", "GET"), ("h", "authorization")], 403, &[], VPA, Some("header_not_allowed")),
        r("any: pf authorization in list", "any", "OPTIONS", &[("o", "https://random.net"), ("m", "GET"), ("h", "authorization, x-a")], 403, &[], VPA, Some("header_not_allowed")),
        r("any: pf private network not allowed", "any", "OPTIONS", &[("o", "https://random.net"), ("m", "GET"), ("pn", "true")], 403, &[], VPA, Some("private_network_not_allowed")),
        r("any: OPTIONS without ACRM", "any", "OPTIONS", &[("o", "https://random.net")], 200, &[("ao", "*"), ("eh", "*")], VFA, None),
        r("any: pf hostile headers", "any", "OPTIONS", &[("o", "https://random.net"), ("m", "GET"), ("h", commas)], 403, &[], VPA, Some("header_not_allowed")),
        r("any_auth: pf authorization listed", "any_auth", "OPTIONS", &[("o", "https://random.net"), ("m", "GET"), ("h", "authorization")], 204, &[("ao", "*"), ("ah", "authorization")], VPA, None),
        r("any_auth: pf authorization + other", "any_auth", "OPTIONS", &[("o", "https://random.net"), ("m", "GET"), ("h", "authorization,x-a")], 204, &[("ao", "*"), ("ah", "authorization,x-a")], VPA, None),
        r("any_auth: pf PUT not allowed", "any_auth", "OPTIONS", &[("o", "https://random.net"), ("m", "PUT")], 403, &[], VPA, Some("method_not_allowed")),
        r("any_auth: pf POST content-type", "any_auth", "OPTIONS", &[("o", "https://random.net"), ("m", "POST"), ("h", "content-type")], 204, &[("ao", "*"), ("ah", "content-type")], VPA, None),
        r("any_auth: GET", "any_auth", "GET", &[("o", "https://random.net")], 200, &[("ao", "*")], VFA, None),
        // --- report-only: answer as if allowed, reason kept
        r("report: GET disallowed answered as allowed", "report", "GET", &[("o", EVIL)], 200, &[("ao", EVIL), ("eh", "x-request-id")], VF, Some("origin_not_allowed")),
        r("report: GET allowed", "report", "GET", &[("o", APP)], 200, &[("ao", APP), ("eh", "x-request-id")], VF, None),
        r("report: GET no origin", "report", "GET", &[], 200, &[], VF, None),
        r("report: GET null", "report", "GET", &[("o", "null")], 200, &[("ao", "null"), ("eh", "x-request-id")], VF, Some("origin_not_allowed")),
        r("report: pf disallowed origin", "report", "OPTIONS", &[("o", EVIL), ("m", "PUT")], 204, &[("ao", EVIL), ("am", "PUT"), ("ma", "600")], VP, Some("origin_not_allowed")),
        r("report: pf disallowed method", "report", "OPTIONS", &[("o", APP), ("m", "FOO")], 204, &[("ao", APP), ("am", "FOO"), ("ma", "600")], VP, Some("method_not_allowed")),
        r("report: pf lowercase put", "report", "OPTIONS", &[("o", APP), ("m", "put")], 204, &[("ao", APP), ("am", "put"), ("ma", "600")], VP, Some("method_not_allowed")),
        r("report: pf disallowed header", "report", "OPTIONS", &[("o", APP), ("m", "GET"), ("h", "x-other")], 204, &[("ao", APP), ("ah", "x-other"), ("ma", "600")], VP, Some("header_not_allowed")),
        r("report: pf hostile header not echoed", "report", "OPTIONS", &[("o", APP), ("m", "GET"), ("h", commas)], 204, &[("ao", APP), ("ma", "600")], VP, Some("header_not_allowed")),
        r("report: pf private network", "report", "OPTIONS", &[("o", APP), ("m", "GET"), ("pn", "true")], 204, &[("ao", APP), ("ma", "600"), ("apn", "true")], VP, Some("private_network_not_allowed")),
        r("report: pf allowed", "report", "OPTIONS", &[("o", APP), ("m", "PUT"), ("h", "x-custom")], 204, &[("ao", APP), ("am", "PUT"), ("ah", "x-custom"), ("ma", "600")], VP, None),
        // A literal `*` sent as Origin is no origin: never echoed, even in report-only
        // (with credentials it would be the one `*` the engine must never send).
        r("report: GET origin * not echoed", "report", "GET", &[("o", "*")], 200, &[], VF, Some("origin_not_allowed")),
        r("report: pf origin * refused", "report", "OPTIONS", &[("o", "*"), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("report_creds: GET disallowed answered as allowed", "report_creds", "GET", &[("o", EVIL)], 200, &[("ao", EVIL), ("ac", "true"), ("eh", "x-request-id")], VF, Some("origin_not_allowed")),
        r("report_creds: GET origin * not echoed", "report_creds", "GET", &[("o", "*")], 200, &[], VF, Some("origin_not_allowed")),
        r("report_creds: pf origin * refused", "report_creds", "OPTIONS", &[("o", "*"), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        // --- strict: disallowed actual requests stop at the gateway
        r("strict: GET disallowed", "strict", "GET", &[("o", EVIL)], 403, &[], VL, Some("origin_not_allowed")),
        r("strict: POST null", "strict", "POST", &[("o", "null")], 403, &[], VL, Some("origin_not_allowed")),
        r("strict: GET two origins", "strict", "GET", &[("o", APP), ("o", APP)], 403, &[], VL, Some("origin_not_allowed")),
        r("strict: OPTIONS without ACRM, disallowed", "strict", "OPTIONS", &[("o", EVIL)], 403, &[], VL, Some("origin_not_allowed")),
        r("strict: GET allowed", "strict", "GET", &[("o", APP)], 200, &[("ao", APP), ("eh", "x-request-id")], VF, None),
        r("strict: GET without Origin passes", "strict", "GET", &[], 200, &[], VF, None),
        r("strict: pf disallowed", "strict", "OPTIONS", &[("o", EVIL), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("strict: pf allowed", "strict", "OPTIONS", &[("o", APP), ("m", "GET")], 204, &[("ao", APP), ("ma", "600")], VP, None),
        r("strict+report: GET disallowed forwarded", "strict_report", "GET", &[("o", EVIL)], 200, &[("ao", EVIL), ("eh", "x-request-id")], VF, Some("origin_not_allowed")),
        // --- private network access
        r("pna: pf asks and is allowed", "pna", "OPTIONS", &[("o", APP), ("m", "GET"), ("pn", "true")], 204, &[("ao", APP), ("apn", "true")], VPN, None),
        r("pna: pf does not ask", "pna", "OPTIONS", &[("o", APP), ("m", "GET")], 204, &[("ao", APP)], VPN, None),
        r("pna: pf asks false", "pna", "OPTIONS", &[("o", APP), ("m", "GET"), ("pn", "false")], 204, &[("ao", APP)], VPN, None),
        r("pna: pf disallowed origin", "pna", "OPTIONS", &[("o", EVIL), ("m", "GET"), ("pn", "true")], 403, &[], VPN, Some("origin_not_allowed")),
        r("pna: pf method not allowed", "pna", "OPTIONS", &[("o", APP), ("m", "PUT"), ("pn", "true")], 403, &[], VPN, Some("method_not_allowed")),
        r("pna: actual request never gets the PNA header", "pna", "GET", &[("o", APP), ("pn", "true")], 200, &[("ao", APP)], VF, None),
        // --- empty (every origin revoked) and no policy at all
        r("empty: GET", "empty", "GET", &[("o", APP)], 200, &[], VF, Some("origin_not_allowed")),
        r("empty: pf", "empty", "OPTIONS", &[("o", APP), ("m", "GET")], 403, &[], VP, Some("origin_not_allowed")),
        r("empty: GET no origin", "empty", "GET", &[], 200, &[], VF, None),
        r("none: GET", "none", "GET", &[("o", APP)], 200, &[], VF, Some("no_policy")),
        r("none: pf", "none", "OPTIONS", &[("o", APP), ("m", "GET")], 403, &[], VL, Some("no_policy")),
        r("none: GET no origin", "none", "GET", &[], 200, &[], VF, None),
        r("none: OPTIONS without ACRM", "none", "OPTIONS", &[("o", APP)], 200, &[], VF, Some("no_policy")),
        // --- ports and IP literals
        r("ports: non-default port", "ports", "GET", &[("o", "https://app.example.com:8443")], 200, &[("ao", "https://app.example.com:8443")], VF, None),
        r("ports: default port not covered", "ports", "GET", &[("o", APP)], 200, &[], VF, Some("origin_not_allowed")),
        r("ports: leading zero port", "ports", "GET", &[("o", "https://app.example.com:08443")], 200, &[], VF, Some("origin_not_allowed")),
        r("ports: IPv4 loopback", "ports", "GET", &[("o", "http://127.0.0.1:8080")], 200, &[("ao", "http://127.0.0.1:8080")], VF, None),
        r("ports: IPv4 other port", "ports", "GET", &[("o", "http://127.0.0.1:8081")], 200, &[], VF, Some("origin_not_allowed")),
        r("ports: localhost is not 127.0.0.1", "ports", "GET", &[("o", "http://localhost:8080")], 200, &[], VF, Some("origin_not_allowed")),
        r("ports: non-canonical IPv4", "ports", "GET", &[("o", "http://127.000.000.001:8080")], 200, &[], VF, Some("origin_not_allowed")),
        r("ports: IPv6 loopback", "ports", "GET", &[("o", "http://[::1]:3000")], 200, &[("ao", "http://[::1]:3000")], VF, None),
        r("ports: IPv6 long form", "ports", "GET", &[("o", "http://[0:0:0:0:0:0:0:1]:3000")], 200, &[], VF, Some("origin_not_allowed")),
        r("ports: pf IPv6 method not allowed", "ports", "OPTIONS", &[("o", "http://[::1]:3000"), ("m", "PUT")], 403, &[], VP, Some("method_not_allowed")),
        r("ports: pf IPv6 GET", "ports", "OPTIONS", &[("o", "http://[::1]:3000"), ("m", "GET")], 204, &[("ao", "http://[::1]:3000")], VP, None),
    ]
}
