//! Each client connection's own upstream connection, over real sockets:
//! reused for that client connection's requests, one per client connection,
//! and replaced on the next request when the upstream closes it (with
//! `Connection: close`, or silently while idle, as a keep-alive timeout does).

mod proxy_support;

use corsair_agent::engine::PolicySpec;
use corsair_agent::proxy::{Proxy, serve};
use proxy_support::{AnyError, STEP, eventually, handle_with};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const APP: &str = "https://app.example.com";

/// What the upstream does with each connection after answering a request.
#[derive(Clone, Copy)]
enum After {
    /// Waits for the next request (keep-alive).
    Next,
    /// Answers with `Connection: close` and closes.
    SaysClose,
    /// Answers as if keeping the connection, then closes it anyway.
    SilentlyCloses,
}

/// A raw HTTP/1.1 upstream answering `200 ok`, counting the connections it
/// accepted and the ones it closed.
struct Upstream {
    url: String,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start(after: After) -> Result<Self, AnyError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (a, c) = (Arc::clone(&accepted), Arc::clone(&closed));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let c = Arc::clone(&c);
                tokio::spawn(async move {
                    while read_head(&mut stream).await.is_ok() {
                        let close = matches!(after, After::SaysClose);
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{}\r\nok",
                            if close { "connection: close\r\n" } else { "" }
                        );
                        if stream.write_all(answer.as_bytes()).await.is_err()
                            || !matches!(after, After::Next)
                        {
                            break;
                        }
                    }
                    drop(stream);
                    c.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Ok(Self {
            url,
            accepted,
            closed,
        })
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Reads up to the end of a head (`\r\n\r\n`); the bodies here are empty
/// (requests) or two bytes read separately (responses).
async fn read_head(stream: &mut TcpStream) -> Result<String, AnyError> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err("connection closed".into());
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// One GET on `client`'s keep-alive connection; the status line and the
/// granted origin.
async fn get(client: &mut TcpStream) -> Result<(String, bool), AnyError> {
    let request = format!("GET /x HTTP/1.1\r\nhost: api.test\r\norigin: {APP}\r\n\r\n");
    client.write_all(request.as_bytes()).await?;
    let head = tokio::time::timeout(STEP, read_head(client)).await??;
    let mut body = [0u8; 2];
    client.read_exact(&mut body).await?;
    assert_eq!(&body, b"ok", "{head}");
    let status = head.lines().next().unwrap_or_default().to_owned();
    let granted = head
        .to_ascii_lowercase()
        .contains(&format!("access-control-allow-origin: {APP}\r\n"));
    Ok((status, granted))
}

async fn start_proxy(upstream: &str) -> Result<SocketAddr, AnyError> {
    let handle = handle_with(&PolicySpec {
        origins: vec![APP.into()],
        ..PolicySpec::default()
    })?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let proxy = Proxy::new(handle, upstream)?;
    tokio::spawn(serve(listener, proxy, std::future::pending()));
    Ok(addr)
}

#[tokio::test]
async fn a_client_connection_reuses_its_upstream_connection() -> Result<(), AnyError> {
    let upstream = Upstream::start(After::Next).await?;
    let proxy = start_proxy(&upstream.url).await?;
    let mut first = TcpStream::connect(proxy).await?;
    for _ in 0..3 {
        assert_eq!(get(&mut first).await?, ("HTTP/1.1 200 OK".into(), true));
    }
    assert_eq!(
        upstream.accepted(),
        1,
        "three requests, one upstream connection"
    );
    // Another client connection gets its own.
    let mut second = TcpStream::connect(proxy).await?;
    assert_eq!(get(&mut second).await?, ("HTTP/1.1 200 OK".into(), true));
    assert_eq!(get(&mut first).await?, ("HTTP/1.1 200 OK".into(), true));
    assert_eq!(upstream.accepted(), 2);
    Ok(())
}

#[tokio::test]
async fn an_upstream_that_says_close_is_replaced_on_the_next_request() -> Result<(), AnyError> {
    let upstream = Upstream::start(After::SaysClose).await?;
    let proxy = start_proxy(&upstream.url).await?;
    let mut client = TcpStream::connect(proxy).await?;
    for n in 1..=3 {
        assert_eq!(get(&mut client).await?, ("HTTP/1.1 200 OK".into(), true));
        assert_eq!(upstream.accepted(), n);
    }
    Ok(())
}

#[tokio::test]
async fn an_idle_upstream_connection_closed_silently_is_replaced() -> Result<(), AnyError> {
    let upstream = Upstream::start(After::SilentlyCloses).await?;
    let proxy = start_proxy(&upstream.url).await?;
    let mut client = TcpStream::connect(proxy).await?;
    for n in 1..=3 {
        assert_eq!(get(&mut client).await?, ("HTTP/1.1 200 OK".into(), true));
        // The client's next request comes after the upstream has closed
        // the connection the proxy keeps for it.
        eventually("the upstream to close its connection", || async {
            (upstream.closed() == n).then_some(())
        })
        .await?;
    }
    assert_eq!(upstream.accepted(), 3);
    Ok(())
}
