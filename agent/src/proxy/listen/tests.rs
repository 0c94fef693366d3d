//! How a connection's protocol is told ([`decided`]), and [`sniff`] when
//! the drain has already started, over loopback sockets.

use super::{H2_PREFACE, decided, sniff};
use bytes::Bytes;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// A client connection that sends `sent`, and the server side, whose
/// readiness tokio has not yet seen when `sent` arrives: it is cleared
/// before the client writes (as the fast path clears it after a short
/// read), and nothing here lets the runtime's driver turn before the
/// caller polls the server side.
async fn connected(sent: &[u8]) -> Result<(TcpStream, TcpStream), AnyError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut client = TcpStream::connect(listener.local_addr()?).await?;
    let (server, _) = listener.accept().await?;
    let _ = server.try_io(tokio::io::Interest::READABLE, || {
        Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
    });
    client.write_all(sent).await?;
    Ok((client, server))
}

/// A request already in the socket when the drain has started is read
/// (to be answered), though tokio has not yet seen the socket readable.
#[tokio::test]
async fn bytes_waiting_when_the_drain_starts_are_read() -> Result<(), AnyError> {
    let request = b"POST /items HTTP/1.1\r\nhost: api.test\r\n\r\n";
    let (_client, mut server) = connected(request).await?;
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        sniff(&mut server, Bytes::new(), Duration::from_secs(5), async {}),
    )
    .await?;
    let read = read.ok_or("closed with the request unread")?;
    assert!(request.starts_with(&read), "{read:?}");
    Ok(())
}

/// Nothing sent when the drain has started: closed at once.
#[tokio::test]
async fn an_idle_connection_is_closed_when_the_drain_starts() -> Result<(), AnyError> {
    let (_client, mut server) = connected(b"").await?;
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        sniff(&mut server, Bytes::new(), Duration::from_secs(30), async {}),
    )
    .await?;
    assert!(read.is_none(), "{read:?}");
    Ok(())
}

#[test]
fn decides_from_the_first_differing_byte_or_the_whole_preface() {
    assert!(!decided(b""));
    assert!(!decided(b"P"));
    assert!(!decided(b"PRI * HTTP/2"));
    assert!(!decided(&H2_PREFACE[..23]));
    assert!(decided(H2_PREFACE));
    assert!(decided(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04"));
    assert!(decided(b"G"));
    assert!(decided(b"POST"));
    assert!(decided(b"PRI * HTTP/1.1\r\n"));
}
