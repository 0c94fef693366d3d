//! `corsair-fleet-bench`: N simulated agents against a real control plane;
//! prints every figure of BENCHMARKS.md's "Fleet" section.
//!
//! ```text
//! cargo run --release -p corsair-fleet-bench -- --agents 1000
//! cargo run --release -p corsair-fleet-bench -- --agents 1000 --storm
//! ```

use anyhow::{Context, Result, bail};
use clap::Parser;
use corsair_fleet_bench::fleet::Fleet;
use corsair_fleet_bench::harness::{self, Harness};
use corsair_fleet_bench::proc_stats::{self, Sample};
use corsair_fleet_bench::stats::{histogram, summary};
use corsair_fleet_bench::{raise_open_files_limit, storm};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fleet benchmark: connect N agents, approve changes, measure.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// How many simulated agents (each its own sync client and HTTP/2 connection).
    #[arg(long, env = "CORSAIR_FLEET_AGENTS", default_value_t = 1000,
          value_parser = at_least_one)]
    agents: usize,
    /// How many approvals to time, one after another (each waits until
    /// every agent holds the previous one).
    #[arg(long, env = "CORSAIR_FLEET_APPROVALS", default_value_t = 20,
          value_parser = at_least_one)]
    approvals: usize,
    /// Afterwards, `kill -9` the control plane, keep it down for
    /// `--down-for`, start it again and measure the reconnects.
    #[arg(long, env = "CORSAIR_FLEET_STORM")]
    storm: bool,
    /// How long the control plane stays down in `--storm`, in seconds
    /// (0 to 600).
    #[arg(long, env = "CORSAIR_FLEET_DOWN_FOR", default_value_t = 3.0,
          value_parser = down_for_seconds)]
    down_for: f64,
    /// The `corsair-control-plane` binary; by default `cargo build` builds
    /// it in the same profile and target directory as this program.
    #[arg(long, env = "CORSAIR_FLEET_CONTROL_PLANE_BIN")]
    control_plane_bin: Option<PathBuf>,
    /// Threads for the agents' blocking work (their last-known-good cache
    /// writes, CPU-bound on tmpfs); by default one per CPU. A real agent
    /// has a blocking pool of its own; 10,000 agents sharing this
    /// process's default pool woke up to 512 threads per approval, a cost
    /// of the simulation and not of the agents.
    #[arg(long, env = "CORSAIR_FLEET_BLOCKING_THREADS",
          value_parser = clap::value_parser!(u16).range(1..))]
    blocking_threads: Option<u16>,
    /// Where the agents' last-known-good caches go (one directory each);
    /// by default under /dev/shm, so that the agents' fsyncs do not
    /// measure this machine's disk.
    #[arg(long, env = "CORSAIR_FLEET_CACHE_ROOT")]
    cache_root: Option<PathBuf>,
}

/// A count of at least 1 (a run of no agents or no approvals measures nothing).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number of at least 1")),
    }
}

/// Seconds between 0 and 600.
fn down_for_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(secs) if (0.0..=600.0).contains(&secs) => Ok(secs),
        _ => Err(format!("{s:?} is not a number of seconds from 0 to 600")),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let blocking_threads = args
        .blocking_threads
        .map_or_else(|| cpus().max(1), usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads)
        .build()
        .context("starting the Tokio runtime")?
        .block_on(async {
            // On SIGINT or SIGTERM the run is dropped rather than the
            // process killed outright, so the control plane child and the
            // database are stopped by their destructors, not left behind.
            tokio::select! {
                result = run(args, blocking_threads) => result,
                signal = interrupted() => bail!("stopped by {signal}; the control plane and its database were shut down"),
            }
        })
}

/// Resolves with the signal's name on the first SIGINT or SIGTERM.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        // No handler could be installed: the default action stays.
        _ => std::future::pending().await,
    }
}

