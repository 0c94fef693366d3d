//! [`CorsairLayer`]: the engine as a tower `Layer`, for embedding Corsair in
//! any tower/axum/hyper gateway.
//!
//! A thin adapter: per request it reads the current policy from a
//! [`PolicyHandle`] (lock-free), decides and answers preflights and
//! strict-mode blocks itself through [`crate::enforce`] (the path the
//! sidecar proxy and the authz endpoint take too), and writes the
//! decision's headers into the inner service's response. With a [`Reporter`] it counts decisions the
//! same way the sidecar proxy does, so an embedded agent reports what it
//! blocked (run [`crate::report::run`] beside it to upload the counts).
//!
//! The fixed cost per request is kept small: the policy is read through a
//! [`PolicyCache`] (an atomic load and a compare), local answers are built while the policy is
//! borrowed (no copies of its header values), a forwarded request carries
//! only the few headers its response needs ([`ForwardHeaders`]), and the
//! response future is a plain enum rather than a boxed future (no
//! allocation of its own).

use crate::enforce;
use crate::engine::{ForwardHeaders, RequestParts};
use crate::handle::{PolicyCache, PolicyHandle};
use crate::report::Reporter;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tower::{Layer, Service};

/// A tower `Layer` enforcing the policy currently held by a [`PolicyHandle`].
///
/// With no policy in the handle it fails closed ([`crate::engine::Decision::no_policy`]):
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
            policy: self.handle.cache(),
            reporter: self.reporter.clone(),
        }
    }
}

/// The service [`CorsairLayer`] wraps around an inner service.
#[derive(Debug, Clone)]
pub struct Corsair<S> {
    inner: S,
    policy: PolicyCache,
    reporter: Option<Reporter>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Corsair<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    // Local answers (preflights, strict blocks) need an empty body of the
    // inner service's type, as with tower-http's CorsLayer.
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The decision borrows the request, so it ends before the request
        // moves on: what the response needs is taken along (shared bytes,
        // no copies), or a local answer is built while the policy is
        // borrowed (its header values cloned once, straight into it).
        let headers = {
            let parts = RequestParts {
                method: req.method(),
                headers: req.headers(),
            };
            let decision = enforce::decide(self.policy.current(), &parts, self.reporter.as_ref());
            if let Some(res) = enforce::local_answer(&decision, ResBody::default) {
                return ResponseFuture {
                    state: State::Local { res: Some(res) },
                };
            }
            decision.forward_headers()
        };
        ResponseFuture {
            state: State::Inner {
                future: self.inner.call(req),
                headers: Some(headers),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Corsair`]: a local answer, or the inner
    /// service's response with the decision's headers written into it.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Local { res: Option<Response<B>> },
        Inner { #[pin] future: F, headers: Option<ForwardHeaders> },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Local { res } => match res.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => panic!("corsair ResponseFuture polled after completion"),
            },
            StateProj::Inner { future, headers } => {
                let mut res = ready!(future.poll(cx))?;
                // Taken, so its values move into the response: no clones.
                if let Some(headers) = headers.take() {
                    headers.apply(res.headers_mut());
                }
                Poll::Ready(Ok(res))
            }
        }
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
