//! The fleet simulator: thousands of real agent sync clients
//! ([`corsair_agent::sync::SyncClient`], each on its own HTTP/2 connection,
//! with its own backoff and ACK path) against a real
//! `corsair-control-plane serve` process on a fresh database.
//!
//! - [`harness`]: the control plane as a child process (start, `kill -9`,
//!   start again on the same ports), its database and the REST calls the
//!   benchmark makes (request and approve an origin).
//! - [`fleet`]: the simulated agents and what each one saw (revisions
//!   applied, connection attempts, with times).
//! - [`proc_stats`]: a process's resident memory and CPU time from `/proc`.
//! - [`stats`]: percentiles and per-second histograms.
//! - [`storm`]: the crash scenario (`kill -9`, restart, reconnect storm).
//!
//! The binary (`cargo run --release -p corsair-fleet-bench -- --agents 1000`)
//! prints every figure of BENCHMARKS.md's "Fleet" section; the control
//! plane's reconnect test reuses this library at a smaller size.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod fleet;
pub mod harness;
pub mod proc_stats;
pub mod stats;
pub mod storm;

/// Raises this process's open-file limit (`RLIMIT_NOFILE`) to its hard
/// limit: every simulated agent holds a socket (and the cache writes open
/// files). Returns the new soft limit.
pub fn raise_open_files_limit() -> anyhow::Result<u64> {
    Ok(rlimit::increase_nofile_limit(u64::MAX)?)
}
