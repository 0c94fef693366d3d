//! `https://` upstreams over real sockets: a local TLS server with a
//! certificate from a CA the test generates. Trusted through
//! `--upstream-ca-file`, the exchange goes through with the policy's CORS
//! headers; a certificate from another CA gives a 502 that still carries
//! the CORS decision, and a log line that says what to fix. A host that
//! accepts TCP and never speaks TLS is a connect timeout (504), bounded by
//! `--upstream-connect-timeout`, not `--upstream-timeout`. A CA file
//! rotated while the proxy runs is trusted by the next new connection; a
//! broken one keeps the previous CA.

mod proxy_support;

use bytes::Bytes;
use corsair_agent::engine::PolicySpec;
use corsair_agent::proxy::{Proxy, ProxyOptions};
use corsair_test_support::Check;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use proxy_support::{
    AnyError, Behaviour, Log, TestUpstream, eventually, exchange, handle_with, serve_proxy,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;

const APP: &str = "https://app.example.com";

/// A test CA: its PEM and the ability to sign a server certificate.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Result<Self, AnyError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        Ok(Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate()?)?,
        })
    }

    /// A certificate for 127.0.0.1 signed by this CA, and its key.
    fn server_cert(&self) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), AnyError> {
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])?
            .signed_by(&key, &*self.issuer)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((cert.der().clone(), key))
    }
}

/// A TLS upstream's certificate, replaceable while it serves: each
/// connection it accepts gets the one set last.
#[derive(Clone)]
struct ServerCert(Arc<Mutex<tokio_rustls::TlsAcceptor>>);

impl ServerCert {
    fn signed_by(ca: &Ca) -> Result<Self, AnyError> {
        Ok(Self(Arc::new(Mutex::new(Self::acceptor_for(ca)?))))
    }

    /// From now on, connections get a certificate signed by `ca`.
    fn replace(&self, ca: &Ca) -> Result<(), AnyError> {
        let acceptor = Self::acceptor_for(ca)?;
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = acceptor;
        Ok(())
    }

