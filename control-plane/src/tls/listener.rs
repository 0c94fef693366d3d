//! A bound listener, plain TCP or TLS. The TLS one accepts on a task of its
//! own and handshakes every connection on another, so a slow or hostile
//! client never holds up the next one; finished handshakes are handed over
//! through a channel.

use super::{ServerTls, Side};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::Instrument as _;

/// How long a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a refused connection is drained before it is dropped.
const LINGER: Duration = Duration::from_secs(1);

/// Handshaken connections waiting for the server to take them.
const READY_QUEUE: usize = 64;

/// What a server serves on: the bound socket, with or without TLS.
#[derive(Debug)]
pub enum Listener {
    /// Plain TCP (no `--tls-*` flags).
    Plain(TcpListener),
    /// TLS with the certificate current at each handshake.
    Tls(TlsListener),
}

impl From<TcpListener> for Listener {
    fn from(listener: TcpListener) -> Self {
        Listener::Plain(listener)
    }
}

impl Listener {
    /// `listener` as is, or behind TLS for `side` when `tls` is given.
    pub fn new(listener: TcpListener, tls: Option<&ServerTls>, side: Side) -> Self {
        match tls {
            Some(tls) => Listener::Tls(TlsListener::new(listener, tls.clone(), side)),
            None => Listener::Plain(listener),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Listener::Plain(l) => l.local_addr(),
            Listener::Tls(l) => axum::serve::Listener::local_addr(l),
        }
    }
}

/// TLS connections accepted on a bound TCP listener. Dropping it stops
/// accepting and closes the socket.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: std::io::Result<SocketAddr>,
}

impl TlsListener {
    /// Starts accepting on `listener` (needs a Tokio runtime).
    pub fn new(listener: TcpListener, tls: ServerTls, side: Side) -> Self {
        let local_addr = listener.local_addr();
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(
            accept_loop(listener, tls, side, tx)
                .instrument(tracing::info_span!("tls_accept", listener = side.name())),
        );
        Self { ready, local_addr }
    }

    /// The next handshaken connection and its peer address; `None` once
    /// the accept loop has ended (it only ends when this is dropped).
    pub async fn next(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.ready.recv().await
    }

    /// The connections as a stream, for tonic's `serve_with_incoming_shutdown`.
    pub fn into_stream(
        self,
    ) -> impl tokio_stream::Stream<Item = std::io::Result<TlsStream<TcpStream>>> + Send + 'static
    {
        use tokio_stream::StreamExt as _;
        tokio_stream::wrappers::ReceiverStream::new(self.ready).map(|(stream, _)| Ok(stream))
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.next().await {
            Some(connection) => connection,
            // Cannot happen while `self` is alive; never busy-loop if it does.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local_addr {
            Ok(addr) => Ok(*addr),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: ServerTls,
    side: Side,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            () = ready.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(tls.current(side));
        let ready = ready.clone();
        tokio::spawn(
            async move {
                let handshake = acceptor.accept(tcp).into_fallible();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                    Ok(Ok(stream)) => {
                        let _ = ready.send((stream, peer)).await;
                    }
                    // A TCP probe or port scan: connected, said nothing.
                    Ok(Err((error, _))) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                        tracing::debug!(%peer, %error, "connection closed before the TLS handshake");
                    }
                    Ok(Err((error, tcp))) => {
                        tracing::warn!(%peer, %error, "TLS handshake failed; connection refused");
                        linger(tcp).await;
                    }
                    Err(_) => {
                        tracing::warn!(%peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out");
                    }
                }
            }
            .in_current_span(),
        );
    }
}

/// Closes a refused connection gently: rustls has written its alert (why
/// the handshake failed); a plain close with the client's unread data still
/// queued would send a reset that can destroy the alert before the client
/// reads it, leaving it only "connection closed". So: FIN, then discard
/// what the client still sends, for a moment.
async fn linger(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
