//! Real processes for the gateway tests: an upstream that counts its
//! calls, the `corsair-agent` binary (authz or proxy mode) enforcing a
//! policy from its cache, Debian's nginx running `deploy/nginx/corsair.conf`,
//! and an HTTP/1.1 client that sends a conformance row and reads the answer.

use super::conformance::{Row, expand};
use corsair_agent::engine::PolicySpec;
use corsair_agent::report::Batch;
use corsair_agent::sync::{Snapshot, cache};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
// nginx cannot bind port 0: free ports are picked, and a race with another
// process is caught by the start-up retry.
pub use corsair_test_support::process::{Process, free_port};
use tokio::process::Command;

/// Any error, for `?` in tests.
pub type AnyError = Box<dyn std::error::Error + Send + Sync>;
/// A test step's result.
pub type TestResult<T = ()> = Result<T, AnyError>;

/// Debian's nginx.
pub const NGINX: &str = "/usr/sbin/nginx";
const AGENT: &str = env!("CARGO_BIN_EXE_corsair-agent");
const DEADLINE: Duration = Duration::from_secs(20);
/// Tries with fresh ports when a picked port was taken in the meantime.
const PORT_TRIES: usize = 5;

/// `Ok(false)` (and says so) when `CORSAIR_SKIP_NGINX_TESTS` is set; an
/// error when nginx is missing: a skipped test that passes hides a broken
/// set-up.
pub fn nginx_wanted() -> TestResult<bool> {
    if std::env::var_os("CORSAIR_SKIP_NGINX_TESTS").is_some() {
        eprintln!("CORSAIR_SKIP_NGINX_TESTS is set: skipping the nginx test");
        return Ok(false);
    }
    if !Path::new(NGINX).exists() {
        return Err(format!("{NGINX} not found: apt-get install -y nginx").into());
    }
    Ok(true)
}

/// What a client sees for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `Access-Control-*` response headers, lowercased names, sorted.
    pub cors: Vec<(String, String)>,
    /// Every `Vary` line, joined with ", ".
    pub vary: String,
    /// Whether the upstream was called (exactly once).
    pub forwarded: bool,
}

/// The upstream: answers 200, tries to grant CORS itself, counts calls.
pub struct Upstream {
    pub addr: SocketAddr,
    pub calls: Arc<AtomicUsize>,
}

pub async fn upstream() -> TestResult<Upstream> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut res = Response::new(http_body_util::Full::new(Bytes::from("upstream")));
                let h = res.headers_mut();
                h.insert(
                    "access-control-allow-origin",
                    HeaderValue::from_static("https://upstream.example"),
                );
                h.insert(
                    "access-control-allow-credentials",
                    HeaderValue::from_static("true"),
                );
                h.insert("vary", HeaderValue::from_static("Accept-Encoding"));
                std::future::ready(Ok::<_, Infallible>(res))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    Ok(Upstream { addr, calls })
}

/// Starts `command` as `name` with its output in `log` and waits until it
/// listens on every one of `addrs`. `Ok(None)` when it exited first (e.g.
/// a picked port was taken in the meantime: the caller retries).
async fn spawn_listening(
    name: &str,
    command: Command,
    log: &Path,
    addrs: &[SocketAddr],
) -> TestResult<Option<Process>> {
    let mut process = Process::spawn(name, command, log)?;
    for addr in addrs {
        if let Err(e) = process.wait_listening(*addr).await {
            if process.child.try_wait()?.is_some() {
                return Ok(None);
            }
            return Err(e.into());
        }
    }
    Ok(Some(process))
}

/// A running `corsair-agent` (authz or proxy mode) with its cache dir.
pub struct Agent {
    pub process: Process,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub cache: tempfile::TempDir,
}

/// Starts `corsair-agent <mode_args>` enforcing `policy` from its cache
/// (`None`: no policy at all, failing closed).
pub async fn start_agent(
    name: &'static str,
    mode_args: &[String],
    policy: Option<&PolicySpec>,
) -> TestResult<Agent> {
    let cache = tempfile::tempdir()?;
    if let Some(spec) = policy {
        cache::write_snapshot(
            cache.path(),
            &Snapshot {
                service: "svc".into(),
                revision: 1,
                spec: Some(spec.clone()),
            },
        )?;
    }
    for _ in 0..PORT_TRIES {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let mut command = Command::new(AGENT);
        command
            .args(mode_args)
            .args(["--listen", &listen.to_string()])
            .args(["--metrics", &admin.to_string()])
            .arg("--cache-dir")
            .arg(cache.path())
            // Nobody listens here: the agents keep their cached policy.
            .args(["--control-plane", "http://127.0.0.1:9"])
            .args(["--token", "unused", "--service", "svc"])
            .args(["--agent-name", name])
            // One batch at shutdown holds every count of the run.
            .args(["--report-interval", "3600"])
            .env("RUST_LOG", "warn");
        let log = cache.path().join(format!("{name}.log"));
        if let Some(process) = spawn_listening(name, command, &log, &[listen, admin]).await? {
            let ready = get(admin, "/readyz").await?.0;
            let want = if policy.is_some() { 200 } else { 503 };
            if ready != want {
                return Err(format!("{name}: /readyz {ready}, expected {want}").into());
            }
            return Ok(Agent {
                process,
                listen,
                admin,
                cache,
            });
        }
    }
    let log = std::fs::read_to_string(cache.path().join(format!("{name}.log"))).unwrap_or_default();
    Err(format!("{name} did not start:\n{log}").into())
}

/// A running nginx with its prefix directory.
pub struct Nginx {
    pub process: Process,
    pub addr: SocketAddr,
    pub prefix: tempfile::TempDir,
}

