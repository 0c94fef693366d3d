//! Exposed response headers: validation and the precomputed
//! `Access-Control-Expose-Headers` value.

use super::Problem;
use super::token::is_token;
use http::HeaderValue;

/// Compiles `expose_headers` into one precomputed header value (`None` when
/// empty), recording every problem.
pub(crate) fn compile(
    headers: &[String],
    credentials: bool,
    problems: &mut Vec<Problem>,
) -> Option<HeaderValue> {
    let mut names: Vec<String> = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let field = format!("expose_headers[{i}]");
        let lower = h.to_ascii_lowercase();
        if h == "*" && credentials {
            problems.push(Problem::new(
                field,
                h,
                "`*` means the literal header name `*` for credentialed requests; list the headers to expose",
            ));
        } else if h != "*" && !is_token(h.as_bytes()) {
            problems.push(Problem::new(
                field,
                h,
                "is not a valid header name (an HTTP token)",
            ));
        } else if lower == "set-cookie" || lower == "set-cookie2" {
            problems.push(Problem::new(
                field,
                h,
                "is a forbidden response header: browsers never expose cookies to scripts",
            ));
        } else if !names.contains(&lower) {
            names.push(lower);
        }
    }
    if names.is_empty() {
        return None;
    }
    HeaderValue::from_str(&names.join(", "))
        .ok()
        .map(super::shared)
}
