//! Origin patterns: parsing into canonical form, and matching the request's
//! `Origin` header against the approved set.
//!
//! Patterns are refused rather than silently normalised (uppercase hosts,
//! explicit default ports, `127.1`): the canonical form is what a browser
//! serialises, and an operator who wrote something else should see what they
//! meant instead of having us guess. The message always says what to write.

use super::{PolicySpec, Problem};
use http::HeaderValue;
use rustc_hash::FxBuildHasher;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

#[cfg(test)]
mod tests;

/// A validated origin pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// `*`: any origin.
    Any,
    /// One serialized origin, e.g. `https://app.example.com:8443`.
    Exact(String),
    /// `scheme://*.base[:port]`: any origin with at least one label before `base`.
    Wildcard {
        /// `https://` or `http://`.
        scheme_prefix: &'static str,
        /// `.base[:port]`, matched as a suffix of the request origin.
        suffix: String,
    },
}

impl Pattern {
    /// The canonical spelling, as stored and shown.
    pub(crate) fn canonical(&self) -> String {
        match self {
            Pattern::Any => "*".to_owned(),
            Pattern::Exact(s) => s.clone(),
            Pattern::Wildcard {
                scheme_prefix,
                suffix,
            } => format!("{scheme_prefix}*{suffix}"),
        }
    }
}

/// Validates one origin pattern and returns it in canonical form, or a
/// message saying what is wrong (shown verbatim to users, with 422).
pub fn parse_origin_pattern(pattern: &str) -> Result<String, String> {
    parse(pattern).map(|p| p.canonical())
}