fn deploy_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/corsair.conf")
}

/// `deploy/nginx/corsair.conf` with its three addresses replaced (each
/// must appear exactly once, so the example and this test cannot drift).
fn site_conf(listen: u16, agent: SocketAddr, upstream: SocketAddr) -> TestResult<String> {
    let mut text = std::fs::read_to_string(deploy_conf())?;
    for (from, to) in [
        ("listen 8000;", format!("listen 127.0.0.1:{listen};")),
        ("server 127.0.0.1:9091;", format!("server {agent};")),
        ("server 127.0.0.1:8080;", format!("server {upstream};")),
    ] {
        if text.matches(from).count() != 1 {
            return Err(format!("deploy/nginx/corsair.conf: expected `{from}` once").into());
        }
        text = text.replace(from, &to);
    }
    Ok(text)
}

pub async fn start_nginx(agent: SocketAddr, upstream: SocketAddr) -> TestResult<Nginx> {
    let prefix = tempfile::tempdir()?;
    let p = prefix.path().display().to_string();
    // Running as root, nginx would switch its worker to `nobody`, which
    // cannot read a private temp dir: keep the worker as root then.
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    for _ in 0..PORT_TRIES {
        let port = free_port()?;
        std::fs::write(
            prefix.path().join("corsair.conf"),
            site_conf(port, agent, upstream)?,
        )?;
        let main = format!(
            "{user}daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {p}/access.log;\n  client_body_temp_path {p}/client_body;\n\
               proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n\
               scgi_temp_path {p}/scgi;\n  include {p}/corsair.conf;\n}}\n",
            user = if root { "user root;\n" } else { "" },
        );
        std::fs::write(prefix.path().join("nginx.conf"), main)?;
        let mut command = Command::new(NGINX);
        command
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(prefix.path().join("nginx.conf"))
            .arg("-e")
            .arg(prefix.path().join("error.log"));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let log = prefix.path().join("stderr.log");
        if let Some(process) = spawn_listening("nginx", command, &log, &[addr]).await? {
            return Ok(Nginx {
                process,
                addr,
                prefix,
            });
        }
        let log = std::fs::read_to_string(prefix.path().join("error.log")).unwrap_or_default();
        if !log.contains("Address already in use") {
            return Err(format!("nginx did not start:\n{log}").into());
        }
    }
    Err("nginx: no free port after several tries".into())
}

/// Sends `row`'s request to `addr` on a fresh connection.
pub async fn send(addr: SocketAddr, row: &Row, upstream: &Upstream) -> TestResult<Answer> {
    let method = Method::from_bytes(row.method.as_bytes())?;
    let mut req = Request::new(Empty::<Bytes>::new());
    *req.method_mut() = method;
    *req.uri_mut() = "/api/items?x=1".parse()?;
    let headers = req.headers_mut();
    headers.insert("host", HeaderValue::from_str(&addr.to_string())?);
    for (k, v) in &row.req {
        headers.append(
            HeaderName::from_bytes(expand(k).as_bytes())?,
            HeaderValue::from_bytes(v.as_bytes())?,
        );
    }
    let before = upstream.calls.load(Ordering::SeqCst);
    let res = request(addr, req).await?;
    let calls = upstream.calls.load(Ordering::SeqCst) - before;
    let mut cors: Vec<(String, String)> = res
        .headers()
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("access-control-"))
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    cors.sort();
    let vary = res
        .headers()
        .get_all("vary")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Answer {
        status: res.status().as_u16(),
        cors,
        vary,
        forwarded: calls == 1,
    })
}

/// One HTTP/1.1 request on a fresh connection; the body is read to the end.
async fn request(addr: SocketAddr, req: Request<Empty<Bytes>>) -> TestResult<Response<Bytes>> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let res = tokio::time::timeout(DEADLINE, sender.send_request(req)).await??;
    let (parts, body) = res.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

async fn get(addr: SocketAddr, path: &str) -> TestResult<(StatusCode, String)> {
    let mut req = Request::new(Empty::<Bytes>::new());
    *req.uri_mut() = path.parse()?;
    req.headers_mut()
        .insert("host", HeaderValue::from_str(&addr.to_string())?);
    let res = request(addr, req).await?;
    Ok((
        res.status(),
        String::from_utf8_lossy(res.body()).into_owned(),
    ))
}

/// The per-decision counters of an agent's `/metrics` (requests by
/// decision and reason, preflights, blocked by service), by series.
pub async fn decision_metrics(admin: SocketAddr) -> TestResult<BTreeMap<String, String>> {
    let (status, text) = get(admin, "/metrics").await?;
    if status != StatusCode::OK {
        return Err(format!("/metrics: {status}").into());
    }
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("corsair_agent_requests_total")
                || l.starts_with("corsair_agent_preflights_total")
                || l.starts_with("corsair_agent_blocked_total")
        })
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_owned(), value.to_owned()))
        .collect())
}

/// (origin, method, reason, would_block) → count, over every telemetry
/// batch the agent spilled (none was acknowledged: no control plane).
pub fn telemetry(cache: &Path) -> TestResult<BTreeMap<(String, String, String, bool), u64>> {
    let mut counts = BTreeMap::new();
    let dir = cache.join("telemetry");
    if !dir.exists() {
        return Ok(counts);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_batch = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("batch-"));
        if !is_batch {
            continue;
        }
        let batch: Batch = serde_json::from_slice(&std::fs::read(&path)?)?;
        for c in batch.counts {
            *counts
                .entry((c.origin, c.method, c.reason, c.would_block))
                .or_insert(0) += c.count;
        }
    }
    Ok(counts)
}
