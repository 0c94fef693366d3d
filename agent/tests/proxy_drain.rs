//! Graceful drain with the real `corsair-agent` binary: SIGTERM while a
//! slow request is in flight turns `/readyz` to 503 and stops accepting
//! new connections; the in-flight request still completes, then the
//! process exits 0. With `--drain-delay`, new connections are still served
//! for that long while `/readyz` already says 503. A request decided while
//! the proxy drains is counted in the telemetry spooled at exit.

mod proxy_support;

use corsair_agent::engine::PolicySpec;
use corsair_agent::report::SpillQueue;
use corsair_agent::sync::{Snapshot, cache};
use corsair_test_support::eventually_within;
use corsair_test_support::process::{Process, free_addr};
use proxy_support::{AnyError, Head, RefusedPort, STEP, eventually, read_head, refused_port};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

const APP: &str = "https://app.example.com";

/// An upstream that reports each request head it reads, then answers only
/// when told to.
async fn slow_upstream() -> Result<(String, mpsc::Receiver<oneshot::Sender<()>>), AnyError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (arrived, arrivals) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let arrived = arrived.clone();
            tokio::spawn(async move {
                if read_head(&mut stream).await.is_err() {
                    return;
                }
                let (release, released) = oneshot::channel();
                if arrived.send(release).await.is_err() {
                    return;
                }
                let _ = released.await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nslow\n")
                    .await;
                let mut sink = [0u8; 64];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    Ok((url, arrivals))
}

/// `GET /readyz` status, or `None` when the admin listener does not answer.
async fn readyz(admin: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect(admin).await.ok()?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
        .await
        .ok()?;
    let raw = read_head(&mut stream).await.ok()?;
    Head::parse(&raw).ok().map(|h| h.status)
}

/// The real binary with a cached policy (so it is ready without a control
/// plane: the one it is given refuses connections), listening on `listen`
/// and `admin`.
struct Agent {
    process: Process,
    listen: SocketAddr,
    admin: SocketAddr,
    _cache_dir: tempfile::TempDir,
    /// The control plane's address, held so no other process listens there.
    _control_plane: RefusedPort,
}

impl Agent {
    async fn start(upstream: &str, drain_timeout: &str) -> Result<Self, AnyError> {
        Self::start_with(upstream, drain_timeout, &[]).await
    }

    /// Like [`Self::start`], with `extra` flags.
    async fn start_with(
        upstream: &str,
        drain_timeout: &str,
        extra: &[&str],
    ) -> Result<Self, AnyError> {
        let cache_dir = tempfile::tempdir()?;
        cache::write_snapshot(
            cache_dir.path(),
            &Snapshot {
                service: "api".into(),
                revision: 1,
                spec: Some(PolicySpec {
                    origins: vec![APP.into()],
                    ..PolicySpec::default()
                }),
            },
        )?;
        let (listen, admin) = (free_addr()?, free_addr()?);
        let refused = refused_port().await?;
        let control_plane = format!("http://{}", refused.addr);
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_corsair-agent"));
        command
            .args(["proxy", "--token", "t", "--service", "api"])
            .args(["--control-plane", &control_plane, "--upstream", upstream])
            .args(["--listen", &listen.to_string()])
            .args(["--metrics", &admin.to_string()])
            .arg("--cache-dir")
            .arg(cache_dir.path())
            .args(["--drain-timeout", drain_timeout, "--upstream-timeout", "60"])
            .args(extra)
            .env("RUST_LOG", "warn");
        let log = cache_dir.path().join("agent.log");
        let process = Process::spawn("corsair-agent proxy", command, &log)?;
        eventually("the agent to be ready", || async {
            (readyz(admin).await == Some(200)).then_some(())
        })
        .await
        .map_err(|e| format!("{e:#}\n{}", process.log()))?;
        Ok(Self {
            process,
            listen,
            admin,
            _cache_dir: cache_dir,
            _control_plane: refused,
        })
    }

    /// Sends a request that the slow upstream will hold; returns the
    /// client connection and the upstream's release.
    async fn in_flight(
        &self,
        arrivals: &mut mpsc::Receiver<oneshot::Sender<()>>,
    ) -> Result<(TcpStream, oneshot::Sender<()>), AnyError> {
        let mut client = TcpStream::connect(self.listen).await?;
        client
            .write_all(
                format!("GET /slow HTTP/1.1\r\nhost: api.test\r\norigin: {APP}\r\n\r\n").as_bytes(),
            )
            .await?;
        let release = tokio::time::timeout(STEP, arrivals.recv())
            .await?
            .ok_or("the upstream never saw the request")?;
        Ok((client, release))
    }

    fn sigterm(&self) -> Result<(), AnyError> {
        Ok(self.process.signal("-TERM")?)
    }
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits() -> Result<(), AnyError> {
    let (upstream, mut arrivals) = slow_upstream().await?;
    let mut agent = Agent::start(&upstream, "60").await?;
    let (admin, listen) = (agent.admin, agent.listen);

    // A request is in flight: the upstream has it and holds its answer.
    let (mut client, release) = agent.in_flight(&mut arrivals).await?;
    agent.sigterm()?;

    // Draining: not ready, no new connections, the process still running.
    eventually("/readyz to answer 503", || async {
        (readyz(admin).await == Some(503)).then_some(())
    })
    .await?;
    eventually("the proxy listener to close", || async {
        TcpStream::connect(listen).await.is_err().then_some(())
    })
    .await?;
    assert!(
        agent.process.child.try_wait()?.is_none(),
        "exited with a request in flight"
    );

    // The in-flight request completes normally, with its CORS headers.
    release.send(()).map_err(|()| "upstream task gone")?;
    let head = Head::parse(&tokio::time::timeout(STEP, read_head(&mut client)).await??)?;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.get("access-control-allow-origin"), Some(APP));
    let mut body = [0u8; 5];
    tokio::time::timeout(STEP, client.read_exact(&mut body)).await??;
    assert_eq!(&body, b"slow\n");

    let status = tokio::time::timeout(STEP, agent.process.child.wait()).await??;
    assert!(status.success(), "agent exited with {status}");
    Ok(())
}

/// A request still running when `--drain-timeout` ends does not hold the
/// process: its connection is closed and the agent exits 0.
#[tokio::test]
async fn the_drain_timeout_bounds_the_wait() -> Result<(), AnyError> {
    let (upstream, mut arrivals) = slow_upstream().await?;
    let mut agent = Agent::start(&upstream, "0.5").await?;
    let (mut client, _never_released) = agent.in_flight(&mut arrivals).await?;
    agent.sigterm()?;
    let status = tokio::time::timeout(STEP, agent.process.child.wait()).await??;
    assert!(status.success(), "agent exited with {status}");
    // The client's connection ends without an answer.
    let mut rest = Vec::new();
    tokio::time::timeout(STEP, client.read_to_end(&mut rest))
        .await?
        .ok();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    Ok(())
}

/// `--drain-delay`: after SIGTERM `/readyz` answers 503 at once while new
/// connections are still accepted and served (load balancers catch up);
/// then the listener closes and the process exits.
#[tokio::test]
async fn the_drain_delay_keeps_serving_while_not_ready() -> Result<(), AnyError> {
    let (upstream, mut arrivals) = slow_upstream().await?;
    // Long enough for one readyz poll and one request on a busy machine,
    // shorter than STEP so the close is still awaited below.
    let mut agent = Agent::start_with(&upstream, "60", &["--drain-delay", "5"]).await?;
    let (admin, listen) = (agent.admin, agent.listen);
    agent.sigterm()?;
    eventually("/readyz to answer 503", || async {
        (readyz(admin).await == Some(503)).then_some(())
    })
    .await?;

    // Not ready, yet a new connection is accepted and its request served.
    let (mut client, release) = agent.in_flight(&mut arrivals).await?;
    release.send(()).map_err(|()| "upstream task gone")?;
    let head = Head::parse(&tokio::time::timeout(STEP, read_head(&mut client)).await??)?;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.get("access-control-allow-origin"), Some(APP));
    drop(client);

    // After the delay the listener closes and the process exits 0.
    eventually("the proxy listener to close", || async {
        TcpStream::connect(listen).await.is_err().then_some(())
    })
    .await?;
    let status = tokio::time::timeout(STEP, agent.process.child.wait()).await??;
    assert!(status.success(), "agent exited with {status}");
    Ok(())
}

