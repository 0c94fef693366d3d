//! Shared pieces of the proxy tests: real upstream sockets that misbehave
//! in the ways a gateway must survive, a raw HTTP/1.1 client that shows the
//! exact response head, a captured log, and (re-exported) the workspace's
//! `eventually`.

#![allow(dead_code)] // each test binary uses its own subset

#[allow(unused_imports)] // each test binary uses its own subset
pub use corsair_test_support::eventually;

use corsair_agent::engine::{Policy, PolicySpec};
use corsair_agent::handle::{ActivePolicy, PolicyHandle};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Test errors.
pub type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The longest any single read or exchange may take before the test fails
/// (generous: the machine is shared; nothing waits this long when things work).
pub const STEP: Duration = Duration::from_secs(20);

/// Everything a `tracing` subscriber writes, for the tests that read a
/// log: pass a clone to `with_writer(move || log.clone())`.
#[derive(Clone, Default)]
pub struct Log(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = self.0.lock() {
            log.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// Collects this thread's `tracing` lines at `level` and above, without
    /// colours, until the guard is dropped. On a current-thread runtime
    /// (`#[tokio::test]`'s default) every task logs here.
    pub fn capture(level: tracing::Level) -> (Log, tracing::subscriber::DefaultGuard) {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    /// What was written so far, as text.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default()
    }
}

/// A handle holding `spec`, compiled.
pub fn handle_with(spec: &PolicySpec) -> Result<PolicyHandle, AnyError> {
    let handle = PolicyHandle::new();
    handle.store(Some(Arc::new(ActivePolicy {
        service: "api".into(),
        revision: 1,
        policy: Policy::compile(spec)?,
    })));
    Ok(handle)
}

/// A loopback port nothing listens on, held for as long as the value
/// lives: connecting to [`RefusedPort::addr`] is refused at once.
pub struct RefusedPort {
    /// The port's address.
    pub addr: SocketAddr,
    _bound: tokio::net::TcpSocket,
}

/// A [`RefusedPort`]. The port stays bound (without `SO_REUSEADDR`, never
/// listening) rather than bound and closed: a closed port can be taken by
/// another test process running at the same time, whose listener would
/// then answer where a refusal was expected.
pub async fn refused_port() -> Result<RefusedPort, AnyError> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    Ok(RefusedPort {
        addr: socket.local_addr()?,
        _bound: socket,
    })
}

/// A loopback listener whose accept queue is full and that never accepts:
/// the kernel drops further SYNs, so a connect hangs. Keep the value alive
/// for as long as the hang is wanted.
pub struct NeverAccepts {
    /// Where it listens.
    pub addr: SocketAddr,
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
}

impl NeverAccepts {
    /// Binds with a backlog of 1 and connects until a connect no longer
    /// completes (the queue holds backlog + 1 on Linux).
    pub async fn start() -> Result<Self, AnyError> {
        let socket = TcpSocket::new_v4()?;
        socket.bind("127.0.0.1:0".parse()?)?;
        let listener = socket.listen(1)?;
        let addr = listener.local_addr()?;
        let mut queued = Vec::new();
        for _ in 0..64 {
            // A loopback handshake completes in the kernel, without this
            // process; a connect still pending after a second was dropped.
            match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await {
                Ok(stream) => queued.push(stream?),
                Err(_pending) => {
                    return Ok(Self {
                        addr,
                        _listener: listener,
                        _queued: queued,
                    });
                }
            }
        }
        Err("the accept queue never filled up".into())
    }
}

/// How a [`TestUpstream`] treats each connection it accepts.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Reads the request head and answers `200` with `Access-Control-*`
    /// headers of its own (which the proxy must replace).
    Ok,
    /// Accepts and never answers (never reads, either).
    Silent,
    /// Reads the request head and answers `101 Switching Protocols`.
    SwitchesProtocols,
    /// Reads the request head and answers `200` with
    /// `Transfer-Encoding: gzip, chunked` (a coding the proxy cannot pass on).
    GzipCoded,
    /// Reads everything it is sent and notes when the proxy closes the
    /// connection (see [`TestUpstream::closed`]).
    ReadsUntilClosed,
    /// Reads the request head and answers as [`Behaviour::Ok`] does, this
    /// long after.
    Late(Duration),
    /// Reads the request head and answers `200` at once with a chunked
    /// body, `ok\n` then, this long after, `done\n`.
    Trickles(Duration),
}

