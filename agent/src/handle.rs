//! The shared, atomically swappable policy the request path reads.
//!
//! Writers (the sync client) swap in a whole compiled policy; readers (the
//! proxy, the tower layer) take a lock-free snapshot per request.

use crate::engine::Policy;
use arc_swap::ArcSwapOption;
use arc_swap::cache::Cache;
use std::sync::Arc;

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

    /// Replaces the current policy atomically.
    pub fn store(&self, policy: Option<Arc<ActivePolicy>>) {
        self.inner.store(policy);
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
    /// by the next call.
    pub fn current(&mut self) -> Option<&ActivePolicy> {
        self.cache.load().as_deref()
    }
}
