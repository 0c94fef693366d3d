use super::*;

fn set(origins: &[&str]) -> OriginSet {
    let spec = PolicySpec {
        origins: origins.iter().map(|s| s.to_string()).collect(),
        ..PolicySpec::default()
    };
    let mut problems = Vec::new();
    let set = OriginSet::compile(&spec, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    set
}

fn hit(set: &OriginSet, origin: &str) -> bool {
    !matches!(set.find(origin.as_bytes()), OriginMatch::None)
}

#[test]
fn canonical_forms() {
    assert_eq!(
        parse_origin_pattern("https://app.example.com").as_deref(),
        Ok("https://app.example.com")
    );
    assert_eq!(
        parse_origin_pattern("http://localhost:3000").as_deref(),
        Ok("http://localhost:3000")
    );
    assert_eq!(
        parse_origin_pattern("https://*.example.com:8443").as_deref(),
        Ok("https://*.example.com:8443")
    );
    assert_eq!(
        parse_origin_pattern("http://[::1]:8080").as_deref(),
        Ok("http://[::1]:8080")
    );
    assert_eq!(parse_origin_pattern("*").as_deref(), Ok("*"));
}

#[test]
fn refusals_say_what_to_write() {
    let msg = parse_origin_pattern("https://a.com:443").unwrap_err();
    assert!(msg.contains("write https://a.com"), "{msg}");
    let msg = parse_origin_pattern("https://App.Example.com").unwrap_err();
    assert!(msg.contains("app.example.com"), "{msg}");
    let msg = parse_origin_pattern("https://a.com/").unwrap_err();
    assert!(msg.contains("trailing"), "{msg}");
}

#[test]
fn exact_matching_is_byte_exact() {
    let s = set(&[
        "https://foo.com",
        "https://bar.com",
        "http://localhost:3000",
    ]);
    assert!(hit(&s, "https://foo.com"));
    assert!(hit(&s, "http://localhost:3000"));
    assert!(!hit(&s, "https://barfoo.com"));
    assert!(!hit(&s, "https://FOO.com"));
    assert!(!hit(&s, "https://foo.com:443"));
    assert!(!hit(&s, "http://foo.com"));
    assert!(!hit(&s, "https://foo.com."));
    assert!(!hit(&s, "http://localhost"));
}

#[test]
fn wildcard_needs_a_whole_label_before_the_base() {
    let s = set(&["https://*.example.com"]);
    assert!(hit(&s, "https://a.example.com"));
    assert!(hit(&s, "https://a.b.example.com"));
    assert!(!hit(&s, "https://example.com"));
    assert!(!hit(&s, "https://.example.com"));
    assert!(!hit(&s, "https://a..example.com"));
    assert!(!hit(&s, "https://evilexample.com"));
    assert!(!hit(&s, "https://example.com.evil.net"));
    assert!(!hit(&s, "https://a.example.com:8443"));
    assert!(!hit(&s, "http://a.example.com"));
    assert!(!hit(&s, "https://A.example.com"));
    assert!(!hit(&s, "https://x@a.example.com"));
    assert!(!hit(&s, "https://a/.example.com"));
}

#[test]
fn wildcard_with_port() {
    let s = set(&["http://*.localhost:3000"]);
    assert!(hit(&s, "http://app.localhost:3000"));
    assert!(!hit(&s, "http://app.localhost"));
    assert!(!hit(&s, "http://app.localhost:30000"));
}

#[test]
fn public_suffixes_come_from_the_list() {
    for base in ["com", "co.uk", "github.io", "local"] {
        assert!(is_public_suffix(base), "{base}");
    }
    for base in ["example.com", "example.co.uk", "me.github.io", "localhost"] {
        assert!(!is_public_suffix(base), "{base}");
    }
}

#[test]
fn loopback_hosts() {
    for p in [
        "http://localhost:3000",
        "http://127.0.0.1",
        "http://127.8.9.1:1",
        "http://[::1]:8080",
        "http://*.localhost",
    ] {
        let parsed = parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(is_loopback_host(&parsed), "{p}");
    }
    for p in [
        "http://example.com",
        "http://10.0.0.1",
        "http://localhost.evil.com",
    ] {
        let parsed = parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(!is_loopback_host(&parsed), "{p}");
    }
}

#[test]
fn wildcards_sharing_a_base_keep_their_schemes() {
    let s = set(&[
        "https://*.example.com",
        "http://*.example.com:8080",
        "https://*.a.example.net",
    ]);
    assert!(hit(&s, "https://x.example.com"));
    assert!(!hit(&s, "http://x.example.com"));
    assert!(hit(&s, "http://x.example.com:8080"));
    assert!(!hit(&s, "https://x.example.com:8080"));
    assert!(hit(&s, "https://b.a.example.net"));
    assert!(!hit(&s, "https://a.example.net"));
    assert!(!hit(&s, "https://b.example.net"));
}

#[test]
fn hostile_origins_are_refused_before_scanning() {
    let s = set(&["https://*.example.com"]);
    let dots = format!("https://{}example.com", "a.".repeat(5_000));
    assert!(!hit(&s, &dots));
    let ok = format!("https://{}example.com", "a.".repeat(100));
    assert!(hit(&s, &ok));
}

#[test]
fn over_long_origins_never_match_an_exact_entry() {
    let long = format!("https://{}.example.com", "a".repeat(400));
    let s = set(&["https://app.example.com"]);
    assert!(!hit(&s, &long));
    assert!(hit(&set(&["*"]), &long), "any origin stays any origin");
}

/// The exact-origin map's hasher spreads look-alike origins over buckets
/// (hashbrown picks the bucket from the low bits).
#[test]
fn similar_origins_spread_over_buckets() {
    use std::hash::BuildHasher;
    let build = rustc_hash::FxBuildHasher;
    // The low 14 bits pick the bucket in a 16k-slot table.
    let buckets: std::collections::HashSet<u64> = (0..10_000)
        .map(|i| build.hash_one(format!("https://app{i}.example.com")) & 0x3fff)
        .collect();
    assert!(
        buckets.len() > 7_000,
        "only {} distinct buckets",
        buckets.len()
    );
}