async fn run(args: Args, blocking_threads: usize) -> Result<()> {
    let nofile = raise_open_files_limit()?;
    let binary = match &args.control_plane_bin {
        Some(path) => path.clone(),
        None => harness::build_control_plane()?,
    };
    let n = args.agents;
    println!("# corsair-fleet-bench");
    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("started: {}", now_utc());
    println!("machine: {} CPUs, {} RAM", cpus(), mem_total());
    println!("load average before: {}", loadavg());
    println!(
        "agents: {n} (one sync client and HTTP/2 connection each); simulator RLIMIT_NOFILE {nofile}, {blocking_threads} blocking threads"
    );

    let mut harness = Harness::start(&binary).await?;
    let pid = harness.pid().context("control plane has no pid")?;
    let cache_root = match &args.cache_root {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None if std::path::Path::new("/dev/shm").is_dir() => tempfile::tempdir_in("/dev/shm")?,
        None => tempfile::tempdir()?,
    };
    let idle = proc_stats::sample(pid)?;

    // Connect-all: from every client starting at once to every agent
    // connected and holding the current revision.
    let revision = harness.revision().await?;
    let started = Instant::now();
    let fleet = Arc::new(Fleet::start(
        n,
        &harness.grpc_url(),
        &harness.agent_token,
        cache_root.path(),
    )?);
    fleet
        .wait_converged(revision, Duration::from_secs(600))
        .await?;
    let connect_all = started.elapsed();
    let connected = proc_stats::sample(pid)?;
    println!("\n## Connect");
    println!(
        "connect-all (start to every agent connected and holding revision {revision}): {:.2} s",
        connect_all.as_secs_f64()
    );
    let reconnects: u64 = fleet
        .agents
        .iter()
        .map(|a| a.status.borrow().reconnects)
        .sum();
    println!("connection attempts beyond the first, all agents: {reconnects}");
    print_memory(&idle, &connected, n);

    // Approvals, one at a time.
    let mut per_agent = Vec::new();
    let mut all_applied = Vec::new();
    let mut all_acked = Vec::new();
    let mut revisions = Vec::new();
    let mut last_origin = String::new();
    let before_approvals = proc_stats::sample(pid)?;
    let simulator_before = proc_stats::sample(std::process::id())?;
    let postgres_before = proc_stats::cpu_seconds_of("postgres")?;
    for _ in 0..args.approvals {
        let (id, origin) = harness.request_origin().await?;
        let t0 = Instant::now();
        harness.approve(&id).await?;
        let revision = harness.revision().await?;
        fleet
            .wait_converged(revision, Duration::from_secs(120))
            .await?;
        let latencies: Vec<Duration> = fleet
            .agents
            .iter()
            .filter_map(|a| {
                a.log()
                    .applied
                    .iter()
                    .find(|(r, _)| *r == revision)
                    .map(|(_, t)| *t - t0)
            })
            .collect();
        all_applied.push(latencies.iter().max().copied().unwrap_or_default());
        per_agent.extend(latencies);
        harness
            .wait_acked(revision, n as i64, Duration::from_secs(120))
            .await?;
        all_acked.push(t0.elapsed());
        revisions.push(revision);
        last_origin = origin;
    }
    let after_approvals = proc_stats::sample(pid)?;
    let simulator_after = proc_stats::sample(std::process::id())?;
    let postgres_cpu = proc_stats::cpu_seconds_of("postgres")? - postgres_before;
    println!(
        "\n## Approvals ({} approvals through the REST API, one after another)",
        args.approvals
    );
    println!(
        "approval -> each agent applied (every agent x approval): {}",
        summary(&per_agent)
    );
    println!(
        "approval -> last agent applied (per approval): {}",
        summary(&all_applied)
    );
    println!(
        "approval -> every ACK recorded in agent_services (per approval, counted at each ACK batch's NOTIFY): {}",
        summary(&all_acked)
    );
    println!(
        "control plane CPU during the approvals: {:.2} s ({:.3} s per approval); RSS after: {} KiB",
        after_approvals.cpu_seconds - before_approvals.cpu_seconds,
        (after_approvals.cpu_seconds - before_approvals.cpu_seconds) / args.approvals.max(1) as f64,
        after_approvals.rss_kib
    );
    println!(
        "simulator CPU during the approvals (the agents' share of the same 2 cores): {:.2} s ({:.3} s per approval)",
        simulator_after.cpu_seconds - simulator_before.cpu_seconds,
        (simulator_after.cpu_seconds - simulator_before.cpu_seconds) / args.approvals.max(1) as f64
    );
    println!(
        "PostgreSQL CPU during the approvals (every process of the cluster on this machine): {postgres_cpu:.2} s ({:.3} s per approval)",
        postgres_cpu / args.approvals.max(1) as f64
    );
    match fleet.check_no_change_lost(&revisions) {
        Ok(()) => println!(
            "no change lost: every agent held every approved revision, in order ({} revisions)",
            revisions.len()
        ),
        Err(error) => println!("CHANGE LOST: {error:#}"),
    }

    if args.storm {
        let report = storm::run(
            &mut harness,
            &fleet,
            &last_origin,
            Duration::from_secs_f64(args.down_for),
        )
        .await?;
        print_storm(&report, n);
    }
    println!("\nload average after: {}", loadavg());
    println!("finished: {}", now_utc());
    if let Ok(fleet) = Arc::try_unwrap(fleet) {
        fleet.stop().await;
    }
    Ok(())
}

