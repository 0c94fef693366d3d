//! The in-memory count of blocked decisions for the current interval.
//!
//! Sharded: a key's hash picks one of [`SHARDS`] mutex-guarded maps, so
//! concurrent requests rarely contend and no global lock is held per
//! request. Only blocked (and would-block) decisions come here; allowed
//! requests never touch it. Cardinality is bounded: once `max_keys`
//! distinct keys exist in an interval, new keys are counted in an
//! `(other)` bucket per (service, reason, would_block) instead.
//!
//! Allowed requests are counted elsewhere, by the compiled policy itself
//! (one atomic per approved pattern, see [`crate::engine::Policy::count_use`]);
//! the recorder only drains them, from the handles it [tracks](Recorder::track),
//! at the same moment it takes the blocked counts.

use crate::handle::PolicyHandle;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Number of independently locked shards.
pub const SHARDS: usize = 32;
/// Origin (and method) of the overflow bucket.
pub const OTHER: &str = "(other)";
/// Longest origin kept verbatim; longer ones are cut (they are not valid
/// origins anyway, and must not bloat batches).
const MAX_ORIGIN_LEN: usize = 256;

/// What one count is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Key {
    /// The service that refused it.
    pub service: String,
    /// The request's origin.
    pub origin: String,
    /// The (requested) method.
    pub method: String,
    /// Engine reason.
    pub reason: String,
    /// Report-only mode: passed, would have been blocked.
    pub would_block: bool,
}

/// Counts of one interval.
pub type Counts = HashMap<Key, u64>;

/// A shared, sharded counter. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shards: Vec<Mutex<Counts>>,
    hasher: RandomState,
    keys: AtomicUsize,
    max_keys: usize,
    tracked: Mutex<Vec<PolicyHandle>>,
}

/// Allowed requests of one interval per (service, approved pattern), in
/// key order.
pub type Uses = BTreeMap<(String, String), u64>;

/// What [`Recorder::record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Counted under its own key.
    Counted,
    /// Counted in the overflow bucket.
    Overflow,
}

impl Recorder {
    /// A recorder keeping at most `max_keys` distinct keys per interval.
    pub fn new(max_keys: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                hasher: RandomState::new(),
                keys: AtomicUsize::new(0),
                max_keys,
                tracked: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Counts one blocked decision.
    pub fn record(
        &self,
        service: &str,
        origin: &str,
        method: &str,
        reason: &str,
        would_block: bool,
    ) -> Recorded {
        let origin = match origin.char_indices().nth(MAX_ORIGIN_LEN) {
            Some((cut, _)) => &origin[..cut],
            None => origin,
        };
        let key = Key {
            service: service.to_owned(),
            origin: origin.to_owned(),
            method: method.to_owned(),
            reason: reason.to_owned(),
            would_block,
        };
        let inner = &self.inner;
        let shard = &inner.shards[shard_of(inner.hasher.hash_one(&key))];
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = map.get_mut(&key) {
            *count += 1;
            return Recorded::Counted;
        }
        if inner.keys.fetch_add(1, Ordering::Relaxed) < inner.max_keys {
            map.insert(key, 1);
            return Recorded::Counted;
        }
        inner.keys.fetch_sub(1, Ordering::Relaxed);
        drop(map);
        let other = Key {
            origin: OTHER.to_owned(),
            method: OTHER.to_owned(),
            ..key
        };
        let shard = &inner.shards[shard_of(inner.hasher.hash_one(&other))];
        *shard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(other)
            .or_insert(0) += 1;
        Recorded::Overflow
    }

    /// Adds `handle`'s policies to those whose allowed-request counts
    /// [`Self::take_uses`] drains.
    pub fn track(&self, handle: PolicyHandle) {
        self.inner
            .tracked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handle);
    }

    /// Takes the interval's allowed-request counts from the tracked
    /// handles, leaving them at zero.
    pub fn take_uses(&self) -> Uses {
        let mut uses = Uses::new();
        let tracked = self
            .inner
            .tracked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for handle in tracked.iter() {
            handle.take_uses(|service, pattern, n| {
                *uses
                    .entry((service.to_owned(), pattern.to_owned()))
                    .or_insert(0) += n;
            });
        }
        uses
    }

    /// Takes the interval's counts, leaving the recorder empty.
    pub fn take(&self) -> Counts {
        let mut all = Counts::new();
        self.inner.keys.store(0, Ordering::Relaxed);
        for shard in &self.inner.shards {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            for (key, count) in taken {
                *all.entry(key).or_insert(0) += count;
            }
        }
        all
    }
}

fn shard_of(hash: u64) -> usize {
    // SHARDS is small; the modulo of a 64-bit hash is uniform enough.
    usize::try_from(hash % SHARDS as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_and_overflows_into_other() {
        let r = Recorder::new(2);
        for _ in 0..3 {
            assert_eq!(
                r.record("s", "https://a.test", "GET", "origin_not_allowed", false),
                Recorded::Counted
            );
        }
        assert_eq!(
            r.record("s", "https://b.test", "GET", "origin_not_allowed", false),
            Recorded::Counted
        );
        assert_eq!(
            r.record("s", "https://c.test", "GET", "origin_not_allowed", false),
            Recorded::Overflow
        );
        assert_eq!(
            r.record("s", "https://d.test", "GET", "origin_not_allowed", false),
            Recorded::Overflow
        );
        let counts = r.take();
        let get = |origin: &str, method: &str| {
            counts
                .get(&Key {
                    service: "s".into(),
                    origin: origin.into(),
                    method: method.into(),
                    reason: "origin_not_allowed".into(),
                    would_block: false,
                })
                .copied()
        };
        assert_eq!(get("https://a.test", "GET"), Some(3));
        assert_eq!(get("https://b.test", "GET"), Some(1));
        assert_eq!(get(OTHER, OTHER), Some(2));
        assert_eq!(counts.values().sum::<u64>(), 6);
        // A new interval starts empty, with the full key budget.
        assert!(r.take().is_empty());
        assert_eq!(
            r.record("s", "https://c.test", "GET", "origin_not_allowed", false),
            Recorded::Counted
        );
    }

    #[test]
    fn concurrent_counts_are_exact() {
        let r = Recorder::new(10_000);
        std::thread::scope(|s| {
            for t in 0..4 {
                let r = r.clone();
                s.spawn(move || {
                    for i in 0..10_000 {
                        r.record(
                            "s",
                            &format!("https://{}.test", i % 50),
                            "GET",
                            "origin_not_allowed",
                            t % 2 == 0,
                        );
                    }
                });
            }
        });
        assert_eq!(r.take().values().sum::<u64>(), 40_000);
    }
}
