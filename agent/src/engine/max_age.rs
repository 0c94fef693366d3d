//! Preflight cache lifetime: validation and the precomputed
//! `Access-Control-Max-Age` value.

use super::Problem;
use http::HeaderValue;

/// Longest lifetime accepted: browsers cap it anyway (Chromium at 2 h,
/// Firefox at 24 h), and a longer one only delays a revocation.
pub const MAX_AGE_LIMIT: i64 = 86_400;

/// Compiles `max_age_secs`; 0 means "send no header" (browser default).
pub(crate) fn compile(secs: i64, problems: &mut Vec<Problem>) -> Option<HeaderValue> {
    if !(0..=MAX_AGE_LIMIT).contains(&secs) {
        problems.push(Problem::new(
            "max_age_secs",
            secs.to_string(),
            format!("must be between 0 and {MAX_AGE_LIMIT} seconds"),
        ));
        return None;
    }
    (secs > 0).then(|| super::shared(HeaderValue::from(secs)))
}
