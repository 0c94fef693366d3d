//! Allowed methods: validation, and the preflight's
//! `Access-Control-Request-Method` check.

use super::Problem;
use super::request_lines::RequestLine;
use super::token::is_token;
use http::HeaderValue;

/// Methods a browser never lets a page send (fetch spec "forbidden method").
const FORBIDDEN: [&str; 3] = ["CONNECT", "TRACE", "TRACK"];

/// Methods the fetch spec uppercases when a script writes them in any case;
/// a policy spelling them otherwise would never match a browser.
const NORMALISED: [&str; 6] = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"];

/// CORS-safelisted methods: always allowed, never named in `-Allow-Methods`.
pub(crate) fn is_safelisted(method: &[u8]) -> bool {
    matches!(method, b"GET" | b"HEAD" | b"POST")
}

/// The compiled `allow_methods`.
#[derive(Debug, Default)]
pub(crate) struct AllowedMethods {
    any: bool,
    names: Vec<Box<[u8]>>,
}

impl AllowedMethods {
    /// Compiles `allow_methods`, recording every problem.
    pub(crate) fn compile(methods: &[String], problems: &mut Vec<Problem>) -> AllowedMethods {
        let mut out = AllowedMethods::default();
        for (i, m) in methods.iter().enumerate() {
            let field = format!("allow_methods[{i}]");
            if m == "*" {
                out.any = true;
            } else if !is_token(m.as_bytes()) {
                problems.push(Problem::new(
                    field,
                    m,
                    "is not a valid method name (an HTTP token)",
                ));
            } else if FORBIDDEN.iter().any(|f| f.eq_ignore_ascii_case(m)) {
                problems.push(Problem::new(
                    field,
                    m,
                    "is a forbidden method; browsers never send it",
                ));
            } else if let Some(n) = NORMALISED
                .iter()
                .find(|n| n.eq_ignore_ascii_case(m) && **n != m)
            {
                problems.push(Problem::new(
                    field,
                    m,
                    format!("browsers always send this method as {n}, and methods compare case-sensitively; write {n}"),
                ));
            } else {
                out.names.push(m.as_bytes().into());
            }
        }
        out
    }

    fn allows(&self, method: &[u8]) -> bool {
        if FORBIDDEN
            .iter()
            .any(|f| f.as_bytes().eq_ignore_ascii_case(method))
        {
            return false;
        }
        self.any || self.names.iter().any(|n| **n == *method)
    }
}

/// Outcome of checking `Access-Control-Request-Method`.
#[derive(Debug)]
pub(crate) enum MethodVerdict<'r> {
    /// Safelisted: allowed, no `-Allow-Methods` header needed.
    Safelisted,
    /// Allowed: echo this value in `-Allow-Methods`.
    Allowed(&'r HeaderValue),
    /// Not allowed (or not a single valid token); the raw value for
    /// report-only echo, when there is one.
    Denied(Option<&'r HeaderValue>),
}

/// Checks the preflight's requested method: exactly one line, one token,
/// compared case-sensitively (`put` is not `PUT`).
pub(crate) fn check<'r>(line: RequestLine<'r>, allowed: &AllowedMethods) -> MethodVerdict<'r> {
    let (Some(v), false) = (line.first, line.more) else {
        return MethodVerdict::Denied(None);
    };
    let m = v.as_bytes();
    if !is_token(m) {
        return MethodVerdict::Denied(None);
    }
    if is_safelisted(m) {
        MethodVerdict::Safelisted
    } else if allowed.allows(m) {
        MethodVerdict::Allowed(v)
    } else {
        MethodVerdict::Denied(Some(v))
    }
}
