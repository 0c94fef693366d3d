//! The bounded queue of unacknowledged batches, spilled to disk.
//!
//! Every batch is written to `<dir>/batch-<sequence>.json` before it is
//! queued and removed once acknowledged, so an agent restart resends what
//! was pending. The next sequence number is persisted too (before the batch
//! that uses it), so batch ids stay unique across restarts. Both writes go
//! through [`crate::durable::write_atomic`] (temporary file, fsync, rename,
//! fsync of the directory), so a written batch survives a crash or power
//! loss whole, and a half-written one is never read back. When the queue is
//! full the oldest batch is dropped and its events are carried, as
//! `dropped_events`, by the batch being queued: the loss is reported, never
//! silent. Its allowed counts are added to that batch's (they are per
//! pattern, not per origin, so they merge without loss; only their interval
//! moves later).
//!
//! Removing an acknowledged batch is not fsynced: after a crash it may come
//! back and be sent again, which the control plane ignores (the batch id is
//! its idempotency key).

use crate::durable::{is_temporary, write_atomic};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const SEQ_FILE: &str = "next-sequence";

/// One aggregated count, as uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// Service.
    pub service: String,
    /// Origin, or `(other)`.
    pub origin: String,
    /// Method.
    pub method: String,
    /// Reason.
    pub reason: String,
    /// Report-only.
    pub would_block: bool,
    /// Events.
    pub count: u64,
}

/// Allowed requests one approved pattern granted in an interval, as
/// uploaded. A wildcard pattern counts every origin it matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedCount {
    /// The service whose policy granted them.
    pub service: String,
    /// The approved pattern, as the policy lists it (e.g.
    /// `https://*.example.com`).
    pub pattern: String,
    /// Requests (actual requests and preflights) granted.
    pub count: u64,
}

/// One interval's batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// `<agent id>:<sequence>`.
    pub batch_id: String,
    /// The agent.
    pub agent_id: String,
    /// Sequence number (unique per agent id, persisted).
    pub sequence: u64,
    /// Interval start, Unix ms.
    pub start_ms: i64,
    /// Interval end, Unix ms.
    pub end_ms: i64,
    /// The counts.
    pub counts: Vec<Count>,
    /// Events lost in dropped batches since the last queued batch.
    pub dropped_events: u64,
    /// Service the dropped events are reported under.
    pub dropped_service: String,
    /// Allowed requests per approved pattern (absent in batches spilled by
    /// an agent from before allowed counting).
    #[serde(default)]
    pub allowed: Vec<AllowedCount>,
}

impl Batch {
    /// Events in this batch, dropped ones included.
    pub fn events(&self) -> u64 {
        self.counts.iter().map(|c| c.count).sum::<u64>() + self.dropped_events
    }
}

/// What [`SpillQueue::push`] had to drop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Batches.
    pub batches: u64,
    /// Events in them (carried by the new batch), including events those
    /// batches were themselves carrying for earlier drops.
    pub events: u64,
    /// Events lost by this push alone (not counted as dropped before).
    pub lost: u64,
}

/// The queue.
#[derive(Debug)]
pub struct SpillQueue {
    dir: PathBuf,
    batches: VecDeque<Batch>,
    max_batches: usize,
    next_sequence: u64,
}