/// Parses one pattern. Every refusal names the rule and, where there is one,
/// the spelling to use instead.
pub(crate) fn parse(input: &str) -> Result<Pattern, String> {
    if input.is_empty() {
        return Err("is empty; write an origin such as https://app.example.com".into());
    }
    if input.trim() != input {
        return Err("has surrounding whitespace; remove it".into());
    }
    if input == "*" {
        return Ok(Pattern::Any);
    }
    if input.eq_ignore_ascii_case("null") {
        return Err(
            "`null` is the opaque origin of sandboxed frames, file: pages and \
                    redirects; any page can make a browser send it, so it cannot be approved"
                .into(),
        );
    }
    let Some((scheme, rest)) = input.split_once("://") else {
        return Err(match input.split_once(':') {
            Some((s, _)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic()) => {
                format!(
                    "`{s}:` URLs have an opaque origin; only http:// and https:// origins can be approved"
                )
            }
            _ => "has no scheme; write it with one, e.g. https://app.example.com".into(),
        });
    };
    let (scheme_prefix, default_port) = match scheme {
        "https" => ("https://", 443),
        "http" => ("http://", 80),
        s if s.eq_ignore_ascii_case("https") || s.eq_ignore_ascii_case("http") => {
            return Err(format!(
                "scheme `{s}` must be lowercase; write {}://{rest}",
                s.to_ascii_lowercase()
            ));
        }
        s => {
            return Err(format!(
                "scheme `{s}` has an opaque origin or is not supported; only http:// and https:// origins can be approved"
            ));
        }
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains('@') {
        return Err("has userinfo (`user@`); an origin is only scheme, host and port".into());
    }
    if let Some(c) = rest[authority_end..].chars().next() {
        let what = match c {
            '/' if authority_end + 1 == rest.len() => "a trailing `/`",
            '/' => "a path",
            '?' => "a query",
            _ => "a fragment",
        };
        return Err(format!(
            "has {what}; an origin is only scheme, host and port: write {scheme_prefix}{authority}"
        ));
    }
    if authority.is_empty() {
        return Err("has no host".into());
    }
    if authority.contains('[') && !authority.starts_with('[') {
        return Err(if authority.starts_with("*.") {
            "a wildcard cannot cover an IP address".into()
        } else {
            "`[` may only open an IPv6 address, at the start of the host".into()
        });
    }
    let (host, port) = split_host_port(authority)?;
    let port_suffix = match port {
        None => String::new(),
        Some(p) => {
            let n = parse_port(p)?;
            if n == default_port {
                return Err(format!(
                    "has the explicit default port :{n} of {scheme}; browsers never send it, write {scheme_prefix}{host}"
                ));
            }
            format!(":{n}")
        }
    };
    if host.contains('*') {
        let Some(base) = host.strip_prefix("*.") else {
            return Err(wildcard_shape_message());
        };
        if base.contains('*') {
            return Err(wildcard_shape_message());
        }
        if base.is_empty() {
            return Err("`*.` must be followed by a domain, e.g. https://*.example.com".into());
        }
        if base.starts_with('[') {
            return Err("a wildcard cannot cover an IP address".into());
        }
        if check_host(base)? == HostKind::Ipv4 {
            return Err("a wildcard cannot cover an IP address".into());
        }
        if is_public_suffix(base) {
            return Err(format!(
                "`*.{base}` covers a public suffix: anyone can register a name under `{base}`; \
                 approve a domain you control, e.g. https://*.example.{base}"
            ));
        }
        return Ok(Pattern::Wildcard {
            scheme_prefix,
            suffix: format!(".{base}{port_suffix}"),
        });
    }
    check_host(host)?;
    Ok(Pattern::Exact(format!(
        "{scheme_prefix}{host}{port_suffix}"
    )))
}

fn wildcard_shape_message() -> String {
    "a wildcard may only be one whole leading label, as in https://*.example.com".into()
}

/// Splits `host[:port]`, with bracketed IPv6 hosts.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return Err("has an unterminated IPv6 address (missing `]`)".into());
        };
        let (host, after) = authority.split_at(end + 1);
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, Some(p))),
            None if after.is_empty() => Ok((host, None)),
            None => Err("has text after the IPv6 address; only `:port` may follow it".into()),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, _)) if h.contains(':') => {
            Err("has an IPv6 address without brackets; write it as http://[::1]".into())
        }
        Some((h, p)) => Ok((h, Some(p))),
        None => Ok((authority, None)),
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    if p.is_empty() {
        return Err("has an empty port after `:`; remove the `:`".into());
    }
    if !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port `{p}` is not a number"));
    }
    if p.len() > 1 && p.starts_with('0') {
        return Err(format!(
            "port `{p}` has leading zeros; write {}",
            p.trim_start_matches('0')
        ));
    }
    match p.parse::<u32>() {
        Ok(0) => Err("port 0 cannot be used by a browser".into()),
        Ok(n) if n <= 65535 => Ok(n as u16),
        _ => Err(format!("port `{p}` is out of range (1-65535)")),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum HostKind {
    Domain,
    Ipv4,
    Ipv6,
}

/// Checks that `host` is exactly what a browser would serialise.
fn check_host(host: &str) -> Result<HostKind, String> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        if inner.contains('%') {
            return Err("has an IPv6 zone id (`%...`); zone ids are local to one machine and never part of an origin".into());
        }
        let addr: Ipv6Addr = inner
            .parse()
            .map_err(|_| format!("`{inner}` is not a valid IPv6 address"))?;
        let canonical = format!("[{addr}]");
        if canonical != host {
            return Err(format!(
                "IPv6 address is not in canonical form; write {canonical}"
            ));
        }
        return Ok(HostKind::Ipv6);
    }
    if !host.is_ascii() {
        return Err("host is not ASCII; write its punycode (xn--) form".into());
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "host has uppercase letters; browsers send it in lowercase: {}",
            host.to_ascii_lowercase()
        ));
    }
    if host.len() > 253 {
        return Err("host is longer than 253 characters".into());
    }
    let labels: Vec<&str> = host.split('.').collect();
    // WHATWG URL: a host whose last label is numeric is parsed as IPv4, so
    // `127.1` and `0x7f.0.0.1` are IPv4 addresses in disguise.
    let last = labels.last().copied().unwrap_or_default();
    let numeric = !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || last
                .strip_prefix("0x")
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())));
    if numeric {
        return match host.parse::<Ipv4Addr>() {
            Ok(a) if a.to_string() == host => Ok(HostKind::Ipv4),
            _ => Err(format!(
                "`{host}` is not a canonical IPv4 address; write four decimal parts without leading zeros, e.g. 127.0.0.1"
            )),
        };
    }
    for label in &labels {
        if label.is_empty() {
            return Err("host has an empty label (a leading, trailing or doubled dot)".into());
        }
        if label.len() > 63 {
            return Err(format!("host label `{label}` is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "host contains `{c}`, which is not allowed in a domain name"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("host label `{label}` starts or ends with `-`"));
        }
    }
    Ok(HostKind::Domain)
}

/// True when `base` is itself a public suffix (`com`, `co.uk`, `github.io`),
/// or a single unlisted label (`local`, `corp`) that is a top-level name in
/// practice. `localhost` is the exception: every name under it is loopback.
fn is_public_suffix(base: &str) -> bool {
    if !base.contains('.') {
        return base != "localhost";
    }
    psl::suffix(base.as_bytes()).is_some_and(|s| s.is_known() && s.as_bytes() == base.as_bytes())
}

/// True for origins that only reach this machine: `localhost`, `*.localhost`,
/// 127.0.0.0/8 and `[::1]`.
fn is_loopback_host(pattern: &Pattern) -> bool {
    let authority = match pattern {
        Pattern::Any => return false,
        Pattern::Exact(s) => s.split_once("://").map_or("", |(_, a)| a),
        Pattern::Wildcard { suffix, .. } => suffix.as_str(),
    };
    let host = match authority.strip_prefix('[') {
        Some(v6) => return v6.starts_with("::1]"),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

/// What an `Origin` header matched. The `u32` is the index of the matching
/// pattern in the spec's `origins` (what allowed-request usage is counted by).
#[derive(Debug)]
pub(crate) enum OriginMatch<'p> {
    /// An exact entry: its precomputed header value.
    Exact(&'p HeaderValue, u32),
    /// A wildcard entry: echo the request's value.
    Wildcard(u32),
    /// The policy allows any origin.
    Any(u32),
    /// Not allowed.
    None,
}

/// The `Access-Control-Allow-Origin` an any-origin policy answers.
static STAR: HeaderValue = HeaderValue::from_static("*");

impl<'p> OriginMatch<'p> {
    /// The `Access-Control-Allow-Origin` value this match grants to a
    /// request that sent `sent`: the listed value, the sent origin for a
    /// wildcard, `*` for any origin; `None` when nothing matched.
    pub(crate) fn granted(&self, sent: &'p HeaderValue) -> Option<&'p HeaderValue> {
        match *self {
            OriginMatch::Exact(v, _) => Some(v),
            OriginMatch::Wildcard(_) => Some(sent),
            OriginMatch::Any(_) => Some(&STAR),
            OriginMatch::None => None,
        }
    }

    /// The index of the pattern that matched, if any.
    pub(crate) fn pattern(&self) -> Option<u32> {
        match self {
            OriginMatch::Exact(_, i) | OriginMatch::Wildcard(i) | OriginMatch::Any(i) => Some(*i),
            OriginMatch::None => None,
        }
    }
}

/// No pattern for this scheme under a wildcard suffix.
const NO_PATTERN: u32 = u32::MAX;

/// The compiled allowlist: exact origins in a hash map for a borrowed,
/// allocation-free lookup; wildcards in a hash map keyed by their `.base[:port]`
/// suffix, so matching costs one lookup per dot in the origin whatever the
/// number of patterns.
///
/// Both maps hash with FxHash rather than the std SipHash: hashing the
/// origin is a third of an exact-origin decision, and HashDoS does not apply.
/// Only the policy (trusted, from the control plane) inserts keys; a request
/// can only look one up, and a lookup's probe length is fixed by how the
/// trusted keys filled the table, whatever the attacker's key hashes to.
/// Over-long origins are refused before hashing, so a lookup is also bounded
/// in bytes.
///
/// Each entry keeps the index of its pattern in the spec's `origins`, so a
/// match names the pattern without copying it.
#[derive(Debug, Default)]
pub(crate) struct OriginSet {
    /// `*`'s index in the spec, when the policy allows any origin.
    any: Option<u32>,
    /// Keyed by bytes: a request's `Origin` is looked up as it came, without
    /// first checking that it is text (a listed origin always is); the value
    /// is the header to send and the pattern's index.
    exact: HashMap<Box<[u8]>, (HeaderValue, u32), FxBuildHasher>,
    /// `.base[:port]` → the pattern index for `http://` and for `https://`
    /// under it ([`NO_PATTERN`] when that scheme is not allowed).
    wildcards: HashMap<Box<str>, [u32; 2], FxBuildHasher>,
}

impl OriginSet {
    /// Compiles `spec.origins`, recording every problem. Empty compiles to
    /// deny-all on purpose: see [`PolicySpec::validate_authored`].
    pub(crate) fn compile(spec: &PolicySpec, problems: &mut Vec<Problem>) -> OriginSet {
        let mut set = OriginSet::default();
        let many = spec.origins.len() > 1;
        for (i, raw) in spec.origins.iter().enumerate() {
            let field = format!("origins[{i}]");
            let index = u32::try_from(i).unwrap_or(NO_PATTERN);
            let pattern = match parse(raw) {
                Ok(p) => p,
                Err(msg) => {
                    problems.push(Problem::new(field, raw, msg));
                    continue;
                }
            };
            match &pattern {
                Pattern::Any if many => problems.push(Problem::new(
                    field,
                    raw,
                    "`*` (any origin) must be the only entry; remove the other origins or the `*`",
                )),
                Pattern::Any if spec.allow_credentials => problems.push(Problem::new(
                    field,
                    raw,
                    "`*` (any origin) cannot be combined with credentials: any site could read \
                     responses with the user's cookies; list the origins instead",
                )),
                _ => {}
            }
            if spec.allow_credentials
                && !spec.allow_insecure_http
                && raw.starts_with("http://")
                && !is_loopback_host(&pattern)
            {
                problems.push(Problem::new(
                    format!("origins[{i}]"),
                    raw,
                    "plain-http origin with credentials: anyone on the network path can inject \
                     script into it; use https, or opt in with allow_insecure_http",
                ));
            }
            match pattern {
                Pattern::Any => set.any = Some(index),
                Pattern::Exact(s) => {
                    // The canonical form is a valid header value (ASCII, no
                    // controls); a failure here is a bug in `parse`, so report
                    // it rather than panic.
                    match HeaderValue::from_str(&s) {
                        Ok(v) => {
                            set.exact.insert(
                                s.into_bytes().into_boxed_slice(),
                                (super::shared(v), index),
                            );
                        }
                        Err(_) => problems.push(Problem::new(
                            format!("origins[{i}]"),
                            raw,
                            "cannot be used as a header value",
                        )),
                    }
                }
                Pattern::Wildcard {
                    scheme_prefix,
                    suffix,
                } => {
                    set.wildcards
                        .entry(suffix.into_boxed_str())
                        .or_insert([NO_PATTERN; 2])[scheme_slot(scheme_prefix)] = index;
                }
            }
        }
        set
    }

    /// True when the policy allows any origin (`*`).
    pub(crate) fn is_any(&self) -> bool {
        self.any.is_some()
    }

    /// Matches a request's `Origin` value. Browsers send serialized origins
    /// (lowercase, no default port), so an exact byte comparison is correct and
    /// anything else (uppercase, `:443`) is not a browser and does not match.
    /// Takes the header's bytes: an exact hit needs no text check (only
    /// text is listed); a wildcard match needs it as text, whose labels it
    /// then checks byte by byte. Inlined into its one caller, the
    /// decision: a call would cost a fifth of an exact lookup.
    #[inline(always)]
    pub(crate) fn find(&self, origin: &[u8]) -> OriginMatch<'_> {
        if let Some(i) = self.any {
            // Any origin, but only as text (`HeaderValue::to_str`'s rule).
            return if origin
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
            {
                OriginMatch::Any(i)
            } else {
                OriginMatch::None
            };
        }
        // No valid origin is this long; don't hash a hostile megabyte.
        if origin.len() > MAX_ORIGIN_LEN {
            return OriginMatch::None;
        }
        if let Some((v, i)) = self.exact.get(origin) {
            return OriginMatch::Exact(v, *i);
        }
        if !self.wildcards.is_empty()
            && let Some(i) = std::str::from_utf8(origin)
                .ok()
                .and_then(|o| self.wildcard_match(o))
        {
            return OriginMatch::Wildcard(i);
        }
        OriginMatch::None
    }

    /// Tries each `.`-suffix of the origin's host[:port] against the
    /// wildcard map; the part before it must be one or more valid lowercase
    /// labels. Bounded: [`OriginSet::find`] has refused over-long origins.
    /// Returns the matching pattern's index.
    fn wildcard_match(&self, origin: &str) -> Option<u32> {
        let (slot, rest) = if let Some(r) = origin.strip_prefix("https://") {
            (HTTPS, r)
        } else if let Some(r) = origin.strip_prefix("http://") {
            (HTTP, r)
        } else {
            return None;
        };
        rest.match_indices('.').find_map(|(i, _)| {
            let index = self.wildcards.get(&rest[i..])?[slot];
            (index != NO_PATTERN && labels_ok(&rest[..i])).then_some(index)
        })
    }
}

/// Slots of the wildcard map's per-scheme pattern indices.
const HTTP: usize = 0;
const HTTPS: usize = 1;

/// `https://` + 253-byte host + `:65535`, with room to spare.
const MAX_ORIGIN_LEN: usize = 300;

fn scheme_slot(scheme_prefix: &str) -> usize {
    if scheme_prefix == "https://" {
        HTTPS
    } else {
        HTTP
    }
}

/// One or more non-empty lowercase DNS labels joined by dots.
fn labels_ok(labels: &str) -> bool {
    !labels.is_empty()
        && labels.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}
