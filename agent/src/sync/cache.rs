//! The last-known-good cache: one file per service in the cache dir, written
//! atomically (temp file, fsync, rename, fsync dir: [`crate::durable`]) with
//! a SHA-256 checksum, plus the agent's stable id.
//!
//! File format: one header line `corsair-snapshot v1 sha256=<hex>` followed
//! by the snapshot as JSON; the checksum covers the JSON bytes.

use super::snapshot::Snapshot;
use crate::durable::write_atomic;
use sha2::{Digest, Sha256};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const HEADER_PREFIX: &str = "corsair-snapshot v1 sha256=";
const AGENT_ID_FILE: &str = "agent-id";

/// Why a cached snapshot was not usable.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a valid cache entry (truncated, corrupt, tampered).
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The cache file of `service` in `dir`. Service names that are not plain
/// slugs are hex-encoded so a name can never escape the directory.
pub fn snapshot_path(dir: &Path, service: &str) -> PathBuf {
    let slug = !service.is_empty()
        && service.len() <= 100
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let name = if slug {
        format!("policy-{service}.snapshot")
    } else {
        format!("policy-x{}.snapshot", hex(service.as_bytes()))
    };
    dir.join(name)
}

/// Writes `snapshot` to its cache file atomically.
pub fn write_snapshot(dir: &Path, snapshot: &Snapshot) -> Result<(), CacheError> {
    let path = snapshot_path(dir, &snapshot.service);
    let json = serde_json::to_vec(snapshot).map_err(|e| CacheError::Corrupt {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut contents = format!("{HEADER_PREFIX}{}\n", hex(&Sha256::digest(&json))).into_bytes();
    contents.extend_from_slice(&json);
    write_atomic(&path, &contents).map_err(|source| CacheError::Io { path, source })
}

/// Reads the cached snapshot of `service`: `Ok(None)` when there is none,
/// an error when the file exists but cannot be trusted.
pub fn read_snapshot(dir: &Path, service: &str) -> Result<Option<Snapshot>, CacheError> {
    let path = snapshot_path(dir, service);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CacheError::Io { path, source }),
    };
    let corrupt = |message: &str| CacheError::Corrupt {
        path: path.clone(),
        message: message.to_owned(),
    };
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("no header line"))?;
    let (header, json) = (&bytes[..newline], &bytes[newline + 1..]);
    let expected = std::str::from_utf8(header)
        .ok()
        .and_then(|h| h.strip_prefix(HEADER_PREFIX))
        .ok_or_else(|| corrupt("unknown header"))?;
    if hex(&Sha256::digest(json)) != expected {
        return Err(corrupt("checksum mismatch"));
    }
    let snapshot: Snapshot =
        serde_json::from_slice(json).map_err(|e| corrupt(&format!("unparsable snapshot: {e}")))?;
    if snapshot.service != service {
        return Err(corrupt("snapshot is for another service"));
    }
    Ok(Some(snapshot))
}

/// The agent's stable id, created (a random UUID) on first use.
pub fn agent_id(dir: &Path) -> Result<String, CacheError> {
    let path = dir.join(AGENT_ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            if let Ok(id) = uuid::Uuid::parse_str(text.trim()) {
                return Ok(id.to_string());
            }
            tracing::warn!(path = %path.display(), "agent id file is not a UUID; making a new id");
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(CacheError::Io { path, source }),
    }
    let id = uuid::Uuid::new_v4().to_string();
    write_atomic(&path, format!("{id}\n").as_bytes())
        .map_err(|source| CacheError::Io { path, source })?;
    Ok(id)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests;