impl SpillQueue {
    /// Opens (creating) `dir` and loads the batches spilled by a previous run.
    /// Unreadable files are logged and removed: they cannot be sent.
    pub fn open(dir: &Path, max_batches: usize) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut batches = Vec::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if is_temporary(name) {
                // A write the previous run did not finish (its batch's
                // counts are inside the documented loss window).
                let _ = fs::remove_file(&path);
                continue;
            }
            if !(name.starts_with("batch-") && name.ends_with(".json")) {
                continue;
            }
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Batch>(&b).map_err(|e| e.to_string()))
            {
                Ok(batch) => batches.push(batch),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "unreadable spilled telemetry batch; removing it");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        batches.sort_by_key(|b| b.sequence);
        let stored = fs::read_to_string(dir.join(SEQ_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let after_spilled = batches.last().map_or(0, |b| b.sequence + 1);
        let mut queue = Self {
            dir: dir.to_owned(),
            batches: VecDeque::new(),
            max_batches: max_batches.max(1),
            next_sequence: stored.max(after_spilled),
        };
        for batch in batches {
            queue.batches.push_back(batch);
        }
        // A smaller limit than the previous run's: drop the oldest, carrying
        // their events forward like any overflow.
        while queue.batches.len() > queue.max_batches {
            if let Some(old) = queue.batches.pop_front() {
                let _ = fs::remove_file(queue.path_of(old.sequence));
                if let Some(front) = queue.batches.front_mut() {
                    front.dropped_events += old.events();
                    merge_allowed(&mut front.allowed, old.allowed);
                    let front = front.clone();
                    queue.write(&front)?;
                }
            }
        }
        Ok(queue)
    }

    /// Allocates the next sequence number (persisted before it is used).
    pub fn next_sequence(&mut self) -> io::Result<u64> {
        let sequence = self.next_sequence;
        write_atomic(
            &self.dir.join(SEQ_FILE),
            format!("{}\n", sequence + 1).as_bytes(),
        )?;
        self.next_sequence += 1;
        Ok(sequence)
    }

    /// Queues `batch` (written to disk first). When full, the oldest batches
    /// are dropped and their events added to `batch.dropped_events`.
    pub fn push(&mut self, mut batch: Batch) -> io::Result<Dropped> {
        let mut dropped = Dropped::default();
        while self.batches.len() >= self.max_batches {
            let Some(old) = self.batches.pop_front() else {
                break;
            };
            let _ = fs::remove_file(self.path_of(old.sequence));
            dropped.batches += 1;
            dropped.events += old.events();
            dropped.lost += old.events() - old.dropped_events;
            merge_allowed(&mut batch.allowed, old.allowed);
        }
        batch.dropped_events += dropped.events;
        self.write(&batch)?;
        self.batches.push_back(batch);
        Ok(dropped)
    }

    /// The oldest batch.
    pub fn front(&self) -> Option<&Batch> {
        self.batches.front()
    }

    /// Removes the oldest batch (acknowledged, or refused for good).
    pub fn pop_front(&mut self) -> Option<Batch> {
        let batch = self.batches.pop_front()?;
        if let Err(e) = fs::remove_file(self.path_of(batch.sequence))
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, sequence = batch.sequence, "cannot remove an acknowledged batch file");
        }
        Some(batch)
    }

    /// Batches waiting.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    fn path_of(&self, sequence: u64) -> PathBuf {
        self.dir.join(format!("batch-{sequence:020}.json"))
    }

    fn write(&self, batch: &Batch) -> io::Result<()> {
        let bytes = serde_json::to_vec(batch).map_err(io::Error::other)?;
        write_atomic(&self.path_of(batch.sequence), &bytes)
    }
}

/// Adds `from`'s counts to `into`'s, per (service, pattern).
fn merge_allowed(into: &mut Vec<AllowedCount>, from: Vec<AllowedCount>) {
    if from.is_empty() {
        return;
    }
    let mut at: std::collections::HashMap<(String, String), usize> = into
        .iter()
        .enumerate()
        .map(|(i, a)| ((a.service.clone(), a.pattern.clone()), i))
        .collect();
    for a in from {
        match at.get(&(a.service.clone(), a.pattern.clone())) {
            Some(&i) => into[i].count += a.count,
            None => {
                at.insert((a.service.clone(), a.pattern.clone()), into.len());
                into.push(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(q: &mut SpillQueue, events: u64) -> Batch {
        let sequence = q.next_sequence().unwrap_or_default();
        Batch {
            batch_id: format!("a:{sequence}"),
            agent_id: "a".into(),
            sequence,
            start_ms: 0,
            end_ms: 1,
            counts: vec![Count {
                service: "s".into(),
                origin: "https://x.test".into(),
                method: "GET".into(),
                reason: "origin_not_allowed".into(),
                would_block: false,
                count: events,
            }],
            dropped_events: 0,
            dropped_service: "s".into(),
            allowed: vec![AllowedCount {
                service: "s".into(),
                pattern: "https://*.x.test".into(),
                count: events * 10,
            }],
        }
    }

    #[test]
    fn survives_reopen_and_reports_drops() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut q = SpillQueue::open(dir.path(), 2)?;
        let b = batch(&mut q, 5);
        q.push(b)?;
        let b = batch(&mut q, 7);
        q.push(b)?;
        let b = batch(&mut q, 1);
        let dropped = q.push(b)?;
        assert_eq!(
            dropped,
            Dropped {
                batches: 1,
                events: 5,
                lost: 5
            }
        );
        drop(q);

        let mut q = SpillQueue::open(dir.path(), 2)?;
        assert_eq!(q.len(), 2);
        assert_eq!(q.front().map(|b| b.sequence), Some(1));
        let first = q.pop_front();
        assert_eq!(first.map(|b| b.events()), Some(7));
        let last = q.pop_front();
        assert_eq!(last.as_ref().map(|b| b.dropped_events), Some(5));
        // The dropped batch's allowed counts travel with it, merged.
        assert_eq!(
            last.as_ref().map(|b| b.allowed.clone()),
            Some(vec![AllowedCount {
                service: "s".into(),
                pattern: "https://*.x.test".into(),
                count: 60,
            }])
        );
        assert_eq!(last.map(|b| b.events()), Some(6));
        // Sequence numbers are never reused, even once the queue is empty.
        assert_eq!(batch(&mut q, 1).sequence, 3);
        drop(q);
        let mut q = SpillQueue::open(dir.path(), 2)?;
        assert!(q.is_empty());
        assert_eq!(batch(&mut q, 1).sequence, 4);
        Ok(())
    }
}
