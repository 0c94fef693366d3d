//! One agent's stream after its Hello: initial snapshots, pushes on change,
//! ACK/NACK bookkeeping, and the disconnect record when it ends.

use super::acks::AckWriter;
use super::convert::snapshot_message;
use super::revocations::{Revoked, revoked};
use super::watch::PolicyReceiver;
use crate::metrics::metrics;
use crate::store::Store;
use corsair_proto::HANDOVER_METADATA;
use corsair_proto::v1::{AgentMessage, ControlMessage, agent_message};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{StreamExt, StreamMap};
use tonic::{Status, Streaming};
use tracing::{debug, info, warn};

/// How long the final UNAVAILABLE may wait for room in a stalled stream.
const FINAL_SEND: std::time::Duration = std::time::Duration::from_secs(2);

/// Open streams per agent id in this process, so that the old stream of an
/// agent that reconnected does not mark the agent disconnected.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connections(Arc<Mutex<HashMap<String, usize>>>);

impl Connections {
    fn opened(&self, agent_id: &str) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry(agent_id.to_owned()).or_default() += 1;
    }

    /// `true` when this was the agent's last open stream here.
    fn closed(&self, agent_id: &str) -> bool {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(agent_id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                map.remove(agent_id);
                true
            }
        }
    }
}

/// One message (or the final status) on its way to the agent, boxed: a
/// channel allocates its slots in blocks of 32, and 32 pointers cost far
/// less per stream than 32 messages.
pub(crate) type Outbound = Box<Result<ControlMessage, Status>>;

/// The state of one stream; kept small (1,000s of these per replica).
///
/// Its task's future is allocated once per stream and lives as long as the
/// stream, so the database calls a stream makes rarely (the token re-check,
/// a NACK, the disconnect record) are boxed where they are awaited: sqlx's
/// futures are kilobytes each, and inline they made every stream's task
/// ~16 KiB (heaptrack, BENCHMARKS.md "Fleet").
pub(crate) struct AgentStream {
    pub agent_id: String,
    /// Revisions the agent said it holds; becomes "last sent" per service.
    pub held: HashMap<String, i64>,
    pub watches: Vec<(String, PolicyReceiver)>,
    pub inbound: Streaming<AgentMessage>,
    pub outbound: mpsc::Sender<Outbound>,
    pub store: Store,
    /// Where ACKs and heartbeats go (written in batches).
    pub acks: AckWriter,
    pub shutdown: watch::Receiver<bool>,
    pub connections: Connections,
    /// The token the stream authenticated with, re-checked periodically.
    pub token_id: uuid::Uuid,
    /// Its expiry (seconds since the epoch), if any.
    pub token_exp: Option<i64>,
    pub recheck_every: std::time::Duration,
    /// Revoked token ids, published as the database notifies them.
    pub revoked: tokio::sync::broadcast::Receiver<uuid::Uuid>,
    /// When to end the stream so the agent reconnects (maybe elsewhere);
    /// jittered `--max-stream-age`.
    pub max_age: Option<std::time::Duration>,
    /// When each service's last snapshot was pushed (for the push-to-ACK metric).
    pub pushed_at: HashMap<String, (i64, std::time::Instant)>,
    /// Held until this stream is fully wound down; the server waits for
    /// every one of these before `serve` returns.
    pub _drain: mpsc::Sender<()>,
}

/// The `UNAVAILABLE` that ends a stream on purpose, marked with
/// [`HANDOVER_METADATA`] = `why` so the agent reconnects without alarm.
fn handover(message: &'static str, why: &'static str) -> Status {
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert(
        HANDOVER_METADATA,
        tonic::metadata::MetadataValue::from_static(why),
    );
    Status::with_metadata(tonic::Code::Unavailable, message, metadata)
}

enum Event {
    Changed(String, Option<Arc<super::watch::PolicyState>>),
    Message(AgentMessage),
    Recheck,
}

/// Why a stream ended.
enum End {
    AgentClosed,
    AgentGone(String),
    Shutdown,
    TokenInvalid(&'static str),
    MaxAge,
}

impl AgentStream {
    pub(crate) async fn run(mut self) {
        self.connections.opened(&self.agent_id);
        info!("agent connected");
        metrics().agents_connected.inc();
        let end = self.serve().await;
        metrics().agents_connected.dec();
        match &end {
            End::AgentClosed => info!("agent closed its stream"),
            End::AgentGone(why) => info!(reason = %why, "agent stream ended"),
            End::Shutdown => info!("closing agent stream: control plane shutting down"),
            End::MaxAge => info!("closing agent stream: maximum stream age reached"),
            End::TokenInvalid(why) => {
                warn!(reason = why, "closing agent stream: token no longer valid")
            }
        }
        // Recorded before the final status goes out, so an agent that
        // reconnects at once (maybe to another replica) is not marked
        // disconnected after it connected again.
        if self.connections.closed(&self.agent_id) {
            let closed_by_agent = matches!(end, End::AgentClosed);
            if let Err(error) = Box::pin(
                self.store
                    .agent_disconnected(&self.agent_id, closed_by_agent),
            )
            .await
            {
                warn!(%error, "cannot record agent disconnect");
            }
        }
        let last = match end {
            End::Shutdown => Some(handover(
                "control plane shutting down; reconnect",
                "shutdown",
            )),
            End::TokenInvalid(why) => Some(Status::unauthenticated(why)),
            End::MaxAge => Some(handover(
                "stream reached its maximum age (--max-stream-age); reconnect",
                "max-stream-age",
            )),
            End::AgentClosed | End::AgentGone(_) => None,
        };
        if let Some(status) = last {
            let _ =
                tokio::time::timeout(FINAL_SEND, self.outbound.send(Box::new(Err(status)))).await;
        }
    }

