//! The telemetry spool across crashes: the real `corsair-agent` binary,
//! failing closed (no policy, no control plane) so that every preflight is
//! refused and counted, is killed with SIGKILL while it writes a batch, and
//! restarted on the same cache directory, several times over.
//!
//! What must hold (the loss window documented in `agent/src/report/mod.rs`
//! and the README): every refusal answered before the newest batch on disk
//! was cut is in a batch on disk; nothing is counted twice; every batch
//! file on disk reads back whole; a restart keeps what earlier runs
//! spilled; and the spool reopens with its batches in order and no
//! half-written file left.

use corsair_agent::report::{Batch, SpillQueue};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const AGENT: &str = env!("CARGO_BIN_EXE_corsair-agent");
/// `--report-interval`: short, so that a round sees several spills.
const INTERVAL: &str = "0.1";
/// Kill/restart rounds, each with its own origin.
const ROUNDS: usize = 4;
/// Batches a round waits for before it arms the kill.
const SPILLS_BEFORE_KILL: usize = 3;
/// The longest any step may take (a shared, busy machine).
const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn sigkill_mid_spill_loses_nothing_before_the_last_spill() -> TestResult {
    let cache = tempfile::tempdir()?;
    let spool = cache.path().join("telemetry");
    let mut kept: Vec<u64> = Vec::new();
    let mut mid_write = 0;
    for round in 0..ROUNDS {
        let origin = format!("https://round{round}.example");
        let (mut agent, addr) = start_agent(cache.path())?;
        let client = Client::start(addr, origin.clone())?;

        // Let the spool work, then kill the agent the moment a batch (or
        // its sequence number) is being written: a temporary file exists.
        wait_for("spilled batches", || {
            Ok(batches_with(&spool, &origin)?.len() >= SPILLS_BEFORE_KILL)
        })?;
        let writing = wait_for_temporary(&spool)?;
        agent.kill()?;
        agent.wait()?;
        let answered = client.stop()?;
        if writing {
            mid_write += 1;
        }

        let batches = batches_with(&spool, &origin)?;
        let spilled: u64 = batches.iter().map(|b| events_of(b, &origin)).sum();
        let cut_at = batches.iter().map(|b| b.end_ms).max().unwrap_or(0);
        let before_cut = answered.iter().filter(|&&ms| ms < cut_at).count() as u64;
        assert!(
            spilled >= before_cut,
            "round {round}: {before_cut} refusals were answered before the last spill, \
             only {spilled} are on disk"
        );
        // At most one more: the request in flight when the agent died
        // (counted, then killed before its answer got out).
        assert!(
            spilled <= answered.len() as u64 + 1,
            "round {round}: {spilled} events on disk for {} answered requests",
            answered.len()
        );
        assert!(
            spilled > 0,
            "round {round}: nothing spilled for {} requests",
            answered.len()
        );
        // A restart keeps everything earlier runs spilled.
        for (earlier, &count) in kept.iter().enumerate() {
            let origin = format!("https://round{earlier}.example");
            let now: u64 = batches_with(&spool, &origin)?
                .iter()
                .map(|b| events_of(b, &origin))
                .sum();
            assert_eq!(
                now, count,
                "round {round} changed round {earlier}'s batches"
            );
        }
        kept.push(spilled);
        eprintln!(
            "round {round}: {} answered, {spilled} spilled, {} after the last spill; \
             killed {} a write",
            answered.len(),
            answered.len() as u64 - before_cut,
            if writing { "during" } else { "outside" }
        );
    }
    eprintln!("{mid_write} of {ROUNDS} kills landed during a write");

    let files = batch_files(&spool)?.len();
    let mut queue = SpillQueue::open(&spool, 1_000_000)?;
    assert_eq!(queue.len(), files, "every batch file reads back");
    let mut last = None;
    while let Some(batch) = queue.pop_front() {
        assert!(
            last.is_none_or(|l| batch.sequence > l),
            "sequence numbers strictly increase"
        );
        last = Some(batch.sequence);
    }
    let leftovers: Vec<String> = std::fs::read_dir(&spool)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    Ok(())
}

