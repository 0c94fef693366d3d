//! [`RolloutEvents`]: one `LISTEN corsair_rollout` per process, relayed to
//! every request waiting for a rollout, held only while someone waits.

use crate::store::Store;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::broadcast;
use tracing::{Instrument, debug, warn};

/// Relays `NOTIFY corsair_rollout` to the requests waiting in this
/// process. One `LISTEN` connection, opened when the first request waits
/// and closed once nobody has waited for a while. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RolloutEvents {
    inner: Arc<EventsInner>,
}

#[derive(Debug)]
struct EventsInner {
    store: Store,
    /// Service names as notified; `""` means "re-read: some may be missed".
    tx: broadcast::Sender<Arc<str>>,
    /// Whether the listening task runs; changed only under this lock,
    /// together with the subscriber count check, so a new subscriber never
    /// sees a task that is about to stop.
    running: Mutex<bool>,
}

/// How often the listening task checks whether anyone still waits, and how
/// soon it retries a failed `LISTEN`.
const IDLE_CHECK: Duration = Duration::from_secs(1);

impl RolloutEvents {
    /// Events read through `store`; nothing listens until someone waits.
    pub fn new(store: Store) -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(EventsInner {
                store,
                tx,
                running: Mutex::new(false),
            }),
        }
    }

    /// A receiver of notified service names; starts the listening task if
    /// it is not running.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        let rx = self.inner.tx.subscribe();
        let mut running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !*running {
            *running = true;
            let inner = Arc::clone(&self.inner);
            tokio::spawn(listen(inner).instrument(tracing::info_span!("rollout_events")));
        }
        rx
    }
}

impl EventsInner {
    /// True (and marked stopped) when nobody waits.
    fn idle(&self) -> bool {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if self.tx.receiver_count() == 0 {
            *running = false;
            return true;
        }
        false
    }
}

async fn listen(inner: Arc<EventsInner>) {
    let mut idle_check = tokio::time::interval(IDLE_CHECK);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut listener = match inner.store.listen_rollouts().await {
            Ok(listener) => listener,
            Err(error) => {
                warn!(%error, "cannot LISTEN for rollout changes; waits poll meanwhile");
                idle_check.tick().await;
                if inner.idle() {
                    return;
                }
                continue;
            }
        };
        debug!("listening for rollout changes");
        // Changes made while nobody listened: every waiter re-reads.
        let _ = inner.tx.send(Arc::from(""));
        loop {
            tokio::select! {
                _ = idle_check.tick() => {
                    if inner.idle() {
                        debug!("nobody waits for a rollout; LISTEN closed");
                        return;
                    }
                }
                notification = listener.try_recv() => match notification {
                    Ok(Some(n)) => {
                        let _ = inner.tx.send(Arc::from(n.payload()));
                    }
                    Ok(None) => {
                        warn!("rollout LISTEN connection lost; reconnecting");
                        let _ = inner.tx.send(Arc::from(""));
                    }
                    Err(error) => {
                        warn!(%error, "rollout LISTEN failed; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}
