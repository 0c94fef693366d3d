//! WebSocket upgrades through the proxy.
//!
//! An HTTP/1.1 request with `Connection: upgrade` and `Upgrade: websocket`
//! keeps them on the way to the upstream (everything else hop-by-hop is
//! still stripped); any other upgrade (`h2c`, …) is forwarded as a plain
//! request. When the upstream answers `101 Switching Protocols`, the
//! client's and the upstream's connections are handed over by hyper and
//! spliced byte for byte until either side closes. Any other answer is
//! relayed as a normal response.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::Instrument;

/// `Upgrade: websocket` when `req` asks for a WebSocket upgrade: an HTTP/1.1
/// request whose `Connection` header lists `upgrade` and whose `Upgrade`
/// header lists `websocket` (tokens compared case-insensitively). Other
/// upgrades (`h2c`, anything else) are not tunnelled: the request goes on
/// as a plain one, its `Connection`/`Upgrade` stripped, so nothing reaches
/// the client past the CORS headers applied to a normal response.
pub fn requested<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let asks = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !asks {
        return None;
    }
    let websocket = req
        .headers()
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        // A protocol token may carry a version: `websocket/13`.
        .any(|token| {
            let name = token.trim().split('/').next().unwrap_or_default();
            name.eq_ignore_ascii_case("websocket")
        });
    websocket.then(|| HeaderValue::from_static("websocket"))
}

/// Puts the upgrade request's own hop-by-hop headers back after the
/// general strip, so the upstream sees the same request for an upgrade.
pub fn restore(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, upgrade);
}

/// The upgraded connections (WebSocket tunnels) still open, for the
/// drain: hyper hands a connection over once its `101` is sent, so its
/// graceful shutdown no longer waits for it, and without this a stop would
/// cut every tunnel at once instead of giving it `--drain-timeout` to end.
/// Each tunnel holds a receiver of a watch channel that carries nothing;
/// [`Tunnels::closed`] waits until none is held. Clones share the count.
#[derive(Debug, Clone)]
pub struct Tunnels(std::sync::Arc<tokio::sync::watch::Sender<()>>);

impl Default for Tunnels {
    fn default() -> Self {
        // The first receiver is dropped at once: no tunnel is open yet.
        Tunnels(std::sync::Arc::new(tokio::sync::watch::channel(()).0))
    }
}

impl Tunnels {
    /// Resolves once every tunnel spliced so far has closed (at once when
    /// none is open).
    pub async fn closed(&self) {
        self.0.closed().await;
    }
}

/// Splices the two upgraded connections once both are handed over; runs in
/// its own task, outliving the request that set it up, and counted in
/// `tunnels` until both sides are done.
pub fn splice(client: OnUpgrade, upstream: OnUpgrade, tunnels: &Tunnels) {
    let open = tunnels.0.subscribe();
    tokio::spawn(
        async move {
            let _open = open;
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(both) => both,
                Err(e) => {
                    tracing::debug!(error = %e, "protocol upgrade did not complete");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
                Err(e) => tracing::debug!(error = %e, "upgraded connection ended with error"),
            }
        }
        .instrument(tracing::debug_span!("upgraded")),
    );
}
