//! The one path from a request to the agent's CORS answer, shared by every
//! front: the tower layer ([`crate::layer`]), the sidecar proxy
//! ([`crate::proxy`]) and the nginx decision endpoint ([`crate::authz`]).
//!
//! - [`decide`]: the current policy's decision (fail closed without one),
//!   counted in metrics and telemetry, a refusal logged at debug level.
//! - [`local_answer`]: the answer the agent makes without calling the
//!   upstream (a preflight's 204 or 403, a strict-mode or fail-closed 403).
//! - [`respond`] and [`respond_forwarded`]: the constructors of every
//!   response the agent makes itself, the proxy's failures (400, 408, 502,
//!   504) included: each carries the same CORS decision as an upstream
//!   answer would.
//!
//! An upstream's response gets the decision through
//! [`crate::engine::ForwardHeaders::apply`] (what the decision kept once
//! the request moved on), which writes what [`Decision::apply`] would.

use crate::engine::{Decision, ForwardHeaders, RequestParts};
use crate::handle::ActivePolicy;
use crate::report::Reporter;
use http::{Response, StatusCode};

/// Decides `request` with `active`'s policy, or fails closed
/// ([`Decision::no_policy`]) when there is none; counts the decision in
/// `reporter` (every decision in the metrics, refused ones in the
/// telemetry) and, with a reporter, a granted one against the pattern that
/// granted it ([`crate::engine::Policy::count_use`], drained into the same
/// telemetry batches); logs a refusal at debug level. Borrows the policy's
/// header values and the request's echoed ones; allocates nothing of its
/// own. Inlined, so the decision is built where it is used.
#[inline]
pub fn decide<'a>(
    active: Option<&'a ActivePolicy>,
    request: &RequestParts<'a>,
    reporter: Option<&Reporter>,
) -> Decision<'a> {
    let decision = match active {
        Some(active) => active.policy.evaluate(request),
        None => Decision::no_policy(request),
    };
    if let Some(reporter) = reporter {
        if let Some(active) = active {
            active.policy.count_use(&decision);
        }
        reporter.observe(request, &decision);
    }
    if let Some(reason) = decision.reason() {
        tracing::debug!(
            service = active.map_or("", |a| a.service.as_str()),
            method = %request.method,
            reason = reason.as_str(),
            would_block = decision.would_block(),
            "CORS request not granted"
        );
    }
    decision
}

/// The agent's own answer to a request it must not forward (preflights,
/// strict-mode and fail-closed blocks) with `body()` as the (empty) body;
/// `None` when the request goes on to the upstream.
pub fn local_answer<B>(decision: &Decision<'_>, body: impl FnOnce() -> B) -> Option<Response<B>> {
    let status = decision.local_response()?;
    Some(respond(decision, status, body()))
}

/// Answers with `status` and `body`, carrying `decision`'s CORS headers
/// (allowed origin, credentials, exposed headers, `Vary`): a browser reads
/// no response without them, so a 502 without them would look like a CORS
/// refusal. Generic over the body so each front answers with its own type.
pub fn respond<B>(decision: &Decision<'_>, status: StatusCode, body: B) -> Response<B> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    decision.apply(response.headers_mut());
    response
}

/// [`respond`] for a request the agent was forwarding when it had to
/// answer itself (the proxy's 400, 408, 502 and 504), whose decision was
/// kept as its [`ForwardHeaders`] once the request moved on: the same
/// headers [`Decision::apply`] writes.
pub fn respond_forwarded<B>(cors: ForwardHeaders, status: StatusCode, body: B) -> Response<B> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    cors.apply(response.headers_mut());
    response
}
