//! ACKs and heartbeats of every stream, written in batches: a stream hands
//! its record to the [`AckWriter`] (one task per server) and carries on;
//! the writer takes whatever has queued up since its last write and writes
//! it in one statement ("group commit"). With few streams a batch is one
//! ACK and lands at once; with 10,000 streams ACKing one revision, a few
//! dozen statements replace 10,000 round trips, and ACKs still land in
//! `agent_services` within milliseconds of arriving.

use crate::store::Store;
use crate::store::agent_batches::AgentAck;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::warn;

/// Records queued before a stream waits for the writer (backpressure when
/// the database is slower than the fleet).
const QUEUE: usize = 16_384;
/// Most records in one statement. Large on purpose: every statement costs
/// a commit and a `corsair_rollout` notification that makes each waiting
/// rollout recount; at 10,000 agents batches of 500 doubled PostgreSQL's CPU
/// per approval against 2,000, and 5,000 did a little better again
/// (BENCHMARKS.md, "Fleet").
const MAX_BATCH: usize = 5_000;
/// Attempts per batch (a deadlock or a dropped connection is retried).
const ATTEMPTS: u32 = 3;

enum Record {
    Ack(AgentAck),
    Seen(String),
}

/// The streams' handle on the writer; cheap to clone. The writer task ends
/// (after writing what is queued) when every clone is gone.
#[derive(Debug, Clone)]
pub(crate) struct AckWriter {
    tx: mpsc::Sender<Record>,
}

impl AckWriter {
    /// Starts the writer task on `store`. It holds `drain` until its last
    /// write, so a server that waits on the drain channel waits for it.
    pub(crate) fn spawn(store: Store, drain: Option<mpsc::Sender<()>>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            write_batches(store, rx).await;
            drop(drain);
        });
        Self { tx }
    }

    /// Queues "`agent_id` applied `revision` of `service`" (also a heartbeat).
    pub(crate) async fn acked(&self, agent_id: &str, service: &str, revision: i64) {
        self.send(Record::Ack(AgentAck {
            agent_id: agent_id.to_owned(),
            service: service.to_owned(),
            revision,
        }))
        .await;
    }

    /// Queues a heartbeat (`last_seen = now()`) of `agent_id`.
    pub(crate) async fn seen(&self, agent_id: &str) {
        self.send(Record::Seen(agent_id.to_owned())).await;
    }

    async fn send(&self, record: Record) {
        if self.tx.send(record).await.is_err() {
            warn!("agent record writer stopped; record dropped");
        }
    }
}

async fn write_batches(store: Store, mut rx: mpsc::Receiver<Record>) {
    let mut buffer = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut buffer, MAX_BATCH).await > 0 {
        // Later records of the same agent and service supersede earlier ones.
        let mut acks: HashMap<(String, String), i64> = HashMap::new();
        let mut seen = HashSet::new();
        for record in buffer.drain(..) {
            match record {
                Record::Ack(ack) => {
                    acks.insert((ack.agent_id, ack.service), ack.revision);
                }
                Record::Seen(agent_id) => {
                    seen.insert(agent_id);
                }
            }
        }
        let mut acks: Vec<AgentAck> = acks
            .into_iter()
            .map(|((agent_id, service), revision)| AgentAck {
                agent_id,
                service,
                revision,
            })
            .collect();
        // One lock order for every batch: concurrent writers (other
        // replicas) cannot deadlock with this one.
        acks.sort_by(|a, b| (&a.agent_id, &a.service).cmp(&(&b.agent_id, &b.service)));
        // An ACK bumps `last_seen` too.
        let acked: HashSet<&String> = acks.iter().map(|a| &a.agent_id).collect();
        let mut seen: Vec<String> = seen.into_iter().filter(|id| !acked.contains(id)).collect();
        seen.sort();
        if !acks.is_empty() {
            retry("agent ACKs", || store.agents_acked(&acks)).await;
        }
        if !seen.is_empty() {
            retry("agent heartbeats", || store.agents_seen(&seen)).await;
        }
    }
}

async fn retry<F, Fut>(what: &str, mut write: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), crate::store::StoreError>>,
{
    for attempt in 1..=ATTEMPTS {
        match write().await {
            Ok(()) => return,
            Err(error) if attempt == ATTEMPTS => {
                warn!(%error, "cannot record {what}; dropped");
            }
            Err(error) => {
                warn!(%error, attempt, "cannot record {what}; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
        }
    }
}
