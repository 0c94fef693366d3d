//! The shared, atomically swappable policy the request path reads.
//!
//! Writers (the sync client) swap in a whole compiled policy; readers (the
//! proxy, the tower layer) take a lock-free snapshot per request.
//!
//! A compiled policy counts the requests each of its patterns granted
//! ([`Policy::count_use`]). A policy swapped out may still be counting
//! (requests that loaded it are finishing), so the handle keeps it, with
//! its counts, until [`PolicyHandle::take_uses`] has drained it after the
//! last request let go: allowed-request counts stay exact across policy
//! updates.

use crate::engine::Policy;
use arc_swap::ArcSwapOption;
use arc_swap::cache::Cache;
use std::sync::{Arc, Mutex, PoisonError};

/// A compiled policy with where it came from.
#[derive(Debug)]
pub struct ActivePolicy {
    /// Service name.
    pub service: String,
    /// The control plane's revision of this policy.
    pub revision: i64,
    /// The compiled policy.
    pub policy: Policy,
}

/// Cheaply clonable handle on the current policy of one service.
/// `None` = no policy at all (fail closed).
#[derive(Debug, Clone, Default)]
pub struct PolicyHandle {
    inner: Arc<ArcSwapOption<ActivePolicy>>,
    /// Policies swapped out with uses not yet drained, or still in use.
    retired: Arc<Mutex<Vec<Arc<ActivePolicy>>>>,
}

impl PolicyHandle {
    /// A handle with no policy yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current policy, if any. Lock-free.
    pub fn load(&self) -> Option<Arc<ActivePolicy>> {
        self.inner.load_full()
    }

    /// Runs `f` on the current policy without taking a reference count:
    /// the request path's read (an `arc-swap` guard, no atomic
    /// read-modify-write on the shared `Arc`). Keep `f` short; it must not
    /// block or await.
    pub fn with_current<R>(&self, f: impl FnOnce(Option<&ActivePolicy>) -> R) -> R {
        let guard = self.inner.load();
        f(guard.as_deref())
    }

    /// Replaces the current policy atomically. The old one is kept for
    /// [`Self::take_uses`] while it has counts to drain or is still held.
    pub fn store(&self, policy: Option<Arc<ActivePolicy>>) {
        let Some(old) = self.inner.swap(policy) else {
            return;
        };
        // After the swap arc-swap has turned every reader's borrow of `old`
        // into a counted reference, so the count says who may still count.
        if Arc::strong_count(&old) > 1 || old.policy.has_uses() {
            self.retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(old);
        }
    }

    /// Drains the allowed-request counts of the current policy and of the
    /// ones it replaced: `f(service, pattern, count)` per pattern used since
    /// the last call. A replaced policy is forgotten once drained with no
    /// request holding it, so no count is lost or counted twice.
    pub fn take_uses(&self, mut f: impl FnMut(&str, &str, u64)) {
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired.retain(|active| {
            // Decided before draining: only this list holds it, so nothing
            // can count after the drain below.
            let idle = Arc::strong_count(active) == 1;
            active
                .policy
                .take_uses(|pattern, n| f(&active.service, pattern, n));
            !idle
        });
        drop(retired);
        if let Some(active) = self.load() {
            active
                .policy
                .take_uses(|pattern, n| f(&active.service, pattern, n));
        }
    }

    /// A reader that keeps its own reference to the current policy, for a
    /// service that reads it on every request through `&mut self`.
    pub fn cache(&self) -> PolicyCache {
        PolicyCache {
            cache: Cache::new(Arc::clone(&self.inner)),
        }
    }
}

/// A [`PolicyHandle`] reader holding a reference to the policy it last saw
/// (`arc-swap`'s `Cache`): a read is one atomic load and a pointer compare
/// while the policy is unchanged, about a tenth of
/// [`PolicyHandle::with_current`]'s guard. The price: the last-seen policy
/// stays alive until this reader's next read (or drop), and a clone takes
/// one more reference count.
#[derive(Debug, Clone)]
pub struct PolicyCache {
    cache: Cache<Arc<ArcSwapOption<ActivePolicy>>, Option<Arc<ActivePolicy>>>,
}

impl PolicyCache {
    /// The current policy, if any: a swap made through the handle is seen
    /// by the next call. Inlined: an atomic load and a compare, cheaper
    /// than the call.
    #[inline]
    pub fn current(&mut self) -> Option<&ActivePolicy> {
        self.cache.load().as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{PolicySpec, RequestParts};
    use http::{HeaderMap, HeaderValue, Method};

    fn active(revision: i64) -> Option<Arc<ActivePolicy>> {
        let spec = PolicySpec {
            origins: vec!["https://app.test".into()],
            ..PolicySpec::default()
        };
        let policy = Policy::compile(&spec).ok()?;
        Some(Arc::new(ActivePolicy {
            service: "s".into(),
            revision,
            policy,
        }))
    }

    fn hit(handle: &PolicyHandle) {
        let mut headers = HeaderMap::new();
        headers.insert("origin", HeaderValue::from_static("https://app.test"));
        handle.with_current(|active| {
            if let Some(a) = active {
                let d = a.policy.evaluate(&RequestParts {
                    method: &Method::GET,
                    headers: &headers,
                });
                a.policy.count_use(&d);
            }
        });
    }

    fn total(handle: &PolicyHandle) -> u64 {
        let mut n = 0;
        handle.take_uses(|service, pattern, count| {
            assert_eq!((service, pattern), ("s", "https://app.test"));
            n += count;
        });
        n
    }

    #[test]
    fn counts_survive_policy_swaps_exactly() {
        let handle = PolicyHandle::new();
        handle.store(active(1));
        let per_thread = 20_000u64;
        let drained = std::thread::scope(|s| {
            for _ in 0..3 {
                let handle = handle.clone();
                s.spawn(move || {
                    for _ in 0..per_thread {
                        hit(&handle);
                    }
                });
            }
            // Swap policies and drain while requests are counted.
            let mut drained = 0;
            for revision in 2..500 {
                handle.store(active(revision));
                drained += total(&handle);
            }
            drained
        });
        // Every thread finished before the scope ended; the rest is here.
        assert_eq!(drained + total(&handle), 3 * per_thread);
        // Drained old policies are forgotten once nobody holds them.
        assert!(handle.retired.lock().map(|r| r.is_empty()).unwrap_or(false));
    }

    #[test]
    fn an_unused_replaced_policy_is_not_kept() {
        let handle = PolicyHandle::new();
        handle.store(active(1));
        handle.store(active(2));
        assert!(handle.retired.lock().map(|r| r.is_empty()).unwrap_or(false));
        hit(&handle);
        handle.store(None);
        assert_eq!(total(&handle), 1);
        assert_eq!(total(&handle), 0);
    }
}
