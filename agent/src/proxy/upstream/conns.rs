//! The upstream connections of one client connection, driven in that client
//! connection's task.
//!
//! Each client connection gets its own upstream connection(s), opened when
//! its first forwarded request needs one and reused for its later requests:
//! no shared, keyed pool to check out of and return to, and no separate task
//! per upstream connection (hyper-util's pooled client hands every request
//! to such a task and the response back, two extra task wake-ups per
//! request). An HTTP/1.1 client connection sends one request at a time, so
//! it keeps one upstream connection; concurrent requests (an HTTP/2 client)
//! open more, of which up to [`MAX_IDLE`] are kept for reuse.
//!
//! [`super::drive::Drive`] runs the client connection's future and its
//! upstream connections' futures together in one task. An upstream connection the
//! upstream closes ends there and is replaced on the next request. A request
//! that a reused connection never wrote (the upstream closed it just then)
//! is retried once on a fresh connection, as the pooled client did.

use super::{ConnectTimedOut, Connector, ExchangeError};
use crate::proxy::body::TimedBody;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use tower::ServiceExt;

/// Idle upstream connections kept per client connection; more are closed
/// once their exchange is over (only concurrent requests open more than one).
pub const MAX_IDLE: usize = 4;

/// One upstream connection's future (hyper's, unnameable): resolves when
/// the connection closes or has handed itself over for an upgrade.
pub(super) type ConnFuture = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

#[derive(Default)]
struct Shared {
    /// Senders of open upstream connections, most recently used last.
    idle: Vec<SendRequest<TimedBody>>,
    /// Connections opened since [`super::drive::Drive`] last took them over.
    opened: Vec<ConnFuture>,
    /// The client connection is over: close instead of keeping.
    closed: bool,
    /// Wakes [`super::drive::Drive`]'s upstream side: a connection opened
    /// by a request that runs in a task of its own (an HTTP/2 stream, which
    /// hyper spawns) must be polled, and nothing else would wake the drive.
    drive: Option<std::task::Waker>,
}

/// The upstream side of one client connection: cheap to clone (one
/// reference count), shared by its requests and its [`Drive`].
#[derive(Clone)]
pub struct Upstreams {
    connector: Arc<Connector>,
    shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").finish_non_exhaustive()
    }
}

impl Upstreams {
    /// No connection yet: the first request opens one through `connector`.
    pub fn new(connector: Arc<Connector>) -> Self {
        Self {
            connector,
            shared: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // The lock guards plain data only; a panic elsewhere leaves it usable.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `req` (origin-form URI, see [`super::super::forward::Upstream::rewrite`])
    /// on an idle upstream connection, or on a new one; `Host` is replaced
    /// as `Connector::replaced_host` says, and a missing one set to the
    /// upstream's. Resolves with the response head; its body streams as
    /// the client connection is driven.
    pub async fn send(
        &self,
        mut req: Request<TimedBody>,
    ) -> Result<Response<Incoming>, ExchangeError> {
        let host = match self.connector.replaced_host() {
            Some(host) => Some(host),
            None => (!req.headers().contains_key(header::HOST)).then_some(&self.connector.host),
        };
        if let Some(host) = host {
            req.headers_mut().insert(header::HOST, host.clone());
        }
        let reused = self.take_ready();
        let fresh = reused.is_none();
        let mut sender = match reused {
            Some(sender) => sender,
            // Boxed: connecting (a TLS stream in the making) is large and
            // rare, and would otherwise grow every request's future.
            None => Box::pin(self.open()).await?,
        };
        let sent = sender.try_send_request(req);
        self.keep(sender);
        match sent.await {
            Ok(response) => Ok(response),
            Err(mut e) => match e.take_message() {
                // Never written: the reused connection closed just then.
                Some(req) if !fresh => {
                    tracing::debug!(error = %e.error(), "idle upstream connection closed; retrying on a new one");
                    let mut sender = Box::pin(self.open()).await?;
                    let sent = sender.try_send_request(req);
                    self.keep(sender);
                    sent.await
                        .map_err(|e| ExchangeError::Exchange(e.into_error()))
                }
                _ => Err(ExchangeError::Exchange(e.into_error())),
            },
        }
    }

    /// Moves the connections opened since the last call into `conns`;
    /// whether there were any.
    pub(super) fn take_opened(&self, conns: &mut Vec<ConnFuture>) -> bool {
        let mut shared = self.lock();
        let any = !shared.opened.is_empty();
        conns.append(&mut shared.opened);
        any
    }

    /// Registers the waker [`Self::open`] wakes once it has a new
    /// connection for the drive to take over.
    pub(super) fn register_drive(&self, waker: std::task::Waker) {
        self.lock().drive = Some(waker);
    }

    /// The client connection is over: idle connections are let go (their
    /// senders dropped, so they close), none is kept from now on.
    pub(super) fn close(&self) {
        let mut shared = self.lock();
        shared.closed = true;
        shared.idle.clear();
    }

    /// An idle connection ready for a request; closed ones are dropped.
    fn take_ready(&self) -> Option<SendRequest<TimedBody>> {
        let mut shared = self.lock();
        shared.idle.retain(|s| !s.is_closed());
        let at = shared.idle.iter().rposition(SendRequest::is_ready)?;
        Some(shared.idle.swap_remove(at))
    }

    fn keep(&self, sender: SendRequest<TimedBody>) {
        let mut shared = self.lock();
        if !shared.closed && shared.idle.len() < MAX_IDLE {
            shared.idle.push(sender);
        }
    }

    /// Connects (TLS for `https://`, trusting `--upstream-ca-file` as it is
    /// now) and hands the connection to
    /// [`super::drive::Drive`]. Resolution, TCP and TLS together get
    /// `--upstream-connect-timeout`, as the fast path's connect does: a host
    /// that accepts TCP and never finishes the handshake is a 504 "timed out
    /// connecting" after it, not a wait for `--upstream-timeout`.
    async fn open(&self) -> Result<SendRequest<TimedBody>, ExchangeError> {
        let limit = self.connector.connect_timeout;
        // The CA file as it is now: a rotated one is trusted without a restart.
        let connecting = self
            .connector
            .tls
            .current()
            .oneshot(self.connector.uri.clone());
        let io = match tokio::time::timeout(limit, connecting).await {
            Ok(connected) => connected.map_err(ExchangeError::Connect)?,
            Err(_) => return Err(ExchangeError::Connect(Box::new(ConnectTimedOut(limit)))),
        };
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(ExchangeError::Handshake)?;
        let mut shared = self.lock();
        shared.opened.push(Box::pin(conn.with_upgrades()));
        // From an HTTP/1.1 request this lands while the drive polls the
        // client side (a flag it sees); from an HTTP/2 stream's own task it
        // is the only wake-up the drive gets: without it the request waited
        // for the client to send anything else, or timed out.
        if let Some(drive) = &shared.drive {
            drive.wake_by_ref();
        }
        Ok(sender)
    }
}

/// The upstream's authority as `Host` (a request gets it when the client
/// named none, and always under `--upstream-host-header upstream`): its
/// host, with its port unless it is the scheme's default (as hyper-util's
/// client writes it).
pub(super) fn host_value(authority: &http::uri::Authority, https: bool) -> HeaderValue {
    let default = if https { 443 } else { 80 };
    let text = match authority.port_u16() {
        Some(port) if port != default => format!("{}:{port}", authority.host()),
        _ => authority.host().to_owned(),
    };
    // A parsed authority's host and port are always valid header text.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("localhost"))
}
