//! The request body on its way to the upstream, with an idle timeout.
//!
//! A client that stops sending its body mid-way would otherwise hold an
//! upstream connection (and the upstream's request) open for as long as the
//! client keeps its socket. As nginx's `client_body_timeout` does, the
//! timeout bounds the wait for the *next* piece of the body, not the whole
//! upload: a slow but steady upload is fine. When it fires the body fails
//! with [`BodyTimeout`]; the client connection to the upstream is then
//! dropped (the upstream sees the connection close) and the client gets a
//! 408 (see [`super::answer::Failure::RequestBodyTimeout`]).

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The client sent nothing of its request body for the configured timeout.
#[derive(Debug, thiserror::Error)]
#[error("no part of the request body arrived for {0:?}")]
pub struct BodyTimeout(pub Duration);

/// The client's request body, failing with [`BodyTimeout`] when the next
/// frame takes longer than the timeout to arrive.
#[derive(Debug)]
pub struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    // Armed on the first wait only, so a body that is already complete (or
    // absent, as on a GET) costs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    /// Wraps `inner`; `timeout` is the longest wait for each frame.
    pub fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            sleep: None,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(sleep) = &mut this.sleep {
                sleep.as_mut().reset(Instant::now() + this.timeout);
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let timeout = this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimeout(timeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