/// A real upstream on loopback that counts the connections it accepted.
pub struct TestUpstream {
    /// `http://127.0.0.1:port`.
    pub url: String,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl TestUpstream {
    /// Starts one on a fresh port.
    pub async fn start(behaviour: Behaviour) -> Result<Self, AnyError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (a, c) = (Arc::clone(&accepted), Arc::clone(&closed));
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                match behaviour {
                    Behaviour::Silent => held.push(stream),
                    Behaviour::Ok | Behaviour::SwitchesProtocols | Behaviour::GzipCoded => {
                        tokio::spawn(async move {
                            if read_head(&mut stream).await.is_err() {
                                return;
                            }
                            let answer: &[u8] = match behaviour {
                                Behaviour::Ok => {
                                    b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\
                                      access-control-allow-origin: *\r\n\r\nok\n"
                                }
                                Behaviour::GzipCoded => {
                                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\
                                      \r\n3\r\nok\n\r\n0\r\n\r\n"
                                }
                                _ => {
                                    b"HTTP/1.1 101 Switching Protocols\r\n\
                                      connection: upgrade\r\nupgrade: surprise\r\n\r\n"
                                }
                            };
                            let _ = stream.write_all(answer).await;
                            // Hold the connection until the proxy drops it.
                            let mut sink = [0u8; 256];
                            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                        });
                    }
                    Behaviour::Late(after) | Behaviour::Trickles(after) => {
                        tokio::spawn(async move {
                            if read_head(&mut stream).await.is_err() {
                                return;
                            }
                            let (first, last): (&[u8], &[u8]) = match behaviour {
                                Behaviour::Late(_) => {
                                    (b"", b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")
                                }
                                _ => (
                                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                                      3\r\nok\n\r\n",
                                    b"5\r\ndone\n\r\n0\r\n\r\n",
                                ),
                            };
                            if stream.write_all(first).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(after).await;
                            let _ = stream.write_all(last).await;
                            let mut sink = [0u8; 256];
                            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                        });
                    }
                    Behaviour::ReadsUntilClosed => {
                        let c = Arc::clone(&c);
                        tokio::spawn(async move {
                            let mut sink = [0u8; 256];
                            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                            c.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                }
            }
        });
        Ok(Self {
            url,
            accepted,
            closed,
        })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections the proxy closed so far ([`Behaviour::ReadsUntilClosed`]).
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Reads an HTTP/1.x head up to the blank line.
pub async fn read_head(stream: &mut TcpStream) -> Result<String, AnyError> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(format!(
                "connection closed after {:?}",
                String::from_utf8_lossy(&head)
            )
            .into());
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8(head)?)
}

/// A response as it came over the wire: status and every header line
/// (names lowercased, values as sent, in order), and the body when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// `(name, value)` per header line.
    pub headers: Vec<(String, String)>,
    /// The body ([`exchange`] reads it to the end; empty otherwise).
    pub body: String,
}

impl Head {
    /// Parses a head read by [`read_head`].
    pub fn parse(raw: &str) -> Result<Self, AnyError> {
        let mut lines = raw.split("\r\n").filter(|l| !l.is_empty());
        let status_line = lines.next().ok_or("empty response")?;
        let status = status_line
            .split(' ')
            .nth(1)
            .ok_or("no status code")?
            .parse()?;
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').ok_or("header line without ':'")?;
                Ok((name.to_ascii_lowercase(), value.trim().to_string()))
            })
            .collect::<Result<_, AnyError>>()?;
        Ok(Self {
            status,
            headers,
            body: String::new(),
        })
    }

    /// The header lines except `date` (the only one that changes per run),
    /// sorted by name.
    pub fn stable_headers(&self) -> Vec<(String, String)> {
        let mut h: Vec<_> = self
            .headers
            .iter()
            .filter(|(n, _)| n != "date")
            .cloned()
            .collect();
        h.sort();
        h
    }

    /// The value of header `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` (raw bytes, with `connection: close`) to `addr` and
/// returns the response, body read until the server closes.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Result<Head, AnyError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let raw = tokio::time::timeout(STEP, read_head(&mut stream)).await??;
    let mut head = Head::parse(&raw)?;
    let mut body = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut body)).await??;
    head.body = String::from_utf8(body)?;
    Ok(head)
}

/// An HTTP/2 (h2c, prior knowledge) client connection to `addr`.
pub async fn h2c<B>(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http2::SendRequest<B>, AnyError>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Ok(h2c_with_task(addr).await?.0)
}

/// [`h2c`], and the task that runs the client's side of the connection
/// (answering the server's pings, as any HTTP/2 client does): it ends
/// when the connection does.
pub async fn h2c_with_task<B>(
    addr: SocketAddr,
) -> Result<
    (
        hyper::client::conn::http2::SendRequest<B>,
        tokio::task::JoinHandle<hyper::Result<()>>,
    ),
    AnyError,
>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await?;
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await?;
    Ok((sender, tokio::spawn(conn)))
}

/// Serves `proxy` on a fresh loopback port until the returned sender is
/// used or dropped; returns the port's address.
pub async fn serve_proxy(
    proxy: corsair_agent::proxy::Proxy,
) -> Result<(SocketAddr, tokio::sync::oneshot::Sender<()>), AnyError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(corsair_agent::proxy::serve(listener, proxy, async {
        let _ = stopped.await;
    }));
    Ok((addr, stop))
}
