//! The CORS decision engine: pure, synchronous, no I/O.
//!
//! - [`spec`]: [`PolicySpec`], the policy as configured.
//! - `origin`: origin patterns (parse, canonical form, allowlist matching).
//! - `methods`, `request_headers`, `expose_headers`, `max_age`: one policy
//!   field each — validation and the precomputed header it produces.
//! - `token`: the RFC 9110 token grammar shared by methods and header names.
//! - `request_lines`: finding the request's CORS lines (one scan or lookups).
//! - `vary`: merging our `Vary` into the response's.
//! - `decision`: [`Decision`], what to answer and how to write it.
//! - `policy`: [`Policy`], compile and evaluate.
//!
//! API contract (other modules and the control plane depend on it):
//! `Policy::compile(&spec) -> Result<Policy, PolicyError>`,
//! `policy.evaluate(&RequestParts) -> Decision`, `Decision::no_policy(&req)`,
//! `Decision::{kind, reason, would_block, local_response, apply}`,
//! `parse_origin_pattern`.

pub mod spec;

mod decision;
mod expose_headers;
mod max_age;
mod methods;
mod origin;
mod policy;
mod request_headers;
mod request_lines;
mod token;
mod vary;

pub use decision::{
    ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK, ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK, Decision,
    DecisionKind, ForwardHeaders, Reason,
};
pub use max_age::MAX_AGE_LIMIT;
pub use origin::parse_origin_pattern;
pub use policy::Policy;
pub use spec::{Mode, PolicySettings, PolicySpec};

use http::header::ACCESS_CONTROL_REQUEST_METHOD;
use http::{HeaderMap, HeaderValue, Method};

/// Every problem found in a [`PolicySpec`], not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct PolicyError {
    /// The problems, in field order.
    pub problems: Vec<Problem>,
}

/// One problem in a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value:?}: {message}")]
pub struct Problem {
    /// The field, e.g. `origins[2]`, `allow_methods[0]`, `max_age_secs`.
    pub field: String,
    /// The offending value as given.
    pub value: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem with `field`, whose value was `value`.
    pub fn new(
        field: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            field: field.into(),
            value: value.into(),
            message: message.into(),
        }
    }
}

/// The parts of a request the engine looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

/// A preflight is `OPTIONS` + `Origin` + `Access-Control-Request-Method`;
/// any other `OPTIONS` is an ordinary request.
pub(crate) fn is_preflight(req: &RequestParts<'_>) -> bool {
    req.method == Method::OPTIONS
        && req.headers.contains_key(http::header::ORIGIN)
        && req.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// Makes a precomputed value's later clones allocation-free.
///
/// A `HeaderValue` built from a `String` holds a `Vec`-backed `Bytes` whose
/// first clone allocates a shared control block; cloning once at compile
/// time moves that allocation off the request path.
pub(crate) fn shared(v: HeaderValue) -> HeaderValue {
    drop(v.clone());
    v
}
