//! The idle limit of an HTTP/2 connection.
//!
//! hyper closes an HTTP/1.1 connection that waits too long for its next
//! request head (`header_read_timeout`), but has no such limit for HTTP/2:
//! a connection with no open stream whose client answers pings stays open
//! for as long as the client likes, one file descriptor each. Here the
//! service given to hyper counts the requests in flight on its connection
//! ([`Counted`], an answer's body included) and notes when the last one
//! ended; the connection's own future ([`Served`]) checks that on a timer
//! and shuts the connection down gracefully (GOAWAY, then close) once it
//! has been idle for the limit.
//!
//! A graceful HTTP/2 shutdown lets every stream the server has accepted
//! finish, so a request that starts while the timer decides is still
//! answered; a client's request that crosses the GOAWAY is refused as
//! unprocessed, which clients retry on a new connection.

use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

#[cfg(test)]
mod tests;

/// One connection's requests in flight, and when the last one ended.
/// Shared by the connection's service (which writes it, a few atomic
/// operations per request) and its [`Idle`] timer (which reads it).
#[derive(Debug)]
pub(in crate::proxy) struct Activity {
    /// When the connection started; `last_end` counts from here.
    base: Instant,
    in_flight: AtomicUsize,
    /// Microseconds from `base` to the end of the latest request (0: none
    /// has ended, the connection has been idle since it started).
    last_end: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
        }
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Since when no request has been in flight; `None`: one is now.
    fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.base + Duration::from_micros(self.last_end.load(Ordering::Acquire)))
    }
}

/// One request in flight: from the service's call until its answer's body
/// has ended (or the request was dropped: a reset stream, a failure).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let since_base = Instant::now().saturating_duration_since(self.0.base);
        let micros = u64::try_from(since_base.as_micros()).unwrap_or(u64::MAX);
        // fetch_max: of two requests ending together, the later end counts
        // whichever stores first.
        self.0.last_end.fetch_max(micros, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The timer of one connection's idle limit.
#[derive(Debug)]
pub(in crate::proxy) struct Idle {
    activity: Arc<Activity>,
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl Idle {
    /// A timer for a connection starting now, idle so far, closed once no
    /// request has been in flight for `limit`.
    pub(in crate::proxy) fn new(limit: Duration) -> Self {
        let activity = Arc::new(Activity::new());
        let sleep = Box::pin(tokio::time::sleep_until(activity.base + limit));
        Self {
            activity,
            limit,
            sleep,
        }
    }

    /// What the connection's [`Counted`] service records into.
    pub(in crate::proxy) fn activity(&self) -> Arc<Activity> {
        Arc::clone(&self.activity)
    }

    /// Ready once no request has been in flight for the limit. While one
    /// is, the timer looks again a limit later (a busy connection costs one
    /// timer wake-up per limit, not one per request).
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            let now = Instant::now();
            let next = match self.activity.idle_since() {
                Some(since) if since + self.limit <= now => return Poll::Ready(()),
                Some(since) => since + self.limit,
                None => now + self.limit,
            };
            self.sleep.as_mut().reset(next);
        }
    }
}

/// A connection's service `S`, counting its requests in flight into an
/// [`Activity`] (none: counting nothing, as on HTTP/1.1 connections).
#[derive(Debug, Clone)]
pub(in crate::proxy) struct Counted<S> {
    inner: S,
    activity: Option<Arc<Activity>>,
}

impl<S> Counted<S> {
    /// `inner`, counting into `activity` when there is one.
    pub(in crate::proxy) fn new(inner: S, activity: Option<Arc<Activity>>) -> Self {
        Self { inner, activity }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Counted<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<CountedBody<B>>;
    type Error = S::Error;
    type Future = CountedFuture<S::Future>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        CountedFuture {
            in_flight: self.activity.as_ref().map(Activity::start),
            inner: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// A [`Counted`] service's answer on its way: the request stays in
    /// flight, and moves into the answer's body.
    pub(in crate::proxy) struct CountedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F, B, E> Future for CountedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<CountedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(response.map(|inner| CountedBody { inner, in_flight })))
    }
}

pin_project_lite::pin_project! {
    /// An answer's body `B`, its request in flight until it ends or is
    /// dropped.
    pub(in crate::proxy) struct CountedBody<B> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight>,
    }
}

impl<B> Body for CountedBody<B>
where
    B: Body,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if frame.is_none() {
            this.in_flight.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A hyper connection `C` that shuts down gracefully once `stop`
    /// resolves (a drain) or its [`Idle`] limit (if any) runs out, and
    /// then runs until hyper has finished it.
    pub(in crate::proxy) struct Served<C, D> {
        #[pin]
        conn: C,
        #[pin]
        stop: D,
        idle: Option<Idle>,
        polled: bool,
        shutting_down: bool,
    }
}

impl<C, D> Served<C, D> {
    /// `conn`, stopped by `stop` or `idle`.
    pub(in crate::proxy) fn new(conn: C, stop: D, idle: Option<Idle>) -> Self {
        Self {
            conn,
            stop,
            idle,
            polled: false,
            shutting_down: false,
        }
    }
}

impl<C, D> Future for Served<C, D>
where
    C: GracefulConnection,
    D: Future<Output = ()>,
{
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The connection reads the bytes it was handed (`sniff`'s, or the
        // fast path's) before a drain may stop it: until its first poll
        // hyper-util has not chosen a protocol, and a graceful shutdown
        // then cancels it outright, leaving a request already received
        // unanswered. After it, a shutdown lets that request finish.
        let first = !*this.polled;
        if first {
            *this.polled = true;
            if let Poll::Ready(done) = this.conn.as_mut().poll(cx) {
                return Poll::Ready(done);
            }
        }
        if !*this.shutting_down {
            let stopped = this.stop.poll(cx).is_ready();
            let idle = !stopped
                && this
                    .idle
                    .as_mut()
                    .is_some_and(|idle| idle.poll_expired(cx).is_ready());
            if idle {
                tracing::debug!(
                    "no request for the head timeout on an HTTP/2 connection; closing it"
                );
            }
            if stopped || idle {
                *this.shutting_down = true;
                this.conn.as_mut().graceful_shutdown();
                return this.conn.poll(cx);
            }
        }
        if first {
            // Polled above, and nothing changed since: its wakers are set.
            return Poll::Pending;
        }
        this.conn.poll(cx)
    }
}
