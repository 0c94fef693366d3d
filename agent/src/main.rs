//! `corsair-agent`: enforce a service's CORS policy, streamed from the
//! Corsair control plane, in front of an upstream. See `--help`.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use corsair_agent::control_plane::ControlPlaneArgs;
use corsair_agent::proxy::ProxyOptions;
use corsair_agent::proxy::sidecar::{self, SidecarConfig};
use corsair_agent::proxy::upstream::UpstreamHostHeader;
use corsair_agent::report::ReportConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

// mimalloc: the proxy allocates per request (hyper's buffers, header maps);
// glibc malloc was a visible share of its profile (BENCHMARKS.md, "Proxy").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Corsair agent.
#[derive(Debug, Parser)]
#[command(name = "corsair-agent", version, about)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        env = "CORSAIR_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
    /// Threads serving requests. 1 runs everything on one thread (a
    /// current-thread runtime: no cross-thread wake-ups, the fastest choice
    /// on one CPU). Default: the CPUs this process may run on (its affinity
    /// mask and cgroup quota), so `taskset -c 1` means 1.
    #[arg(long, env = "CORSAIR_WORKER_THREADS", global = true,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run as a sidecar reverse proxy in front of an upstream.
    Proxy(ProxyArgs),
    /// Answer nginx `auth_request` subrequests (and preflights) with the
    /// policy's decision; nginx forwards. See deploy/nginx/README.md.
    Authz(AuthzArgs),
}

/// The flags every mode shares: the control plane, the service, the
/// listeners, the cache, telemetry and drain.
#[derive(Debug, clap::Args)]
struct AgentArgs {
    #[command(flatten)]
    control_plane: ControlPlaneArgs,
    /// The service whose policy this agent enforces.
    #[arg(long, env = "CORSAIR_SERVICE")]
    service: String,
    /// Address to accept requests on: client traffic (proxy), or the
    /// gateway's decision requests, GET /authz (authz; keep it on loopback
    /// or a private network: only the gateway calls it).
    #[arg(long, env = "CORSAIR_LISTEN")]
    listen: SocketAddr,
    /// Directory for the last-known-good policy cache, the agent id and
    /// unsent telemetry batches.
    #[arg(long, env = "CORSAIR_CACHE_DIR")]
    cache_dir: PathBuf,
    /// Address for the admin endpoints (/healthz, /readyz, /metrics).
    #[arg(long, env = "CORSAIR_METRICS")]
    metrics: Option<SocketAddr>,
    /// Name shown in the control plane's agent list (default: the host name).
    #[arg(long, env = "CORSAIR_AGENT_NAME")]
    agent_name: Option<String>,
    /// Blocked-request telemetry: aggregation and upload interval, in seconds.
    #[arg(long, env = "CORSAIR_REPORT_INTERVAL", default_value_t = 10.0)]
    report_interval: f64,
    /// Distinct (service, origin, method, reason) keys per interval before
    /// new ones are counted in one `(other)` bucket.
    #[arg(long, env = "CORSAIR_REPORT_MAX_KEYS", default_value_t = 10_000)]
    report_max_keys: usize,
    /// Unacknowledged telemetry batches kept (in memory and in --cache-dir)
    /// before the oldest are dropped; the dropped count is reported.
    #[arg(long, env = "CORSAIR_REPORT_QUEUE", default_value_t = 1_000)]
    report_queue: usize,
    /// Seconds in-flight requests and open WebSocket tunnels may take to
    /// finish after SIGTERM or Ctrl-C (/readyz answers 503 meanwhile); then
    /// connections are closed.
    #[arg(long, env = "CORSAIR_DRAIN_TIMEOUT", default_value_t = 10.0)]
    drain_timeout: f64,
    /// Seconds to keep accepting new connections after SIGTERM or Ctrl-C
    /// while /readyz already answers 503 (so endpoints update first); then
    /// the listener closes and --drain-timeout starts. 0: close at once.
    #[arg(long, env = "CORSAIR_DRAIN_DELAY", default_value_t = 0.0)]
    drain_delay: f64,
    /// Seconds a connection (--listen and --metrics) may stay without a
    /// request: to send a whole HTTP/1.1 request head, idle keep-alive time
    /// included, or the start of one or the HTTP/2 preface (slowloris); and
    /// an HTTP/2 connection with no request in flight (GOAWAY: requests in
    /// flight always finish). Then it is closed. The proxy's fast path
    /// checks at this interval, so it closes after one to two of it; hyper's
    /// path times the first bytes and the rest of the head one after the
    /// other, so up to two of it. An HTTP/2 connection quiet this long is
    /// also pinged and closed unless the ping is answered within this long
    /// again (a dead peer, even with requests in flight).
    #[arg(long, env = "CORSAIR_HEAD_TIMEOUT", default_value_t = 30.0)]
    head_timeout: f64,
}