/// Blocked requests from `origin` counted in the telemetry batches spooled
/// in `spool` (the control plane is unreachable, so a clean stop keeps
/// every batch there).
fn spooled_blocked(spool: &Path, origin: &str) -> Result<u64, AnyError> {
    let mut queue = SpillQueue::open(spool, 1_000_000)?;
    let mut total = 0;
    while let Some(batch) = queue.pop_front() {
        total += batch
            .counts
            .iter()
            .filter(|c| c.origin == origin)
            .map(|c| c.count)
            .sum::<u64>();
    }
    Ok(total)
}

/// A request decided after SIGTERM, while the proxy drains (its head was
/// still arriving), is in the final telemetry batch: the reporter's last
/// cut waits for the proxy to finish, so a clean stop loses no count.
#[tokio::test]
async fn a_request_decided_while_draining_is_counted() -> Result<(), AnyError> {
    const EVIL: &str = "https://evil.example";
    let (upstream, mut arrivals) = slow_upstream().await?;
    let mut agent = Agent::start(&upstream, "60").await?;
    let spool = agent._cache_dir.path().join("telemetry");

    // A late client: half its head sent, the rest after SIGTERM.
    let mut late = TcpStream::connect(agent.listen).await?;
    late.write_all(
        format!("GET /late HTTP/1.1\r\nhost: api.test\r\norigin: {EVIL}\r\n").as_bytes(),
    )
    .await?;
    // A request in flight (counted as allowed) keeps the proxy draining.
    let (mut client, release) = agent.in_flight(&mut arrivals).await?;
    agent.sigterm()?;
    eventually("/readyz to answer 503", || async {
        (readyz(agent.admin).await == Some(503)).then_some(())
    })
    .await?;
    // Had telemetry stopped with the proxy (as it once did), its final
    // batch (holding the allowed count) would be cut now, while the proxy
    // still drains: give that its chance to show before the late request
    // is decided. A pass never depends on this wait.
    let cut_early = eventually_within(Duration::from_secs(3), "no early cut", || async {
        std::fs::read_dir(&spool)
            .map(|d| {
                d.filter_map(Result::ok)
                    .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
            })
            .unwrap_or(false)
            .then_some(())
    })
    .await
    .is_ok();

    // The late head completes: decided (blocked origin) and forwarded.
    late.write_all(b"\r\n").await?;
    let late_release = tokio::time::timeout(STEP, arrivals.recv())
        .await?
        .ok_or("the upstream never saw the late request")?;
    late_release.send(()).map_err(|()| "upstream task gone")?;
    let head = Head::parse(&tokio::time::timeout(STEP, read_head(&mut late)).await??)?;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.get("access-control-allow-origin"), None);
    release.send(()).map_err(|()| "upstream task gone")?;
    let head = Head::parse(&tokio::time::timeout(STEP, read_head(&mut client)).await??)?;
    assert_eq!(head.status, 200, "{head:?}");
    drop((late, client));

    let status = tokio::time::timeout(STEP, agent.process.child.wait()).await??;
    assert!(status.success(), "agent exited with {status}");
    assert_eq!(
        spooled_blocked(&spool, EVIL)?,
        1,
        "the request decided while draining is missing from the telemetry (final batch cut early: {cut_early})\n{}",
        agent.process.log()
    );
    Ok(())
}
