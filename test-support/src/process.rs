//! Real binaries as child processes: output captured in a log file, waits
//! that fail at once (with the log) when the process exits first, a
//! SIGTERM stop, and `corsair-control-plane serve` started until it serves.

use crate::{Check, eventually_within};
use anyhow::{Context, Result};
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long a process may take to start or to stop: generous, because the
/// machine is shared and some tests build or start several processes.
pub const PROCESS_DEADLINE: Duration = Duration::from_secs(60);

/// A loopback port nobody listened on a moment ago, for programs that take
/// an address rather than a bound listener. Another process may take it in
/// between; callers that can retry on "address in use" should.
///
/// Chosen at random below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`), not by binding port 0: a port from
/// that range can be taken in between as the source port of any outgoing
/// connection (tests make many: Postgres, HTTP clients), which made a
/// child's bind fail with "address in use" now and then. Below the range
/// only another explicit bind can take it, and two tests drawing the same
/// port at once is a one-in-thousands chance.
pub fn free_port() -> Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    const LOWEST: u16 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_low > LOWEST + 1_000 {
        let span = u64::from(ephemeral_low - LOWEST);
        for _ in 0..50 {
            // A fresh RandomState is randomly keyed: a random number
            // without a dependency for it.
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u32(std::process::id());
            let offset = u16::try_from(hasher.finish() % span).unwrap_or(0);
            let port = LOWEST + offset;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    // A kernel with an unusual range, or no free port found: the kernel's choice.
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// [`free_port`] as `127.0.0.1:port`.
pub fn free_addr() -> Result<SocketAddr> {
    Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?)))
}

/// A child process with stdout and stderr in one log file. Dropping it
/// sends SIGTERM, waits up to 5 s, then kills it.
pub struct Process {
    /// A name for messages ("nginx", "serve").
    pub name: String,
    /// The process itself.
    pub child: Child,
    log: PathBuf,
}

impl Process {
    /// Spawns `command` (stdin closed, `RUST_LOG=info` unless it sets its
    /// own) with its output in `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        if !command.as_std().get_envs().any(|(k, _)| k == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Some(message)` with the log when the process has exited.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status}):\n{}", self.name, self.log())),
            Ok(None) => None,
            Err(e) => Some(format!("{}: {e}", self.name)),
        }
    }

    /// Waits until the log contains `needle`; fails at once if the process
    /// exits first, and after [`PROCESS_DEADLINE`] with the log.
    pub async fn wait_log(&mut self, needle: &str) -> Result<()> {
        let what = format!("{:?} in the log of {}", needle, self.name);
        eventually_within(PROCESS_DEADLINE, &what, || {
            let check = if self.log().contains(needle) {
                Check::Ready(())
            } else if let Some(exit) = self.exited() {
                Check::Failed(exit)
            } else {
                Check::Pending(format!("log so far:\n{}", self.log()))
            };
            async move { check }
        })
        .await
    }

    /// Waits until `addr` accepts TCP connections; fails at once if the
    /// process exits first.
    pub async fn wait_listening(&mut self, addr: SocketAddr) -> Result<()> {
        let what = format!("{} to listen on {addr}", self.name);
        eventually_within(PROCESS_DEADLINE, &what, || {
            let exit = self.exited();
            async move {
                if let Some(exit) = exit {
                    return Check::Failed(exit);
                }
                match TcpStream::connect(addr).await {
                    Ok(_) => Check::Ready(()),
                    Err(e) => Check::Pending(e.to_string()),
                }
            }
        })
        .await
    }

    /// Sends SIGTERM (if still running) and waits for the exit status; kills
    /// it and fails if it does not exit within [`PROCESS_DEADLINE`].
    pub async fn stop(&mut self) -> Result<ExitStatus> {
        if self.child.try_wait()?.is_none() {
            self.signal("-TERM")?;
        }
        match tokio::time::timeout(PROCESS_DEADLINE, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                self.child.kill().await?;
                anyhow::bail!("{} did not stop after SIGTERM:\n{}", self.name, self.log())
            }
        }
    }

    /// Sends a signal (`-TERM`, `-KILL`, …) with kill(1).
    pub fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.child.id().context("the process has exited")?;
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill {signal} {pid} failed");
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) || self.signal("-TERM").is_err() {
            return;
        }
        // Give it the chance to exit cleanly (nginx stops its workers);
        // kill_on_drop kills it after that.
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `corsair-control-plane serve` as a child process, on free loopback ports.
pub struct Serve {
    /// The process; its log is `serve.log` in the directory given.
    pub process: Process,
    /// The HTTP listener (API, UI, probes).
    pub http: SocketAddr,
    /// The gRPC listener.
    pub grpc: SocketAddr,
}

impl Serve {
    /// Spawns `binary serve --database-url URL --http … --grpc …
    /// --signing-key-file KEY EXTRA…` (pass
    /// `env!("CARGO_BIN_EXE_corsair-control-plane")`), logging to
    /// `<log_dir>/serve.log`, without waiting for it.
    pub fn spawn<I, S>(
        binary: &str,
        database_url: &str,
        signing_key_file: &Path,
        extra: I,
        log_dir: &Path,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::spawn_at(
            binary,
            database_url,
            signing_key_file,
            (free_addr()?, free_addr()?),
            extra,
            log_dir,
        )
    }

    /// Like [`Serve::spawn`], on the given `(http, grpc)` addresses (those
    /// of a `serve` that was stopped or killed, to start it again where its
    /// clients look for it). The log is `<log_dir>/serve-<http port>.log`;
    /// a restart starts it afresh (so [`Serve::wait_serving`] waits for the
    /// new process).
    pub fn spawn_at<I, S>(
        binary: &str,
        database_url: &str,
        signing_key_file: &Path,
        (http, grpc): (SocketAddr, SocketAddr),
        extra: I,
        log_dir: &Path,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(binary);
        command
            .env_remove("CORSAIR_DATABASE_URL")
            .args(["serve", "--database-url", database_url])
            .args(["--http", &http.to_string(), "--grpc", &grpc.to_string()])
            .arg("--signing-key-file")
            .arg(signing_key_file)
            .args(extra);
        let log = log_dir.join(format!("serve-{}.log", http.port()));
        let process = Process::spawn("corsair-control-plane serve", command, &log)?;
        Ok(Self {
            process,
            http,
            grpc,
        })
    }

    /// Waits until it logs that both listeners serve; returns it.
    pub async fn serving(mut self) -> Result<Self> {
        self.wait_serving().await?;
        Ok(self)
    }

    /// Waits until the process logs "control plane serving".
    pub async fn wait_serving(&mut self) -> Result<()> {
        self.process.wait_log("control plane serving").await
    }

    /// `http://127.0.0.1:<http port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }
}
