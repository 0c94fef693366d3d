//! The CORS decision engine: pure, synchronous, no I/O.
//!
//! - [`spec`]: [`PolicySpec`], the policy as configured.
//!
//! API contract (other modules and the control plane depend on it):
//! `Policy::compile(&spec) -> Result<Policy, PolicyError>`,
//! `policy.evaluate(&RequestParts) -> Decision`, `Decision::no_policy(&req)`,
//! `Decision::{kind, reason, would_block, local_response, apply}`,
//! `parse_origin_pattern`.

pub mod spec;

pub use spec::{Mode, PolicySpec};

use http::{HeaderMap, Method, StatusCode};

/// A compiled, validated policy: cheap to evaluate, immutable.
#[derive(Debug)]
pub struct Policy {
    spec: PolicySpec,
}

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

/// The parts of a request the engine looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

/// What kind of decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// No `Origin` header: not a CORS request; forward untouched.
    NotCors,
    /// A preflight that is granted: answered locally with 204.
    PreflightAllowed,
    /// A preflight that is refused: answered locally with 403, no CORS headers.
    PreflightRejected,
    /// An actual request from an allowed origin: forward, add CORS headers.
    Allowed,
    /// An actual request from a disallowed origin: forward without CORS
    /// grants (or, in strict mode, answered locally with 403).
    Blocked,
}

/// Why a request was (or, in report-only mode, would have been) blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The origin is not in the allowlist.
    OriginNotAllowed,
    /// The preflight asked for a method the policy does not allow.
    MethodNotAllowed,
    /// The preflight asked for a header the policy does not allow.
    HeaderNotAllowed,
    /// The agent has no policy for the service: fail closed.
    NoPolicy,
}

impl Reason {
    /// Machine-readable name, e.g. `origin_not_allowed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::OriginNotAllowed => "origin_not_allowed",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::HeaderNotAllowed => "header_not_allowed",
            Reason::NoPolicy => "no_policy",
        }
    }
}

/// The engine's answer for one request. Borrows the policy's precomputed
/// header values; applying it does not allocate on the hot path.
#[derive(Debug, Clone)]
pub struct Decision<'p> {
    _policy: Option<&'p Policy>,
}

impl Policy {
    /// Validates `spec` and precomputes everything the request path needs.
    pub fn compile(spec: &PolicySpec) -> Result<Policy, PolicyError> {
        let _ = spec;
        unimplemented!("engine skeleton")
    }

    /// The spec this policy was compiled from.
    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// Decides one request.
    pub fn evaluate<'p>(&'p self, req: &RequestParts<'_>) -> Decision<'p> {
        let _ = req;
        unimplemented!("engine skeleton")
    }
}

impl Decision<'static> {
    /// The fail-closed decision when there is no policy at all: CORS requests
    /// get no grants and preflights a 403 (reason `no_policy`).
    pub fn no_policy(req: &RequestParts<'_>) -> Decision<'static> {
        let _ = req;
        unimplemented!("engine skeleton")
    }
}

impl Decision<'_> {
    /// What kind of decision this is.
    pub fn kind(&self) -> DecisionKind {
        unimplemented!("engine skeleton")
    }

    /// Why it was blocked (or would have been, in report-only mode).
    pub fn reason(&self) -> Option<Reason> {
        unimplemented!("engine skeleton")
    }

    /// Report-only mode let through a request the policy would have blocked.
    pub fn would_block(&self) -> bool {
        unimplemented!("engine skeleton")
    }

    /// `Some(status)` when the agent must answer itself and never call the
    /// upstream (preflights: 204/403; strict-mode blocks: 403).
    pub fn local_response(&self) -> Option<StatusCode> {
        unimplemented!("engine skeleton")
    }

    /// Writes the CORS response headers into `headers` — a local response's
    /// or the upstream's. Removes any `Access-Control-*` the upstream set (so
    /// exactly one `Access-Control-Allow-Origin` reaches the client) and
    /// appends `Vary` values, merging with the upstream's `Vary`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let _ = headers;
        unimplemented!("engine skeleton")
    }
}

/// Validates one origin pattern on its own (no policy context) and returns it
/// in canonical form, or a message saying what is wrong.
pub fn parse_origin_pattern(pattern: &str) -> Result<String, String> {
    let _ = pattern;
    unimplemented!("engine skeleton")
}