    fn current(&self) -> tokio_rustls::TlsAcceptor {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn acceptor_for(ca: &Ca) -> Result<tokio_rustls::TlsAcceptor, AnyError> {
        let (cert, key) = ca.server_cert()?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// A TLS upstream on loopback answering every request `200 secure` (with an
/// `Access-Control-Allow-Origin: *` of its own, which the proxy replaces).
async fn tls_upstream(ca: &Ca) -> Result<SocketAddr, AnyError> {
    serve_tls(ServerCert::signed_by(ca)?).await
}

/// [`tls_upstream`] with `cert`, which the test may replace.
async fn serve_tls(cert: ServerCert) -> Result<SocketAddr, AnyError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = cert.current();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    let mut res = Response::new(Full::new(Bytes::from_static(b"secure")));
                    res.headers_mut().insert(
                        "access-control-allow-origin",
                        http::HeaderValue::from_static("*"),
                    );
                    Ok::<_, Infallible>(res)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Starts a proxy to `upstream` trusting `ca_file`; stops when the sender drops.
async fn proxy_to(
    upstream: &str,
    ca_file: &std::path::Path,
) -> Result<(SocketAddr, tokio::sync::oneshot::Sender<()>), AnyError> {
    proxy_with(
        upstream,
        ProxyOptions {
            upstream_ca_file: Some(ca_file.to_path_buf()),
            ..ProxyOptions::default()
        },
    )
    .await
}

/// Starts a proxy to `upstream` with `options`; stops when the sender drops.
async fn proxy_with(
    upstream: &str,
    options: ProxyOptions,
) -> Result<(SocketAddr, tokio::sync::oneshot::Sender<()>), AnyError> {
    let handle = handle_with(&PolicySpec {
        origins: vec![APP.into()],
        ..PolicySpec::default()
    })?;
    serve_proxy(Proxy::with_options(handle, upstream, options)?).await
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: api.test\r\norigin: {APP}\r\nconnection: close\r\n\r\n")
        .into_bytes()
}

// current_thread (the default): every task runs on this thread, so the
// thread-local log subscriber below sees the proxy's log lines.
#[tokio::test]
async fn https_upstreams_are_verified_against_the_ca_file() -> Result<(), AnyError> {
    let (log, _guard) = Log::capture(tracing::Level::INFO);

    let trusted = Ca::new("corsair test CA")?;
    let stranger = Ca::new("some other CA")?;
    let dir = tempfile::tempdir()?;
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, trusted.issuer.pem())?;

    // Trusted: the request goes through, with the policy's CORS headers.
    let good = tls_upstream(&trusted).await?;
    let (addr, _stop) = proxy_to(&format!("https://{good}/api"), &ca_file).await?;
    let head = exchange(addr, &get("/items")).await?;
    assert_eq!(head.status, 200, "{head:?}\n{}", log.text());
    assert_eq!(head.get("access-control-allow-origin"), Some(APP));
    assert_eq!(head.get("content-length"), Some("6"));

    // Not trusted: 502 with the same CORS decision, and a log line naming
    // the cause and the fix.
    let bad = tls_upstream(&stranger).await?;
    let (addr, _stop2) = proxy_to(&format!("https://{bad}"), &ca_file).await?;
    let head = exchange(addr, &get("/items")).await?;
    assert_eq!(head.status, 502, "{head:?}");
    assert_eq!(head.get("access-control-allow-origin"), Some(APP));
    assert_eq!(head.get("vary"), Some("Origin"));
    let text = log.text();
    let line = text
        .lines()
        .find(|l| l.contains("upstream request failed"))
        .ok_or_else(|| format!("no failure logged:\n{text}"))?;
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("invalid peer certificate: UnknownIssuer"),
        "{line}"
    );
    assert!(line.contains("--upstream-ca-file"), "{line}");
    assert!(line.contains(&format!("https://{bad}")), "{line}");
    Ok(())
}

/// A CA rotation (cert-manager renewing a private CA, a Secret updated in
/// place) needs no restart: a new upstream connection reads the CA file
/// again (at most once a second) and trusts it as it is then. Each exchange below is a new client connection
/// (`connection: close`), so a new upstream connection.
#[tokio::test]
async fn a_rotated_ca_file_is_trusted_without_a_restart() -> Result<(), AnyError> {
    let (log, _guard) = Log::capture(tracing::Level::INFO);

    let first = Ca::new("corsair test CA 1")?;
    let second = Ca::new("corsair test CA 2")?;
    let dir = tempfile::tempdir()?;
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, first.issuer.pem())?;
    let cert = ServerCert::signed_by(&first)?;
    let upstream = serve_tls(cert.clone()).await?;
    let (addr, _stop) = proxy_to(&format!("https://{upstream}"), &ca_file).await?;
    let status = || async { Ok::<_, AnyError>(exchange(addr, &get("/items")).await?.status) };
    assert_eq!(status().await?, 200, "{}", log.text());

    // The upstream moves to CA 2 before the file does: refused, so what
    // follows is the file being read again and nothing else.
    cert.replace(&second)?;
    assert_eq!(status().await?, 502);

    // The file is replaced as a Secret update does (a new file renamed over
    // the old one): a new connection trusts CA 2 once the file is read
    // again (at most once a second), on both of hyper's request kinds (an
    // https:// upstream never takes the fast path).
    let staged = dir.path().join("upstream-ca.pem.new");
    std::fs::write(&staged, second.issuer.pem())?;
    std::fs::rename(&staged, &ca_file)?;
    eventually("a connection trusting the rotated CA", || async {
        matches!(status().await, Ok(200)).then_some(())
    })
    .await
    .map_err(|e| format!("{e}\n{}", log.text()))?;
    let post = format!(
        "POST /items HTTP/1.1\r\nhost: api.test\r\norigin: {APP}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    );
    let head = exchange(addr, post.as_bytes()).await?;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.get("access-control-allow-origin"), Some(APP));
    assert!(
        log.text().contains("--upstream-ca-file changed"),
        "{}",
        log.text()
    );