fn print_memory(idle: &Sample, connected: &Sample, n: usize) {
    let grown = connected.rss_kib.saturating_sub(idle.rss_kib);
    println!(
        "control plane RSS: {} KiB before, {} KiB with every agent connected: {:.1} KiB per stream",
        idle.rss_kib,
        connected.rss_kib,
        grown as f64 / n.max(1) as f64
    );
    println!(
        "control plane CPU while connecting: {:.2} s",
        connected.cpu_seconds - idle.cpu_seconds
    );
}

fn print_storm(report: &storm::StormReport, n: usize) {
    println!(
        "\n## Crash and restart (kill -9, down {:.1} s)",
        report.down_for.as_secs_f64()
    );
    println!(
        "revision approved in the database while down: {}; approved through the API right after the restart: {}",
        report.revision_while_down, report.final_revision
    );
    println!(
        "restart -> every agent connected at revision {}: {:.2} s",
        report.final_revision,
        report.converged_after_restart.as_secs_f64()
    );
    println!(
        "connection attempts after the kill: {} ({:.1} per agent)",
        report.attempts.len(),
        report.attempts.len() as f64 / n.max(1) as f64
    );
    let per_second = histogram(&report.attempts, Duration::from_secs(1));
    println!("attempts per second since the kill: {per_second:?}");
    let per_100ms = histogram(&report.attempts, Duration::from_millis(100));
    let busiest = per_100ms.iter().max().copied().unwrap_or(0);
    println!(
        "busiest 100 ms: {busiest} attempts ({:.1} % of all); 100 ms buckets with attempts: {}",
        100.0 * busiest as f64 / report.attempts.len().max(1) as f64,
        per_100ms.iter().filter(|c| **c > 0).count()
    );
    println!(
        "enforcement while down and recovering: {} checks of every agent's handle, {} found an agent not granting the approved origin",
        report.enforcement_checks, report.enforcement_failures
    );
    if let Some(last) = report.samples.last() {
        let peak = report
            .samples
            .iter()
            .map(|(_, s)| s.rss_kib)
            .max()
            .unwrap_or(0);
        println!(
            "restarted control plane: peak RSS {} KiB ({:.1} KiB per agent), {} KiB at convergence; CPU {:.2} s from start to convergence",
            peak,
            peak as f64 / n.max(1) as f64,
            last.1.rss_kib,
            last.1.cpu_seconds
        );
        let rss: Vec<String> = report
            .samples
            .iter()
            .step_by(5)
            .map(|(t, s)| {
                format!(
                    "{:.1}s:{}MiB/{:.1}cpu",
                    t.as_secs_f64(),
                    s.rss_kib / 1024,
                    s.cpu_seconds
                )
            })
            .collect();
        println!(
            "restarted control plane every 0.5 s (time: RSS / CPU seconds): {}",
            rss.join(" ")
        );
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn loadavg() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" / ")
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

fn mem_total() -> String {
    read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or("?".into(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0)
        })
}

fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