/// Starts the agent failing closed (its control plane and upstream are a
/// closed port), with a short report interval; returns it and its address.
fn start_agent(cache: &Path) -> TestResult<(Child, SocketAddr)> {
    for _ in 0..5 {
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cache.join("agent.log"))?;
        let mut child = Command::new(AGENT)
            .arg("proxy")
            .args(["--listen", &addr.to_string()])
            .args(["--upstream", "http://127.0.0.1:9"])
            .args(["--control-plane", "http://127.0.0.1:9"])
            .args(["--token", "unused", "--service", "svc"])
            .arg("--cache-dir")
            .arg(cache)
            .args(["--report-interval", INTERVAL])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let until = Instant::now() + DEADLINE;
        loop {
            if child.try_wait()?.is_some() {
                break; // e.g. the port was taken meanwhile: try another
            }
            if TcpStream::connect(addr).is_ok() {
                return Ok((child, addr));
            }
            if Instant::now() > until {
                let _ = child.kill();
                return Err("the agent did not start listening".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let log = std::fs::read_to_string(cache.join("agent.log")).unwrap_or_default();
    Err(format!("the agent did not start:\n{log}").into())
}

/// Sends refused preflights over one keep-alive connection until stopped
/// (or the agent dies), stamping each answer with the wall clock.
struct Client {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<TestResult<Vec<i64>>>,
}

impl Client {
    fn start(addr: SocketAddr, origin: String) -> TestResult<Self> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(DEADLINE))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let request = format!(
            "OPTIONS /x HTTP/1.1\r\nHost: api\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: PUT\r\n\r\n"
        );
        let thread = std::thread::spawn(move || {
            let mut answered = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if stream.write_all(request.as_bytes()).is_err() {
                    break;
                }
                match read_status(&mut stream) {
                    Ok(Some(403)) => answered.push(now_ms()),
                    Ok(Some(status)) => return Err(format!("status {status}, expected 403").into()),
                    // The agent was killed.
                    Ok(None) | Err(_) => break,
                }
            }
            Ok(answered)
        });
        Ok(Self { stop, thread })
    }

    /// Stops sending; the answer time (Unix ms) of every refusal.
    fn stop(self) -> TestResult<Vec<i64>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| "the client thread panicked")?
    }
}

/// Reads one response (head and `Content-Length` body); its status, or
/// `None` when the connection closed first.
fn read_status(stream: &mut TcpStream) -> TestResult<Option<u16>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status line")?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(Some(status))
}

/// Polls until a temporary file (a write in progress) shows in `dir`:
/// `true`; `false` if none showed within a second (the kill then lands
/// between writes, which must be safe too).
fn wait_for_temporary(dir: &Path) -> TestResult<bool> {
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        for entry in std::fs::read_dir(dir)? {
            // An entry may vanish between listing and reading: skip it.
            let Ok(entry) = entry else { continue };
            if entry.file_name().to_string_lossy().contains(".tmp-") {
                return Ok(true);
            }
        }
        std::thread::yield_now();
    }
    Ok(false)
}

fn wait_for(what: &str, mut check: impl FnMut() -> TestResult<bool>) -> TestResult {
    let until = Instant::now() + DEADLINE;
    while !check()? {
        if Instant::now() > until {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn batch_files(dir: &Path) -> TestResult<Vec<std::path::PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("batch-") && name.ends_with(".json") {
            files.push(path);
        }
    }
    Ok(files)
}

/// Every batch on disk with counts for `origin`; a file that does not
/// parse fails the test (a torn write).
fn batches_with(dir: &Path, origin: &str) -> TestResult<Vec<Batch>> {
    let mut batches = Vec::new();
    for path in batch_files(dir)? {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // Acknowledged and removed meanwhile cannot happen (no control
            // plane), but a listing race must not fail the test.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let batch: Batch = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: torn or corrupt batch: {e}", path.display()))?;
        if batch.counts.iter().any(|c| c.origin == origin) {
            batches.push(batch);
        }
    }
    Ok(batches)
}

fn events_of(batch: &Batch, origin: &str) -> u64 {
    batch
        .counts
        .iter()
        .filter(|c| c.origin == origin)
        .map(|c| c.count)
        .sum()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
