//! Allowed request headers: validation, and the preflight's
//! `Access-Control-Request-Headers` check, bounded against hostile input.

use super::Problem;
use super::token::is_token;
use http::HeaderValue;
use http::header::GetAll;

/// Forbidden request headers (fetch spec): a page can never set them, so
/// allowing them is a configuration mistake.
const FORBIDDEN: [&str; 21] = [
    "accept-charset",
    "accept-encoding",
    "access-control-request-headers",
    "access-control-request-method",
    "connection",
    "content-length",
    "cookie",
    "cookie2",
    "date",
    "dnt",
    "expect",
    "host",
    "keep-alive",
    "origin",
    "referer",
    "set-cookie",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "via",
];

/// Bounds on `Access-Control-Request-Headers`. A browser sends one line of
/// lowercase names joined by commas; these limits are far above what a real
/// page needs and keep a hostile value from costing more than a few µs.
const MAX_LINES: usize = 8;
const MAX_BYTES: usize = 4096;
const MAX_NAMES: usize = 64;
const MAX_EMPTY: usize = 16;

/// The compiled `allow_headers`, names lowercased.
#[derive(Debug, Default)]
pub(crate) struct AllowedHeaders {
    /// `*`: any name except `Authorization`.
    any: bool,
    /// `authorization` was listed explicitly: `*` never covers it.
    authorization: bool,
    names: Vec<Box<[u8]>>,
}

impl AllowedHeaders {
    /// Compiles `allow_headers`, recording every problem.
    pub(crate) fn compile(headers: &[String], problems: &mut Vec<Problem>) -> AllowedHeaders {
        let mut out = AllowedHeaders::default();
        for (i, h) in headers.iter().enumerate() {
            let field = format!("allow_headers[{i}]");
            let lower = h.to_ascii_lowercase();
            if h == "*" {
                out.any = true;
            } else if !is_token(h.as_bytes()) {
                problems.push(Problem::new(
                    field,
                    h,
                    "is not a valid header name (an HTTP token)",
                ));
            } else if FORBIDDEN.contains(&lower.as_str())
                || lower.starts_with("sec-")
                || lower.starts_with("proxy-")
            {
                problems.push(Problem::new(
                    field,
                    h,
                    "is a forbidden request header: browsers never let a page set it",
                ));
            } else if lower.starts_with("access-control-") {
                problems.push(Problem::new(
                    field,
                    h,
                    "is a CORS protocol header; a page never sends Access-Control-* headers",
                ));
            } else if lower == "authorization" {
                out.authorization = true;
            } else {
                out.names.push(lower.into_bytes().into_boxed_slice());
            }
        }
        out
    }

    fn allows(&self, name: &[u8]) -> bool {
        if name.eq_ignore_ascii_case(b"authorization") {
            return self.authorization;
        }
        // Browsers send names lowercase, as they are compiled: a byte
        // compare (memcmp) settles the usual case before the per-byte
        // case-insensitive one.
        self.any
            || self
                .names
                .iter()
                .any(|n| **n == *name || n.eq_ignore_ascii_case(name))
    }
}

/// Outcome of checking `Access-Control-Request-Headers`.
#[derive(Debug)]
pub(crate) enum HeadersVerdict {
    /// No header names were requested.
    Nothing,
    /// All allowed: echo this value in `-Allow-Headers`.
    Allowed(HeaderValue),
    /// Some name is not allowed, malformed, or the value is over the bounds;
    /// the echo value when the input was well formed (for report-only).
    Denied(Option<HeaderValue>),
}

/// Checks every requested name. Tolerates any case, optional whitespace,
/// duplicate commas and several header lines; refuses early once any bound
/// is passed, before scanning the excess.
pub(crate) fn check(values: GetAll<'_, HeaderValue>, allowed: &AllowedHeaders) -> HeadersVerdict {
    let (mut lines, mut bytes, mut names, mut empty) = (0, 0, 0, 0);
    let mut denied = false;
    for v in values.iter() {
        lines += 1;
        bytes += v.len();
        if lines > MAX_LINES || bytes > MAX_BYTES {
            return HeadersVerdict::Denied(None);
        }
        for element in v.as_bytes().split(|&b| b == b',') {
            let name = element.trim_ascii();
            if name.is_empty() {
                empty += 1;
                if empty > MAX_EMPTY {
                    return HeadersVerdict::Denied(None);
                }
                continue;
            }
            names += 1;
            if names > MAX_NAMES || !is_token(name) {
                return HeadersVerdict::Denied(None);
            }
            denied |= !allowed.allows(name);
        }
    }
    if names == 0 {
        return HeadersVerdict::Nothing;
    }
    let echo = echo(values);
    if denied {
        HeadersVerdict::Denied(echo)
    } else {
        echo.map_or(HeadersVerdict::Denied(None), HeadersVerdict::Allowed)
    }
}

/// The value to echo: the single line as is (a cheap clone), or the lines
/// joined (rare: browsers send one line).
fn echo(values: GetAll<'_, HeaderValue>) -> Option<HeaderValue> {
    let mut it = values.iter();
    let first = it.next()?;
    if it.next().is_none() {
        return Some(first.clone());
    }
    let mut joined = Vec::with_capacity(MAX_BYTES);
    for v in values
        .iter()
        .filter(|v| !v.as_bytes().trim_ascii().is_empty())
    {
        if !joined.is_empty() {
            joined.push(b',');
        }
        joined.extend_from_slice(v.as_bytes().trim_ascii());
    }
    HeaderValue::from_bytes(&joined).ok()
}
