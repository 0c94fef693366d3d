//! Allowed request headers: validation, and the preflight's
//! `Access-Control-Request-Headers` check, bounded against hostile input.

use super::Problem;
use super::token::{is_tchar, is_token};
use http::HeaderValue;
use std::borrow::Cow;

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
pub(crate) enum HeadersVerdict<'r> {
    /// No header names were requested.
    Nothing,
    /// All allowed: echo this value in `-Allow-Headers` (the request's one
    /// line, or its lines joined).
    Allowed(Cow<'r, HeaderValue>),
    /// Some name is not allowed, malformed, or the value is over the bounds;
    /// the echo value when the input was well formed (for report-only).
    Denied(Option<Cow<'r, HeaderValue>>),
}

/// Checks every requested name. Tolerates any case, optional whitespace,
/// duplicate commas and several header lines; refuses early once any bound
/// is passed, before scanning the excess.
///
/// One pass over each line's bytes: an element is optional whitespace, a
/// token, optional whitespace, then a comma or the end (what splitting on
/// commas, trimming and checking the token grammar accept, in one scan
/// rather than three).
///
/// `values` are the request's `Access-Control-Request-Headers` lines: the
/// one line a browser sends (`Option<&HeaderValue>`), or all of them
/// (`AllLines`); read twice at most.
pub(crate) fn check<'a, I>(values: I, allowed: &AllowedHeaders) -> HeadersVerdict<'a>
where
    I: IntoIterator<Item = &'a HeaderValue> + Copy,
{
    let (mut lines, mut bytes, mut names, mut empty) = (0, 0, 0, 0);
    let mut denied = false;
    let mut first = None;
    for v in values {
        lines += 1;
        bytes += v.len();
        if lines > MAX_LINES || bytes > MAX_BYTES {
            return HeadersVerdict::Denied(None);
        }
        first.get_or_insert(v);
        let line = v.as_bytes();
        let n = line.len();
        let mut i = 0;
        loop {
            // An empty element (`,,`: hostile input is mostly these) is
            // settled on its comma.
            if i < n && line[i] == b',' {
                empty += 1;
                if empty > MAX_EMPTY {
                    return HeadersVerdict::Denied(None);
                }
                i += 1;
                continue;
            }
            while i < n && line[i].is_ascii_whitespace() {
                i += 1;
            }
            let start = i;
            while i < n && is_tchar(line[i]) {
                i += 1;
            }
            let end = i;
            while i < n && line[i].is_ascii_whitespace() {
                i += 1;
            }
            // Anything but a comma here (a space inside a name, a byte
            // outside the token grammar) makes the element no token.
            if i < n && line[i] != b',' {
                return HeadersVerdict::Denied(None);
            }
            if start == end {
                empty += 1;
                if empty > MAX_EMPTY {
                    return HeadersVerdict::Denied(None);
                }
            } else {
                names += 1;
                if names > MAX_NAMES {
                    return HeadersVerdict::Denied(None);
                }
                denied |= !allowed.allows(&line[start..end]);
            }
            if i >= n {
                break;
            }
            i += 1;
        }
    }
    if names == 0 {
        return HeadersVerdict::Nothing;
    }
    // The usual single line is echoed as is (borrowed).
    let echo = match first {
        Some(v) if lines == 1 => Some(Cow::Borrowed(v)),
        _ => echo(values),
    };
    if denied {
        HeadersVerdict::Denied(echo)
    } else {
        echo.map_or(HeadersVerdict::Denied(None), HeadersVerdict::Allowed)
    }
}

/// The value to echo: the single line as is (borrowed), or the lines
/// joined (rare: browsers send one line).
fn echo<'a>(
    values: impl IntoIterator<Item = &'a HeaderValue> + Copy,
) -> Option<Cow<'a, HeaderValue>> {
    let mut it = values.into_iter();
    let first = it.next()?;
    if it.next().is_none() {
        return Some(Cow::Borrowed(first));
    }
    let mut joined = Vec::with_capacity(MAX_BYTES);
    for v in values
        .into_iter()
        .filter(|v| !v.as_bytes().trim_ascii().is_empty())
    {
        if !joined.is_empty() {
            joined.push(b',');
        }
        joined.extend_from_slice(v.as_bytes().trim_ascii());
    }
    HeaderValue::from_bytes(&joined).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, GetAll};

    /// The split / trim / token-check version this one pass replaced.
    fn reference<'a>(
        values: GetAll<'a, HeaderValue>,
        allowed: &AllowedHeaders,
    ) -> HeadersVerdict<'a> {
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
        let echo = echo(&values).map(|v| Cow::Owned(v.into_owned()));
        if denied {
            HeadersVerdict::Denied(echo)
        } else {
            echo.map_or(HeadersVerdict::Denied(None), HeadersVerdict::Allowed)
        }
    }

    fn both(lines: &[&[u8]], allowed: &AllowedHeaders) {
        let mut h = HeaderMap::new();
        for l in lines {
            match HeaderValue::from_bytes(l) {
                Ok(v) => h.append(ACCESS_CONTROL_REQUEST_HEADERS, v),
                Err(_) => return,
            };
        }
        let got = format!(
            "{:?}",
            check(&h.get_all(ACCESS_CONTROL_REQUEST_HEADERS), allowed)
        );
        let want = format!(
            "{:?}",
            reference(h.get_all(ACCESS_CONTROL_REQUEST_HEADERS), allowed)
        );
        assert_eq!(got, want, "{lines:?}");
    }

    /// Every line of up to five bytes over an alphabet of name bytes,
    /// whitespace, commas and non-token bytes, alone and beside a second
    /// line, gets the verdict the three-pass version gave.
    #[test]
    fn one_pass_matches_split_trim_and_token_check() {
        let mut problems = Vec::new();
        let allowed = AllowedHeaders::compile(&["a".into(), "a-b".into()], &mut problems);
        assert!(problems.is_empty());
        let alphabet = b"aAb- \t,;\"";
        let mut line = Vec::new();
        for len in 0..=5u32 {
            for mut n in 0..alphabet.len().pow(len) {
                line.clear();
                for _ in 0..len {
                    line.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                both(&[&line], &allowed);
                both(&[&line, b"a"], &allowed);
                both(&[b" a-b ,", &line], &allowed);
            }
        }
        // Bounds: empties, names, lines, bytes.
        both(&[",".repeat(17).as_bytes()], &allowed);
        both(&[",".repeat(16).as_bytes()], &allowed);
        both(&["a,".repeat(65).as_bytes()], &allowed);
        both(&["a,".repeat(64).as_bytes()], &allowed);
        let nine: Vec<&[u8]> = vec![b"a"; 9];
        both(&nine, &allowed);
        both(&[&[b'a'; 4097][..]], &allowed);
    }
}
