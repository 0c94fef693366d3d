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
//!
//! The body also reports whose turn it is ([`Turn`]): while the proxy waits
//! for the client's next piece, `--upstream-timeout` does not run; it runs
//! while the upstream holds things up (connecting, not reading the body yet,
//! or, once the body is all sent, producing its response headers).

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// Who the request is waiting on, as seen by the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// The upstream side asked for more body and the client has not sent it
    /// yet: only `--request-body-timeout` runs.
    Client,
    /// The upstream side has not asked for more body yet (connecting, or
    /// still writing the last piece): `--upstream-timeout` runs.
    Upstream,
    /// The whole body has been handed over (or failed): from here on the
    /// wait is for the upstream's response headers.
    Done,
}

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
    // None for a body that was complete from the start (nothing to report).
    turn: Option<watch::Sender<Turn>>,
}

impl TimedBody {
    /// Wraps `inner`; `timeout` is the longest wait for each frame. The
    /// receiver follows the body's [`Turn`] (every change after a piece of
    /// body counts as progress); it is `None` when the body is empty from
    /// the start (a GET), whose wait for the upstream starts at once.
    pub fn new(inner: Incoming, timeout: Duration) -> (Self, Option<watch::Receiver<Turn>>) {
        let (turn, rx) = if inner.is_end_stream() {
            (None, None)
        } else {
            let (tx, rx) = watch::channel(Turn::Upstream);
            (Some(tx), Some(rx))
        };
        let body = Self {
            inner,
            timeout,
            sleep: None,
            turn,
        };
        (body, rx)
    }

    fn report(&mut self, turn: Turn) {
        if let Some(tx) = &self.turn {
            if turn == Turn::Client {
                tx.send_if_modified(|t| std::mem::replace(t, turn) != turn);
            } else {
                // Always notify: a new piece of body restarts the wait.
                tx.send_replace(turn);
            }
            if turn == Turn::Done {
                self.turn = None;
            }
        }
    }
}

impl Drop for TimedBody {
    fn drop(&mut self) {
        self.report(Turn::Done);
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
            let more = matches!(frame, Some(Ok(_))) && !this.inner.is_end_stream();
            this.report(if more { Turn::Upstream } else { Turn::Done });
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        this.report(Turn::Client);
        let timeout = this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(sleep.as_mut().poll(cx));
        this.report(Turn::Done);
        Poll::Ready(Some(Err(Box::new(BodyTimeout(timeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