    async fn serve(&mut self) -> End {
        let watches = std::mem::take(&mut self.watches);
        // Only subscribed services count; the Hello may list others.
        self.held
            .retain(|service, _| watches.iter().any(|(s, _)| s == service));
        let mut changes = StreamMap::with_capacity(watches.len());
        for (service, rx) in watches {
            let current = rx.borrow().clone();
            // What the Hello says the agent holds is recorded like an ACK
            // (up to the current revision): an agent that ACKed on a stream
            // that ended before the ACK was read (a handover, a lost
            // connection) is sent nothing new here, so it would never ACK
            // that revision again.
            if let (Some(&held), Some(state)) = (self.held.get(&service), &current)
                && (0..=state.revision()).contains(&held)
            {
                self.acks.acked(&self.agent_id, &service, held).await;
            }
            if let Some(state) = current
                && let Err(end) = self.send_if_new(&service, &state).await
            {
                return end;
            }
            // Until the first snapshot is sent, an ACK for the service is
            // still accepted: the agent held it already.
            self.held.entry(service.clone()).or_insert(-1);
            changes.insert(service, WatchStream::from_changes(rx));
        }
        let mut recheck = tokio::time::interval(self.recheck_every);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        recheck.tick().await;
        let max_age = self.max_age;
        let aged = async move {
            match max_age {
                Some(age) => tokio::time::sleep(age).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(aged);
        loop {
            let event = tokio::select! {
                biased;
                _ = self.shutdown.wait_for(|stop| *stop) => return End::Shutdown,
                why = revoked(&mut self.revoked, self.token_id) => match why {
                    Revoked::This => return End::TokenInvalid("agent token revoked"),
                    Revoked::Unknown => Event::Recheck,
                },
                () = &mut aged => return End::MaxAge,
                _ = recheck.tick() => Event::Recheck,
                Some((service, state)) = changes.next() => Event::Changed(service, state),
                message = self.inbound.message() => match message {
                    Ok(Some(message)) => Event::Message(message),
                    Ok(None) => return End::AgentClosed,
                    Err(status) => return End::AgentGone(status.to_string()),
                },
            };
            match event {
                Event::Changed(service, Some(state)) => {
                    if let Err(end) = self.send_if_new(&service, &state).await {
                        return end;
                    }
                }
                Event::Changed(_, None) => {}
                Event::Message(message) => self.received(message).await,
                Event::Recheck => {
                    if let Some(why) = Box::pin(self.token_invalid()).await {
                        return End::TokenInvalid(why);
                    }
                    // The heartbeat: a quiet stream is still a live agent,
                    // and a replica that died without recording disconnects
                    // stops bumping, so its agents read as gone.
                    self.acks.seen(&self.agent_id).await;
                }
            }
        }
    }

    /// Sends `state` unless the agent already holds (or was sent) its revision.
    async fn send_if_new(
        &mut self,
        service: &str,
        state: &super::watch::PolicyState,
    ) -> Result<(), End> {
        let revision = state.revision();
        if self.held.get(service) == Some(&revision) {
            return Ok(());
        }
        // A slow agent must not hold up shutdown.
        tokio::select! {
            sent = self.outbound.send(Box::new(Ok(snapshot_message(service, state)))) => {
                sent.map_err(|_| End::AgentGone("response stream dropped".into()))?;
            }
            _ = self.shutdown.wait_for(|stop| *stop) => return Err(End::Shutdown),
        }
        debug!(service, revision, "snapshot sent");
        metrics().pushes.inc();
        self.pushed_at
            .insert(service.to_owned(), (revision, std::time::Instant::now()));
        self.held.insert(service.to_owned(), revision);
        Ok(())
    }

    /// Why the stream's token is no longer good, if it is not. A database
    /// error is not a reason to cut an agent off.
    async fn token_invalid(&self) -> Option<&'static str> {
        if self
            .token_exp
            .is_some_and(|exp| exp <= chrono::Utc::now().timestamp())
        {
            return Some("agent token has expired");
        }
        match self.store.agent_token_active(self.token_id).await {
            Ok(true) => None,
            Ok(false) => Some("agent token revoked or unknown"),
            Err(error) => {
                warn!(%error, "cannot re-check agent token");
                None
            }
        }
    }

    async fn received(&mut self, message: AgentMessage) {
        let result = match message.msg {
            Some(agent_message::Msg::Ack(ack)) if self.held.contains_key(&ack.service) => {
                debug!(service = %ack.service, revision = ack.revision, "agent applied policy");
                metrics().acks.inc();
                if let Some((revision, at)) = self.pushed_at.remove(&ack.service)
                    && revision == ack.revision
                {
                    metrics()
                        .push_to_ack_seconds
                        .observe(at.elapsed().as_secs_f64());
                }
                self.acks
                    .acked(&self.agent_id, &ack.service, ack.revision)
                    .await;
                Ok(())
            }
            Some(agent_message::Msg::Nack(nack)) if self.held.contains_key(&nack.service) => {
                warn!(service = %nack.service, revision = nack.revision, error = %nack.error, "agent refused policy");
                metrics().nacks.inc();
                Box::pin(self.store.agent_nacked(
                    &self.agent_id,
                    &nack.service,
                    nack.revision,
                    &nack.error,
                ))
                .await
            }
            other => {
                warn!(message = ?other, "unexpected message from agent; ignored");
                self.acks.seen(&self.agent_id).await;
                Ok(())
            }
        };
        if let Err(error) = result {
            warn!(%error, "cannot record agent message");
        }
    }
}
