//! The fast path's drain, over real loopback sockets: what a connection
//! does with a request already in its socket when the drain has started.

use super::{Drain, End, serve};
use crate::engine::{Policy, PolicySpec};
use crate::handle::{ActivePolicy, PolicyHandle};
use crate::proxy::Proxy;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

const APP: &str = "https://app.example.com";

/// An upstream answering every request on a connection with `200 ok`.
async fn upstream() -> Result<String, AnyError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    Ok(url)
}

fn proxy(upstream: &str) -> Result<Proxy, AnyError> {
    let handle = PolicyHandle::new();
    handle.store(Some(Arc::new(ActivePolicy {
        service: "api".into(),
        revision: 1,
        policy: Policy::compile(&PolicySpec {
            origins: vec![APP.into()],
            ..PolicySpec::default()
        })?,
    })));
    Ok(Proxy::new(handle, upstream)?)
}

/// A client connection that sent `sent`, and how the fast path's `serve`
/// left the server side when the drain had started before its first poll.
async fn served_after_the_drain(sent: &[u8]) -> Result<(End, TcpStream), AnyError> {
    let proxy = proxy(&upstream().await?)?;
    let fast = proxy
        .fast
        .as_ref()
        .ok_or("no fast path for an http:// upstream")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut client = TcpStream::connect(listener.local_addr()?).await?;
    client.write_all(sent).await?;
    let (server, peer) = listener.accept().await?;
    let drain = Drain::default();
    drain.start();
    let end = tokio::time::timeout(
        Duration::from_secs(10),
        serve(&proxy, fast, server, peer.ip(), &drain),
    )
    .await?;
    Ok((end, client))
}

/// A client whose whole request is in the server's socket before the
/// server side is first polled, and a drain that started before that: the
/// request is answered (and the connection then closed), not closed
/// unread, which resets the client's connection.
#[tokio::test]
async fn a_request_waiting_when_the_drain_starts_is_answered() -> Result<(), AnyError> {
    let request = format!("GET /items HTTP/1.1\r\nhost: api.test\r\norigin: {APP}\r\n\r\n");
    let (end, mut client) = served_after_the_drain(request.as_bytes()).await?;
    assert!(matches!(end, End::Closed), "handed over to hyper");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_string(&mut answer)).await??;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        answer.contains(&format!("access-control-allow-origin: {APP}")),
        "{answer:?}"
    );
    assert!(answer.ends_with("ok"), "{answer:?}");
    Ok(())
}

/// The other half: a connection with nothing sent when the drain starts
/// is closed at once.
#[tokio::test]
async fn an_idle_connection_closes_when_the_drain_starts() -> Result<(), AnyError> {
    let (end, mut client) = served_after_the_drain(b"").await?;
    assert!(matches!(end, End::Closed), "handed over to hyper");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await?;
    assert!(rest.is_empty(), "{rest:?}");
    Ok(())
}
