//! Simulated agents: each one a real [`SyncClient`] with its own cache
//! directory (so its own agent id), its own [`PolicyHandle`] and its own
//! HTTP/2 connection to the control plane, plus a watcher that logs what
//! its status reported and when.

use crate::harness::SERVICE;
use anyhow::{Context, Result, bail};
use corsair_agent::engine::{DecisionKind, RequestParts};
use corsair_agent::handle::PolicyHandle;
use corsair_agent::sync::{SyncClient, SyncConfig, SyncStatus};
use http::{HeaderMap, HeaderValue, Method};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What one agent's status reported, with the simulator's clock.
#[derive(Debug, Default, Clone)]
pub struct AgentLog {
    /// Each revision of [`SERVICE`] put in force, in order, and when the
    /// simulator saw it.
    pub applied: Vec<(i64, Instant)>,
    /// When each connection attempt started (the sync client's
    /// [`SyncStatus::last_attempt`]), first attempt included.
    pub attempts: Vec<Instant>,
}

/// Counts shared by every agent's watcher.
#[derive(Debug, Default)]
struct Progress {
    /// Agents that hold each revision (or held it on the way to a later one).
    applied: Mutex<HashMap<i64, usize>>,
    /// Agents whose stream is open.
    connected: AtomicUsize,
}

/// One simulated agent.
#[derive(Debug)]
pub struct SimAgent {
    /// The policy handle its sync client keeps current (what a proxy reads).
    pub handle: PolicyHandle,
    /// Its sync client's status.
    pub status: watch::Receiver<SyncStatus>,
    log: Arc<Mutex<AgentLog>>,
    tasks: [JoinHandle<()>; 2],
}

impl SimAgent {
    /// A copy of what it logged so far.
    pub fn log(&self) -> AgentLog {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether its handle grants a GET from `origin` right now (what the
    /// agent enforces, whatever the state of its stream).
    pub fn allows(&self, origin: &str) -> bool {
        let Ok(value) = HeaderValue::from_str(origin) else {
            return false;
        };
        let mut headers = HeaderMap::new();
        headers.insert(http::header::ORIGIN, value);
        let request = RequestParts {
            method: &Method::GET,
            headers: &headers,
        };
        self.handle.with_current(|active| {
            active.is_some_and(|a| a.policy.evaluate(&request).kind() == DecisionKind::Allowed)
        })
    }
}

/// N simulated agents of [`SERVICE`].
pub struct Fleet {
    /// The agents, in creation order.
    pub agents: Vec<SimAgent>,
    progress: Arc<Progress>,
    stop: watch::Sender<bool>,
}

impl Fleet {
    /// Creates `n` sync clients for `url` with `token` (caches under
    /// `cache_root/<i>`), and starts them all at once. Their first attempts
    /// are as simultaneous as a fleet's after a mass roll-out.
    pub fn start(n: usize, url: &str, token: &str, cache_root: &Path) -> Result<Self> {
        let progress = Arc::new(Progress::default());
        let (stop, stopped) = watch::channel(false);
        let mut clients = Vec::with_capacity(n);
        for i in 0..n {
            let handle = PolicyHandle::new();
            let config = SyncConfig::new(
                url,
                token,
                format!("sim-{i}"),
                [SERVICE],
                cache_root.join(i.to_string()),
            );
            let client = SyncClient::new(config, [(SERVICE.to_string(), handle.clone())].into())
                .with_context(|| format!("sync client {i}"))?;
            clients.push((handle, client));
        }
        let agents = clients
            .into_iter()
            .map(|(handle, client)| {
                let status = client.status();
                let log = Arc::new(Mutex::new(AgentLog::default()));
                let mut stopped = stopped.clone();
                let run = tokio::spawn(async move {
                    let _ = client
                        .run(async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        })
                        .await;
                });
                let watcher =
                    tokio::spawn(watch_status(status.clone(), log.clone(), progress.clone()));
                SimAgent {
                    handle,
                    status,
                    log,
                    tasks: [run, watcher],
                }
            })
            .collect();
        Ok(Self {
            agents,
            progress,
            stop,
        })
    }

    /// Agents whose stream is open now.
    pub fn connected(&self) -> usize {
        self.progress.connected.load(Ordering::Relaxed)
    }

    /// Agents that have put `revision` in force (now or on the way to a
    /// later one).
    pub fn applied(&self, revision: i64) -> usize {
        let applied = self
            .progress
            .applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        applied.get(&revision).copied().unwrap_or(0)
    }

    /// Waits until every agent is connected and has put `revision` in
    /// force; fails after `deadline` saying how far it got.
    pub async fn wait_converged(&self, revision: i64, deadline: Duration) -> Result<()> {
        let until = Instant::now() + deadline;
        loop {
            let (connected, applied) = (self.connected(), self.applied(revision));
            if connected == self.agents.len() && applied == self.agents.len() {
                return Ok(());
            }
            if Instant::now() >= until {
                bail!(
                    "after {deadline:?}: {connected} of {} agents connected, {applied} hold revision {revision}",
                    self.agents.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Checks that every agent put each of `revisions` in force, in that
    /// order (other revisions may come between, e.g. one the agent held
    /// from its cache); returns the first agent that did not, with its log.
    pub fn check_no_change_lost(&self, revisions: &[i64]) -> Result<()> {
        for (i, agent) in self.agents.iter().enumerate() {
            let log = agent.log();
            let mut seen = log.applied.iter().map(|(r, _)| *r);
            for revision in revisions {
                if !seen.any(|r| r == *revision) {
                    bail!(
                        "agent {i} never held revision {revision} in order; it held {:?}",
                        log.applied.iter().map(|(r, _)| r).collect::<Vec<_>>()
                    );
                }
            }
        }
        Ok(())
    }

    /// Stops every sync client and watcher and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for agent in self.agents {
            for task in agent.tasks {
                let _ = task.await;
            }
        }
    }
}

/// Logs every revision applied and every connection attempt of one agent,
/// and keeps the shared counts, until its sync client is gone.
async fn watch_status(
    mut status: watch::Receiver<SyncStatus>,
    log: Arc<Mutex<AgentLog>>,
    progress: Arc<Progress>,
) {
    let (mut revision, mut attempt, mut connected) = (None, None, false);
    loop {
        {
            let now = Instant::now();
            let current = status.borrow_and_update();
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            let held = current.services.get(SERVICE).and_then(|s| s.revision);
            if held.is_some() && held != revision {
                revision = held;
                if let Some(r) = held {
                    log.applied.push((r, now));
                    let mut applied = progress
                        .applied
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    *applied.entry(r).or_default() += 1;
                }
            }
            if current.last_attempt.is_some() && current.last_attempt != attempt {
                attempt = current.last_attempt;
                log.attempts.extend(attempt);
            }
            if current.connected != connected {
                connected = current.connected;
                if connected {
                    progress.connected.fetch_add(1, Ordering::Relaxed);
                } else {
                    progress.connected.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        if status.changed().await.is_err() {
            if connected {
                progress.connected.fetch_sub(1, Ordering::Relaxed);
            }
            return;
        }
    }
}
