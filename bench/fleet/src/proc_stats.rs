//! A process's resident memory and CPU time, read from `/proc` (Linux).

use anyhow::{Context, Result};

/// Clock ticks per second of `/proc/PID/stat` (`USER_HZ`, 100 on every
/// Linux architecture this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Resident set size (`VmRSS` of `/proc/PID/status`), in KiB.
    pub rss_kib: u64,
    /// User + system CPU time since the process started
    /// (`utime + stime` of `/proc/PID/stat`), in seconds.
    pub cpu_seconds: f64,
}

/// Reads `pid`'s resident memory and CPU time.
pub fn sample(pid: u32) -> Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces and parentheses):
    // state is field 3, utime and stime are fields 14 and 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse::<u64>()? as f64)
    };
    // `after` starts at field 3, so field n is at index n - 3.
    let cpu_seconds = (ticks(14 - 3)? + ticks(15 - 3)?) / TICKS_PER_SECOND;
    Ok(Sample {
        rss_kib,
        cpu_seconds,
    })
}

/// CPU seconds (user + system) of every live process named `comm` (as in
/// `/proc/PID/comm`), e.g. all of a PostgreSQL cluster's processes. A
/// process that exits between two readings takes its time with it, so
/// compare readings of long-lived processes only (a connection pool's).
pub fn cpu_seconds_of(comm: &str) -> Result<f64> {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let is_it = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|name| name.trim_end() == comm);
        if is_it && let Ok(s) = sample(pid) {
            total += s.cpu_seconds;
        }
    }
    Ok(total)
}
