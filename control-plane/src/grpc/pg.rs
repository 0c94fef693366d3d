//! [`PgPolicyWatcher`]: the Postgres implementation of [`PolicyWatcher`].
//!
//! One shared slot (a `tokio::sync::watch` channel) per watched service, so a
//! change costs one query per replica however many streams watch it. One task
//! `LISTEN`s on [`POLICY_CHANNEL`] and reloads the named service; when the
//! LISTEN connection is lost it reconnects and reloads every watched service,
//! and independently every `resync_interval` it compares revisions with the
//! database, so a missed notification can never leave an agent stale for good.
//! The same connection LISTENs on [`AGENT_TOKEN_REVOKED_CHANNEL`] and hands
//! each revoked token id to [`Revocations`], which cuts that token's streams.

use super::revocations::Revocations;
use super::watch::{PolicyReceiver, PolicyState, PolicyWatcher, WatchError};
use crate::store::{AGENT_TOKEN_REVOKED_CHANNEL, POLICY_CHANNEL, Store, StoreError};
use sqlx::postgres::PgListener;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Watches service policies in Postgres. Cheap to clone; run
/// [`PgPolicyWatcher::run`] once per process to keep it current.
#[derive(Clone, Debug)]
pub struct PgPolicyWatcher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    revocations: Revocations,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Debug)]
struct Slot {
    service: String,
    tx: watch::Sender<Option<Arc<PolicyState>>>,
    /// Serialises reloads so a slower, older read never overwrites a newer one.
    reload: tokio::sync::Mutex<()>,
}

impl PgPolicyWatcher {
    /// A watcher reading from `store`. Nothing is watched until asked.
    pub fn new(store: Store) -> Self {
        Self::with_revocations(store, Revocations::new())
    }

    /// Like [`Self::new`], publishing every agent-token revocation notified
    /// by the database to `revocations`.
    pub fn with_revocations(store: Store, revocations: Revocations) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                revocations,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Keeps every watched service current until `shutdown` completes:
    /// LISTEN/NOTIFY with reconnect-and-resync, plus a revision comparison
    /// every `resync_interval`.
    pub async fn run(self, resync_interval: Duration, shutdown: impl Future<Output = ()>) {
        tokio::select! {
            () = self.listen_loop() => {}
            () = self.resync_loop(resync_interval) => {}
            () = shutdown => {}
        }
        debug!("policy watcher stopped");
    }

    async fn listen_loop(&self) {
        let mut retry = RETRY_MIN;
        loop {
            let mut listener = match self.listen().await {
                Ok(listener) => listener,
                Err(error) => {
                    warn!(%error, retry_in = ?retry, "cannot LISTEN for policy changes");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                    continue;
                }
            };
            retry = RETRY_MIN;
            info!(
                channel = POLICY_CHANNEL,
                revocations = AGENT_TOKEN_REVOKED_CHANNEL,
                "listening for policy changes and token revocations"
            );
            // Anything may have changed while nobody was listening.
            self.resync().await;
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification))
                        if notification.channel() == AGENT_TOKEN_REVOKED_CHANNEL =>
                    {
                        match uuid::Uuid::parse_str(notification.payload()) {
                            Ok(id) => {
                                info!(token_id = %id, "agent token revoked: ending its streams");
                                self.inner.revocations.revoked(id);
                            }
                            Err(_) => {
                                warn!(payload = notification.payload(), "bad revocation payload")
                            }
                        }
                    }
                    Ok(Some(notification)) => {
                        let service = notification.payload();
                        debug!(service, "policy change notified");
                        let slot = self.slot(service);
                        if let Some(slot) = slot
                            && let Err(error) = self.reload(&slot).await
                        {
                            // The periodic resync retries it.
                            warn!(service, %error, "cannot reload notified policy");
                        }
                    }
                    Ok(None) => {
                        warn!("LISTEN connection lost; reconnecting");
                        break;
                    }
                    Err(error) => {
                        warn!(%error, "LISTEN connection failed; reconnecting");
                        break;
                    }
                }
            }
            // Drop the old listener entirely and start afresh (then resync).
            drop(listener);
        }
    }

    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(self.inner.store.pool()).await?;
        listener
            .listen_all([POLICY_CHANNEL, AGENT_TOKEN_REVOKED_CHANNEL])
            .await?;
        Ok(listener)
    }

    async fn resync_loop(&self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.resync().await;
        }
    }

    /// Compares every watched service's revision with the database and
    /// reloads those that differ; forgets services nobody watches any more.
    pub async fn resync(&self) {
        let slots: Vec<Arc<Slot>> = {
            let mut map = self
                .inner
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            map.retain(|_, slot| slot.tx.receiver_count() > 0);
            map.values().cloned().collect()
        };
        if slots.is_empty() {
            return;
        }
        let names: Vec<String> = slots.iter().map(|s| s.service.clone()).collect();
        let current = match self.inner.store.service_revisions(&names).await {
            Ok(current) => current,
            Err(error) => {
                warn!(%error, "policy resync failed");
                return;
            }
        };
        for slot in slots {
            let want = current.get(&slot.service).copied().unwrap_or(0);
            let have = slot.tx.borrow().as_ref().map(|s| s.revision());
            if have != Some(want) {
                info!(service = %slot.service, ?have, want, "resync found a stale policy");
                if let Err(error) = self.reload(&slot).await {
                    warn!(service = %slot.service, %error, "cannot reload policy");
                }
            }
        }
    }

    fn slot(&self, service: &str) -> Option<Arc<Slot>> {
        let map = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(service).cloned()
    }

    /// Loads the service's policy and publishes it if it changed.
    async fn reload(&self, slot: &Slot) -> Result<(), StoreError> {
        let _guard = slot.reload.lock().await;
        self.load_and_publish(slot).await
    }

    /// The body of [`Self::reload`]; the caller holds `slot.reload`.
    async fn load_and_publish(&self, slot: &Slot) -> Result<(), StoreError> {
        let state = match self.inner.store.effective_policy(&slot.service).await? {
            Some(policy) => PolicyState::Present(policy),
            None => PolicyState::Absent,
        };
        let revision = state.revision();
        let changed = slot.tx.send_if_modified(|current| {
            if current.as_deref() == Some(&state) {
                return false;
            }
            *current = Some(Arc::new(state));
            true
        });
        if changed {
            debug!(service = %slot.service, revision, "policy published to streams");
        }
        Ok(())
    }
}

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl PolicyWatcher for PgPolicyWatcher {
    async fn watch(&self, service: &str) -> Result<PolicyReceiver, WatchError> {
        // Subscribe under the map lock (so a resync cannot drop the slot as
        // unwatched in between) and before loading (so a change published
        // after this point reaches the receiver).
        let (slot, rx) = {
            let mut map = self
                .inner
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let slot = Arc::clone(map.entry(service.to_owned()).or_insert_with(|| {
                Arc::new(Slot {
                    service: service.to_owned(),
                    tx: watch::Sender::new(None),
                    reload: tokio::sync::Mutex::new(()),
                })
            }));
            let rx = slot.tx.subscribe();
            (slot, rx)
        };
        if rx.borrow().is_none() {
            // Many streams may subscribe to a new slot at once (a fleet
            // reconnecting): one loads, the others wait for it and reuse it.
            let _guard = slot.reload.lock().await;
            if slot.tx.borrow().is_none() {
                self.load_and_publish(&slot).await?;
            }
        }
        Ok(rx)
    }
}