    // Garbage in place of the CA: the previous roots (CA 2) stay for every
    // connection, and one warning names the file and the problem, however
    // many connections follow.
    std::fs::write(&ca_file, "not a certificate\n")?;
    let warned = || {
        log.text()
            .contains("--upstream-ca-file changed but cannot be used")
    };
    eventually("the warning about the unusable CA file", || async {
        match status().await {
            Ok(200) if warned() => Check::Ready(()),
            Ok(200) => Check::Pending("no warning yet".into()),
            other => Check::Failed(format!("{other:?} with the previous CA kept")),
        }
    })
    .await?;
    for _ in 0..3 {
        assert_eq!(status().await?, 200, "{}", log.text());
    }
    let text = log.text();
    let warnings: Vec<_> = text
        .lines()
        .filter(|l| l.contains("--upstream-ca-file changed but cannot be used"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains(&ca_file.display().to_string()),
        "{text}"
    );
    assert!(warnings[0].contains("WARN"), "{text}");
    assert!(warnings[0].contains("no PEM certificate"), "{text}");
    assert!(warnings[0].contains("previous certificates"), "{text}");
    Ok(())
}

#[tokio::test]
async fn an_unusable_ca_file_is_a_clear_startup_error() -> Result<(), AnyError> {
    let dir = tempfile::tempdir()?;
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n")?;
    let missing = dir.path().join("missing.pem");
    for (file, says) in [(&empty, "no PEM certificate"), (&missing, "missing.pem")] {
        let err = proxy_to("https://127.0.0.1:1", file)
            .await
            .err()
            .ok_or("an unusable CA file was accepted")?;
        let text = err.to_string();
        assert!(text.contains("--upstream-ca-file"), "{text}");
        assert!(text.contains(says), "{text}");
    }
    Ok(())
}

/// The upstream accepts the TCP connection and never answers the TLS
/// ClientHello (a wedged TLS front, or a plain-HTTP port named `https://`):
/// the whole connection setup is bounded by `--upstream-connect-timeout`,
/// as on the fast path, so the client gets the same 504 "timed out
/// connecting", with the CORS decision, and not a wait for the (here hour
/// long) `--upstream-timeout`. `exchange` gives up after `STEP`.
#[tokio::test]
async fn a_tls_handshake_that_never_finishes_is_a_connect_timeout() -> Result<(), AnyError> {
    let ca = Ca::new("corsair test CA")?;
    let dir = tempfile::tempdir()?;
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, ca.issuer.pem())?;
    let silent = TestUpstream::start(Behaviour::Silent).await?;
    let upstream = silent.url.replacen("http://", "https://", 1);
    let (addr, _stop) = proxy_with(
        &upstream,
        ProxyOptions {
            upstream_ca_file: Some(ca_file),
            connect_timeout: Duration::from_millis(300),
            upstream_timeout: Duration::from_secs(3600),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let head = exchange(addr, &get("/items")).await?;
    assert_eq!(head.status, 504, "{head:?}");
    assert_eq!(
        head.body,
        "corsair-agent: timed out connecting to the upstream\n"
    );
    assert_eq!(head.get("access-control-allow-origin"), Some(APP));
    assert_eq!(head.get("vary"), Some("Origin"));
    // TCP did connect: the time ran out in the TLS handshake.
    assert_eq!(silent.accepted(), 1);
    Ok(())
}

/// A CA file with an `http://` upstream would never be read for anything:
/// a start-up error that says so, not a silently ignored (or, before,
/// read and required to be valid) file.
#[tokio::test]
async fn a_ca_file_with_an_http_upstream_is_a_clear_startup_error() -> Result<(), AnyError> {
    let ca = Ca::new("corsair test CA")?;
    let dir = tempfile::tempdir()?;
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, ca.issuer.pem())?;
    let err = proxy_to("http://127.0.0.1:1", &ca_file)
        .await
        .err()
        .ok_or("a CA file was accepted for an http:// upstream")?;
    let text = err.to_string();
    assert!(text.contains("--upstream-ca-file"), "{text}");
    assert!(text.contains("https:// upstream only"), "{text}");
    Ok(())
}
