//! A private PostgreSQL server started from the machine's PostgreSQL
//! binaries, for `dev` and for tests on machines with no server running.
//!
//! `initdb` refuses to run as root, so when we are root the data directory is
//! handed to the `postgres` system user and the server runs as that user.

use anyhow::{Context, Result, anyhow, bail};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running private PostgreSQL server; stopped on drop.
#[derive(Debug)]
pub struct PrivatePostgres {
    bin_dir: PathBuf,
    base_dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
    stopped: bool,
}

impl PrivatePostgres {
    /// Finds the directory holding `initdb` and `pg_ctl`: first on `PATH`,
    /// then the newest `/usr/lib/postgresql/*/bin`.
    pub fn find_bin_dir() -> Option<PathBuf> {
        let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
        if let Some(dir) = std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).find(|d| has_both(d)))
        {
            return Some(dir);
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((version, e.path().join("bin")))
            })
            .filter(|(_, d)| has_both(d))
            .collect();
        versions.sort();
        versions.pop().map(|(_, d)| d)
    }

    /// Starts a server whose data lives in `base_dir/data` (created with
    /// `initdb` on first use, reused afterwards) on a free loopback port.
    pub fn start(base_dir: &Path) -> Result<Self> {
        let bin_dir = Self::find_bin_dir().ok_or_else(|| {
            anyhow!("no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin; install PostgreSQL or set DATABASE_URL")
        })?;
        std::fs::create_dir_all(base_dir)
            .with_context(|| format!("creating {}", base_dir.display()))?;
        let base_dir = base_dir.canonicalize()?;
        let data_dir = base_dir.join("data");
        let run_as = if is_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        if let Some((uid, gid)) = run_as {
            // The server user must own its data directory and reach it.
            std::os::unix::fs::chown(&base_dir, Some(uid), Some(gid))
                .with_context(|| format!("handing {} to the postgres user", base_dir.display()))?;
        }
        let mut pg = Self {
            bin_dir,
            base_dir,
            data_dir,
            port: free_port()?,
            run_as,
            stopped: true,
        };
        if !pg.data_dir.join("PG_VERSION").is_file() {
            pg.run(
                "initdb",
                &[
                    "-D".as_ref(),
                    pg.data_dir.as_os_str(),
                    "-U".as_ref(),
                    "postgres".as_ref(),
                    "--auth=trust".as_ref(),
                    "-E".as_ref(),
                    "UTF8".as_ref(),
                    "--no-locale".as_ref(),
                    "--no-sync".as_ref(),
                ],
            )?;
        }
        pg.start_server()?;
        Ok(pg)
    }

    /// Starts the server again after [`Self::stop`], on the same port and
    /// data (e.g. a test of a database restart); a no-op while it runs.
    pub fn restart(&mut self) -> Result<()> {
        if self.stopped {
            self.start_server()?;
        }
        Ok(())
    }

    fn start_server(&mut self) -> Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.base_dir.display()
        );
        let log = self.base_dir.join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                self.data_dir.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "start".as_ref(),
            ],
        )
        .with_context(|| format!("starting PostgreSQL (log: {})", log.display()))?;
        self.stopped = false;
        Ok(())
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A connection URL for `database` as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server (fast shutdown); idempotent.
    pub fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        // Already stopped from outside (the watchdog, an operator): done.
        if !self.data_dir.join("postmaster.pid").exists() {
            return Ok(());
        }
        let stopped = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                self.data_dir.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
        // Someone else's stop (the watchdog, an operator) may have finished
        // between our check and pg_ctl's: the server is down either way.
        match stopped {
            Err(_) if !self.data_dir.join("postmaster.pid").exists() => Ok(()),
            other => other,
        }
    }

    /// A shell command that stops this server once process `pid` has exited:
    /// a safety net for servers owned by a process that may never run its
    /// destructors (statics in test binaries). It polls `/proc/PID` rather
    /// than `kill -0`: the watchdog runs as the server's user, which may not
    /// signal our (root) process, and `kill -0` would then read as "exited".
    pub fn stop_when_process_exits(&self, pid: u32) -> Result<()> {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let script = format!(
            "while [ -e /proc/{pid} ]; do sleep 1; done; '{}' -D '{}' -m immediate stop >/dev/null 2>&1",
            pg_ctl.display(),
            self.data_dir.display()
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.process_group(0)
            .spawn()
            .context("starting the PostgreSQL watchdog")?;
        Ok(())
    }

    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
        let mut cmd = Command::new(self.bin_dir.join(tool));
        cmd.args(args).stdin(Stdio::null()).current_dir("/");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid).env("HOME", "/var/lib/postgresql");
        }
        // Keep the server out of our process group so a Ctrl-C in the
        // terminal reaches us first and we shut it down in order.
        cmd.process_group(0);
        let out = cmd.output().with_context(|| format!("running {tool}"))?;
        if !out.status.success() {
            bail!(
                "{tool} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "stopping private PostgreSQL");
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// uid and gid of the `postgres` system user, from /etc/passwd.
fn postgres_user() -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| anyhow!("running as root, but there is no 'postgres' system user to run PostgreSQL as (initdb refuses root)"))
}