impl AgentArgs {
    /// Binds --listen and --metrics.
    async fn bind(&self) -> anyhow::Result<(TcpListener, Option<TcpListener>)> {
        let listener = TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("binding --listen {}", self.listen))?;
        let admin = match self.metrics {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding --metrics {addr}"))?,
            ),
            None => None,
        };
        Ok((listener, admin))
    }

    /// The telemetry settings from the `--report-*` flags.
    fn report(&self) -> anyhow::Result<ReportConfig> {
        let interval = self.report_interval;
        if !(interval.is_finite() && interval >= 0.05) {
            anyhow::bail!("--report-interval must be at least 0.05 seconds");
        }
        Ok(ReportConfig {
            interval: Duration::from_secs_f64(interval),
            max_keys: self.report_max_keys,
            max_queue_batches: self.report_queue.max(1),
            ..ReportConfig::default()
        })
    }

    /// `--drain-timeout` and `--drain-delay`.
    fn drain(&self) -> anyhow::Result<(Duration, Duration)> {
        Ok((
            seconds("--drain-timeout", self.drain_timeout)?,
            delay_seconds("--drain-delay", self.drain_delay)?,
        ))
    }

    /// `--head-timeout`.
    fn head_timeout(&self) -> anyhow::Result<Duration> {
        seconds("--head-timeout", self.head_timeout)
    }

    fn agent_name(&self) -> String {
        self.agent_name.clone().unwrap_or_else(host_name)
    }
}

/// `proxy`: the shared flags plus where and how to forward.
#[derive(Debug, clap::Args)]
struct ProxyArgs {
    #[command(flatten)]
    agent: AgentArgs,
    /// Where to forward requests: http://host:port[/base-path] or
    /// https://host:port[/base-path].
    #[arg(long, env = "CORSAIR_UPSTREAM")]
    upstream: String,
    /// Seconds a new upstream connection may take, name resolution, TCP
    /// connect and (https://) TLS handshake together; then 504.
    #[arg(long, env = "CORSAIR_UPSTREAM_CONNECT_TIMEOUT", default_value_t = 5.0)]
    upstream_connect_timeout: f64,
    /// Seconds to wait for the upstream's response headers once the request
    /// body is all sent (and, during an upload, for the upstream to take the
    /// next piece); then 504. Waiting for the client's body does not count
    /// (see --request-body-timeout); the response body is not limited.
    #[arg(long, env = "CORSAIR_UPSTREAM_TIMEOUT", default_value_t = 60.0)]
    upstream_timeout: f64,
    /// Seconds to wait for the next piece of a client's request body; then
    /// 408 to the client and the upstream's connection is closed.
    #[arg(long, env = "CORSAIR_REQUEST_BODY_TIMEOUT", default_value_t = 60.0)]
    request_body_timeout: f64,
    /// PEM file of extra CA certificates trusted for an https:// --upstream,
    /// on top of the system's roots (refused with an http:// upstream). It
    /// must hold a certificate at start-up; it is read again for every new
    /// upstream connection, so a rotated CA needs no restart (open
    /// connections keep theirs). A changed file that cannot be read or
    /// holds no certificate is logged once and the previous CA kept.
    #[arg(long, env = "CORSAIR_UPSTREAM_CA_FILE")]
    upstream_ca_file: Option<PathBuf>,
    /// Trust the client's X-Forwarded-Proto/-Host and append to its
    /// X-Forwarded-For (only when a trusted proxy is the only way in).
    /// Without it all three are set from what this hop saw.
    #[arg(long, env = "CORSAIR_TRUST_FORWARDED_HEADERS")]
    trust_forwarded_headers: bool,
    /// Send every request through hyper's general HTTP path, switching off
    /// the fast path for plain bodiless HTTP/1.1 requests to an http://
    /// upstream (answers are the same; only the cost differs).
    #[arg(long, env = "CORSAIR_DISABLE_HTTP1_FAST_PATH")]
    disable_http1_fast_path: bool,
    /// Whose host the upstream gets as Host: the client's, or the
    /// --upstream URL's. The client's reaches it in X-Forwarded-Host either
    /// way.
    #[arg(
        long,
        env = "CORSAIR_UPSTREAM_HOST_HEADER",
        value_enum,
        default_value = "client"
    )]
    upstream_host_header: UpstreamHostHeader,
}

