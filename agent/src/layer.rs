//! [`CorsairLayer`]: the engine as a tower `Layer`, for embedding Corsair in
//! any tower/axum/hyper gateway.
//!
//! A thin adapter: per request it reads the current policy from a
//! [`PolicyHandle`] (lock-free), asks the engine, answers preflights and
//! strict-mode blocks itself, and writes the decision's headers into the
//! inner service's response. With a [`Reporter`] it counts decisions the
//! same way the sidecar proxy does, so an embedded agent reports what it
//! blocked (run [`crate::report::run`] beside it to upload the counts).

use crate::engine::{Decision, RequestParts};
use crate::handle::PolicyHandle;
use crate::report::Reporter;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// A tower `Layer` enforcing the policy currently held by a [`PolicyHandle`].
///
/// With no policy in the handle it fails closed ([`Decision::no_policy`]):
/// CORS requests get no grants and preflights a 403.
#[derive(Debug, Clone)]
pub struct CorsairLayer {
    handle: PolicyHandle,
    reporter: Option<Reporter>,
}

impl CorsairLayer {
    /// A layer reading its policy from `handle`; swaps made through any clone
    /// of the handle take effect on the next request.
    pub fn new(handle: PolicyHandle) -> Self {
        CorsairLayer {
            handle,
            reporter: None,
        }
    }

    /// Counts every decision (metrics) and blocked or would-block ones
    /// (telemetry) in `reporter`.
    pub fn with_reporter(mut self, reporter: Reporter) -> Self {
        self.reporter = Some(reporter);
        self
    }
}

impl<S> Layer<S> for CorsairLayer {
    type Service = Corsair<S>;

    fn layer(&self, inner: S) -> Corsair<S> {
        Corsair {
            inner,
            handle: self.handle.clone(),
            reporter: self.reporter.clone(),
        }
    }
}

/// The service [`CorsairLayer`] wraps around an inner service.
#[derive(Debug, Clone)]
pub struct Corsair<S> {
    inner: S,
    handle: PolicyHandle,
    reporter: Option<Reporter>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Corsair<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    // Local answers (preflights, strict blocks) need an empty body of the
    // inner service's type, as with tower-http's CorsLayer.
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let active = self.handle.load();
        let parts = RequestParts {
            method: req.method(),
            headers: req.headers(),
        };
        let decision = match active.as_deref() {
            Some(a) => a.policy.evaluate(&parts),
            None => Decision::no_policy(&parts),
        };
        if let Some(reporter) = &self.reporter {
            reporter.observe(&parts, &decision);
        }
        // The response future outlives this borrow of the policy, so the
        // decision takes its header values along (shared bytes, no copies).
        let decision = decision.into_owned();
        if let Some(reason) = decision.reason() {
            tracing::debug!(
                reason = reason.as_str(),
                would_block = decision.would_block(),
                service = active.as_ref().map_or("", |a| a.service.as_str()),
                "CORS request refused by policy"
            );
        }
        if let Some(status) = decision.local_response() {
            let mut res = Response::new(ResBody::default());
            *res.status_mut() = status;
            decision.apply(res.headers_mut());
            return Box::pin(std::future::ready(Ok(res)));
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            decision.apply(res.headers_mut());
            Ok(res)
        })
    }
}
