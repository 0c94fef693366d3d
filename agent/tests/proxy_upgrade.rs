//! WebSocket upgrades through the sidecar proxy, over real sockets: the
//! upgrade request reaches the upstream with its `Upgrade` header, the 101
//! comes back with the policy's CORS headers, and bytes then flow both ways
//! through the spliced connections. Other upgrades (`h2c`) go on as plain
//! requests.

use corsair_agent::engine::{Policy, PolicySpec};
use corsair_agent::handle::{ActivePolicy, PolicyHandle};
use corsair_agent::proxy::{Proxy, ProxyOptions, serve};
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ORIGIN: &str = "https://app.example.com";

/// An upstream that accepts any `Upgrade` (answering 101 with the same
/// value) and then echoes every byte; a request without one gets 426.
async fn echo_upstream() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
                let mut res = Response::new(Empty::<Bytes>::new());
                let Some(protocol) = req.headers().get("upgrade").cloned() else {
                    *res.status_mut() = StatusCode::UPGRADE_REQUIRED;
                    return Ok::<_, Infallible>(res);
                };
                let on_upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    if let Ok(upgraded) = on_upgrade.await {
                        let mut io = TokioIo::new(upgraded);
                        let mut buf = [0u8; 64];
                        while let Ok(n) = io.read(&mut buf).await {
                            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                });
                *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                res.headers_mut()
                    .insert("connection", http::HeaderValue::from_static("upgrade"));
                res.headers_mut().insert("upgrade", protocol);
                Ok(res)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    Ok(url)
}

/// Reads an HTTP/1.1 response head (up to the blank line), lowercased.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).to_ascii_lowercase())
}

/// A policy handle allowing `ORIGIN`.
fn allowing_origin() -> Result<PolicyHandle, Box<dyn std::error::Error>> {
    let spec = PolicySpec {
        origins: vec![ORIGIN.into()],
        ..PolicySpec::default()
    };
    let handle = PolicyHandle::new();
    handle.store(Some(Arc::new(ActivePolicy {
        service: "ws".into(),
        revision: 1,
        policy: Policy::compile(&spec)?,
    })));
    Ok(handle)
}

#[tokio::test]
async fn upgrades_are_tunnelled_with_cors_headers() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = echo_upstream().await?;
    let handle = allowing_origin()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, Proxy::new(handle, &upstream)?, async {
        let _ = stopped.await;
    }));

    let mut client = TcpStream::connect(addr).await?;
    client
        .write_all(
            format!(
                "GET /socket HTTP/1.1\r\nHost: {addr}\r\nOrigin: {ORIGIN}\r\n\
                 Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut client)).await??;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\naccess-control-allow-origin: {ORIGIN}\r\n")),
        "{head}"
    );
    for message in [&b"ping"[..], b"a longer second message"] {
        client.write_all(message).await?;
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut echoed)).await??;
        assert_eq!(echoed, message);
    }

    // A plain request on a fresh connection is still an ordinary exchange
    // (no Upgrade reaches the upstream, which answers 426).
    let mut plain = TcpStream::connect(addr).await?;
    plain
        .write_all(
            format!("GET /socket HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut plain)).await??;
    assert!(head.starts_with("http/1.1 426"), "{head}");

    // An h2c upgrade is not tunnelled: the upstream (which would switch to
    // anything it is offered) gets a plain request and answers 426, with
    // the CORS headers of a normal response.
    let mut h2c = TcpStream::connect(addr).await?;
    h2c.write_all(
        format!(
            "GET /socket HTTP/1.1\r\nHost: {addr}\r\nOrigin: {ORIGIN}\r\n\
             Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
             HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut h2c)).await??;
    assert!(head.starts_with("http/1.1 426"), "{head}");
    assert!(!head.contains("\r\nupgrade:"), "{head}");
    assert!(
        head.contains(&format!("\r\naccess-control-allow-origin: {ORIGIN}\r\n")),
        "{head}"
    );

    drop(client);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), server).await???;
    Ok(())
}

/// A stop drains WebSocket tunnels too: hyper lets go of a connection once
/// its `101` is sent, so the proxy counts its tunnels itself. After the stop
/// an open tunnel still carries bytes and `serve` has not returned; once the
/// client closes it, `serve` returns, well before the drain timeout.
#[tokio::test]
async fn a_stop_waits_for_open_tunnels() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = echo_upstream().await?;
    let handle = allowing_origin()?;
    let options = ProxyOptions {
        drain_timeout: Duration::from_secs(60),
        ..ProxyOptions::default()
    };
    let proxy = Proxy::with_options(handle, &upstream, options)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(serve(listener, proxy, async {
        let _ = stopped.await;
    }));

    let mut client = TcpStream::connect(addr).await?;
    client
        .write_all(
            format!(
                "GET /socket HTTP/1.1\r\nHost: {addr}\r\nOrigin: {ORIGIN}\r\n\
                 Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut client)).await??;
    assert!(head.starts_with("http/1.1 101"), "{head}");

    let _ = stop.send(());
    // The tunnel outlives the stop: a round trip after it still works, and
    // the server is still draining when it is done.
    for message in [&b"after the stop"[..], b"and again"] {
        client.write_all(message).await?;
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut echoed)).await??;
        assert_eq!(echoed, message);
    }
    assert!(
        !server.is_finished(),
        "serve returned while a WebSocket tunnel was still open"
    );

    // The client ends the tunnel: the drain is over.
    drop(client);
    tokio::time::timeout(Duration::from_secs(15), &mut server).await???;
    Ok(())
}