/// `authz` (nginx auth_request): the shared flags alone; the gateway forwards.
#[derive(Debug, clap::Args)]
struct AuthzArgs {
    #[command(flatten)]
    agent: AgentArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = runtime(cli.worker_threads)?;
    runtime.block_on(async {
        match cli.command {
            Command::Proxy(args) => proxy(args).await,
            Command::Authz(args) => authz(args).await,
        }
    })
}

/// The tokio runtime for `--worker-threads`: current-thread for 1, else a
/// multi-thread runtime with that many workers.
fn runtime(worker_threads: Option<u16>) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads = worker_threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        usize::from,
    );
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn proxy(args: ProxyArgs) -> anyhow::Result<()> {
    let (listener, admin) = args.agent.bind().await?;
    let report = args.agent.report()?;
    let (drain_timeout, drain_delay) = args.agent.drain()?;
    let head_timeout = args.agent.head_timeout()?;
    let config = SidecarConfig {
        agent_name: args.agent.agent_name(),
        control_plane: args.agent.control_plane.into(),
        service: args.agent.service,
        upstream: args.upstream,
        cache_dir: args.agent.cache_dir,
        proxy: ProxyOptions {
            connect_timeout: seconds("--upstream-connect-timeout", args.upstream_connect_timeout)?,
            upstream_timeout: seconds("--upstream-timeout", args.upstream_timeout)?,
            request_body_timeout: seconds("--request-body-timeout", args.request_body_timeout)?,
            head_timeout,
            upstream_ca_file: args.upstream_ca_file,
            drain_timeout,
            drain_delay,
            trust_forwarded_headers: args.trust_forwarded_headers,
            http1_fast_path: !args.disable_http1_fast_path,
            upstream_host_header: args.upstream_host_header,
        },
    };
    sidecar::run_with_report(config, report, listener, admin, shutdown_signal()).await
}

async fn authz(AuthzArgs { agent }: AuthzArgs) -> anyhow::Result<()> {
    use corsair_agent::authz::{self, AuthzConfig};
    let (listener, admin) = agent.bind().await?;
    let report = agent.report()?;
    let (drain_timeout, drain_delay) = agent.drain()?;
    let head_timeout = agent.head_timeout()?;
    let config = AuthzConfig {
        agent_name: agent.agent_name(),
        control_plane: agent.control_plane.into(),
        service: agent.service,
        cache_dir: agent.cache_dir,
        drain_timeout,
        drain_delay,
        head_timeout,
    };
    authz::run(config, report, listener, admin, shutdown_signal()).await
}

/// A duration flag: finite, at least a millisecond, at most a day.
fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    if !(value.is_finite() && (0.001..=86_400.0).contains(&value)) {
        anyhow::bail!("{flag} must be between 0.001 and 86400 seconds, got {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

/// A delay flag: like [`seconds`], but zero (no delay) is allowed.
fn delay_seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    if value == 0.0 {
        return Ok(Duration::ZERO);
    }
    seconds(flag, value)
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "corsair-agent".to_string())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a file, a pipe or a log collector gets
    // plain text, not escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
