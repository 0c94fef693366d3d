//! One task per client connection: the client connection's future and its
//! upstream connections' futures, polled together.
//!
//! Each side gets its own waker, which marks that side as woken: a poll of
//! [`Drive`] polls only the sides that were woken, and keeps going while
//! the upstream side wakes the client side (a response handed back), so a
//! response reaches the client in the poll that read it. A request handed
//! to the upstream side is written on the task's next turn (one self
//! wake-up, no other task involved), which batches the writes to the
//! upstream of every connection that one readiness event woke.

use super::conns::{ConnFuture, Upstreams};
use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};

/// Rounds of side-to-side polling in one task poll before yielding to the
/// scheduler (a side that wakes itself on every poll, as tokio's
/// cooperative budget makes resources do once it runs out, would otherwise
/// keep the task running forever).
const MAX_ROUNDS: usize = 16;

/// Which sides were woken since they were last polled, and the task's
/// waker for wake-ups that come while no poll is under way.
#[derive(Default)]
struct Woken {
    client: AtomicBool,
    upstream: AtomicBool,
    /// A poll of [`Drive`] is under way: it will see the marks itself.
    polling: AtomicBool,
    task: AtomicWaker,
}

/// The waker handed to one side.
struct Side {
    woken: Arc<Woken>,
    upstream: bool,
}

impl Wake for Side {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let flag = if self.upstream {
            &self.woken.upstream
        } else {
            &self.woken.client
        };
        flag.store(true, SeqCst);
        if !self.woken.polling.load(SeqCst) {
            self.woken.task.wake();
        }
    }
}

/// The client connection's future `F` together with its upstream
/// connections, in one task. Resolves with `F`'s output once `F` is done and
/// every upstream connection has ended (one handing over a WebSocket
/// upgrade finishes doing so; idle ones close).
pub struct Drive<F: Future> {
    client: Option<Pin<Box<F>>>,
    output: Option<F::Output>,
    upstreams: Option<Upstreams>,
    conns: Vec<ConnFuture>,
    woken: Arc<Woken>,
    client_waker: Waker,
    upstream_waker: Waker,
}

impl<F: Future> Drive<F>
where
    F::Output: Unpin,
{
    /// Drives `client` with `upstreams`' connections (none: `client` alone).
    pub fn new(client: F, upstreams: Option<Upstreams>) -> Self {
        let woken = Arc::new(Woken::default());
        // Both sides start out due for a poll.
        woken.client.store(true, SeqCst);
        woken.upstream.store(true, SeqCst);
        let side = |upstream| {
            Waker::from(Arc::new(Side {
                woken: Arc::clone(&woken),
                upstream,
            }))
        };
        let upstream_waker = side(true);
        if let Some(upstreams) = &upstreams {
            upstreams.register_drive(upstream_waker.clone());
        }
        Self {
            client: Some(Box::pin(client)),
            output: None,
            upstreams,
            conns: Vec::new(),
            client_waker: side(false),
            upstream_waker,
            woken,
        }
    }

    /// Polls every upstream connection (taking over newly opened ones);
    /// finished ones are dropped.
    fn poll_upstreams(&mut self) {
        if let Some(upstreams) = &self.upstreams {
            upstreams.take_opened(&mut self.conns);
        }
        let mut cx = Context::from_waker(&self.upstream_waker);
        self.conns
            .retain_mut(|conn| match conn.as_mut().poll(&mut cx) {
                Poll::Pending => true,
                Poll::Ready(Ok(())) => false,
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "upstream connection closed with error");
                    false
                }
            });
    }

    fn poll_client(&mut self) {
        let Some(client) = &mut self.client else {
            return;
        };
        let mut cx = Context::from_waker(&self.client_waker);
        if let Poll::Ready(out) = client.as_mut().poll(&mut cx) {
            self.client = None;
            self.output = Some(out);
            if let Some(upstreams) = &self.upstreams {
                upstreams.close();
            }
            // Idle connections now see their senders gone and close.
            self.woken.upstream.store(true, SeqCst);
        }
    }
}

impl<F: Future> Future for Drive<F>
where
    F::Output: Unpin,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Every field is Unpin (the client future is boxed).
        let this = self.get_mut();
        this.woken.task.register(cx.waker());
        this.woken.polling.store(true, SeqCst);
        for _ in 0..MAX_ROUNDS {
            // Upstream first: a response that just arrived is then picked up
            // by the client connection in the same round.
            if this.woken.upstream.swap(false, SeqCst) {
                this.poll_upstreams();
            }
            if this.woken.client.swap(false, SeqCst) {
                this.poll_client();
                // A connection the request just opened gets its first poll
                // (writing the request) now.
                if let Some(upstreams) = &this.upstreams
                    && upstreams.take_opened(&mut this.conns)
                {
                    this.woken.upstream.store(true, SeqCst);
                }
                // A request just handed to an upstream connection is written
                // on this task's next turn, after the other connections the
                // same readiness event woke have handed over theirs: the
                // upstream (on the same CPU in a sidecar) then wakes once for
                // several requests instead of preempting us for each one.
                if this.client.is_some()
                    && this.woken.upstream.load(SeqCst)
                    && !this.woken.client.load(SeqCst)
                {
                    this.woken.polling.store(false, SeqCst);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            if this.client.is_none() && this.conns.is_empty() {
                this.woken.polling.store(false, SeqCst);
                if let Some(out) = this.output.take() {
                    return Poll::Ready(out);
                }
            }
            if !this.woken.client.load(SeqCst) && !this.woken.upstream.load(SeqCst) {
                this.woken.polling.store(false, SeqCst);
                // A wake-up from another thread between the check and the
                // store above saw `polling` still set: look once more.
                if !this.woken.client.load(SeqCst) && !this.woken.upstream.load(SeqCst) {
                    return Poll::Pending;
                }
                this.woken.polling.store(true, SeqCst);
            }
        }
        this.woken.polling.store(false, SeqCst);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
