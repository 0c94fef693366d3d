//! The audit log's two figures for `/metrics`, read from the database at most
//! once per interval, however many scrapes arrive.
//!
//! `/metrics` answers without authentication, so a scrape must not be able
//! to buy a query: [`AuditFigures::current`] lets concurrent scrapes share
//! one read (single flight) and reuses its outcome, a failure included, until
//! the interval has passed since that read started. The read runs in a task
//! of its own, so a scraper that hangs up does not cancel it (and cannot
//! start another by asking again).

use super::metrics;
use crate::store::{Store, StoreError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument as _;

/// How long one read of the audit figures serves later scrapes: 5 s.
///
/// Prometheus scrapes every 15–60 s, so every scheduled scrape still gets
/// figures read for it (or for a scrape less than 5 s before, such as the
/// other member of an HA pair); the audit alerts look at hours, and
/// Postgres itself reports `n_tup_del` only within seconds. At most one
/// read per 5 s per replica is nothing to the pool, whoever sends requests.
/// Longer than [`AUDIT_READ_TIMEOUT`], so reads never overlap.
pub const AUDIT_READ_INTERVAL: Duration = Duration::from_secs(5);

/// How long a read may take, and the most a scrape waits for one: the
/// database may be down, and metrics matter then.
pub const AUDIT_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// The audit log's figures, as one read found them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Figures {
    /// Rows in the hash chain: its newest row's position (0 for an empty log).
    pub chain_length: i64,
    /// Rows deleted from the audit table as Postgres counts them
    /// (`pg_stat_user_tables.n_tup_del`, cumulative).
    pub rows_deleted: i64,
}

/// Where a read is.
#[derive(Clone, Copy, Debug)]
enum ReadState {
    Running,
    Read(Figures),
    /// Failed or took longer than [`AUDIT_READ_TIMEOUT`].
    Failed,
}

/// The newest read.
#[derive(Debug)]
struct Latest {
    /// When it started; `None` before the first.
    started: Option<Instant>,
    /// Its state. Closed while still `Running` if its task died: a failure.
    state: watch::Receiver<ReadState>,
}

/// One app's source of the audit figures: reads them from its store at most
/// once per interval and shares each read among the scrapes. Cheap to clone
/// (clones share the reads).
#[derive(Clone, Debug)]
pub struct AuditFigures {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    interval: Duration,
    latest: Mutex<Latest>,
}

impl AuditFigures {
    /// Figures read from `store`, each read reused for `interval` after it
    /// started ([`AUDIT_READ_INTERVAL`] in production; tests may shorten it).
    /// Reads nothing until [`AuditFigures::current`] is first called.
    pub fn new(store: Store, interval: Duration) -> Self {
        // A closed channel left at `Running` reads as a dead read, so the
        // first call starts one.
        let (_, state) = watch::channel(ReadState::Running);
        Self {
            inner: Arc::new(Inner {
                store,
                interval,
                latest: Mutex::new(Latest {
                    started: None,
                    state,
                }),
            }),
        }
    }

    /// The figures of the newest read, starting one first when no read is
    /// running and none started within the interval. `None` when that read
    /// failed or timed out, or did not finish within [`AUDIT_READ_TIMEOUT`]
    /// of this call: the caller never waits longer. A failed read is kept
    /// like a successful one, so a database that is down is asked once per
    /// interval, not once per scrape.
    pub async fn current(&self) -> Option<Figures> {
        let mut state = self.newest_or_start();
        let done = tokio::time::timeout(
            AUDIT_READ_TIMEOUT,
            state.wait_for(|s| !matches!(s, ReadState::Running)),
        )
        .await;
        match done {
            Ok(Ok(state)) => match *state {
                ReadState::Read(figures) => Some(figures),
                ReadState::Running | ReadState::Failed => None,
            },
            // The read's own timeout is as long as ours and began no later,
            // so it records this as a failure itself (or its task died).
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// The newest read's state, after starting a new read if one is due.
    fn newest_or_start(&self) -> watch::Receiver<ReadState> {
        let inner = &self.inner;
        // Nothing below can panic while holding the lock; if something did,
        // the slot is still consistent.
        let mut latest = inner.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let fresh = latest
            .started
            .is_some_and(|at| now.duration_since(at) < inner.interval);
        let unfinished = matches!(*latest.state.borrow(), ReadState::Running);
        let running = unfinished && latest.state.has_changed().is_ok();
        if !fresh && !running {
            let (tx, rx) = watch::channel(ReadState::Running);
            latest.started = Some(now);
            latest.state = rx;
            tokio::spawn(
                read(inner.store.clone(), tx).instrument(tracing::info_span!("audit_figures")),
            );
        }
        latest.state.clone()
    }
}

/// One read, bounded by [`AUDIT_READ_TIMEOUT`], published on `tx` and
/// counted (`corsair_audit_reads_total`, and `..._read_failures_total` when
/// it fails).
async fn read(store: Store, tx: watch::Sender<ReadState>) {
    let m = metrics();
    m.audit_reads.inc();
    let figures = async {
        Ok::<_, StoreError>(Figures {
            chain_length: store.audit_chain_length().await?,
            rows_deleted: store.audit_rows_deleted().await?,
        })
    };
    let state = match tokio::time::timeout(AUDIT_READ_TIMEOUT, figures).await {
        Ok(Ok(figures)) => ReadState::Read(figures),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "audit log figures not read for /metrics");
            ReadState::Failed
        }
        Err(_) => {
            tracing::warn!(
                timeout = ?AUDIT_READ_TIMEOUT,
                "audit log figures not read for /metrics in time"
            );
            ReadState::Failed
        }
    };
    if matches!(state, ReadState::Failed) {
        m.audit_read_failures.inc();
    }
    // Kept even when nobody waits now: the next scrape in the interval reads it.
    tx.send_replace(state);
}
