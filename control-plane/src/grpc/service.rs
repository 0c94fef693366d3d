//! The `PolicySync` tonic service: authenticates a stream, checks its Hello,
//! records the agent and hands the stream to its own task ([`super::stream`]).

use super::GrpcConfig;
use super::acks::AckWriter;
use super::auth::{authenticate, bind_agent};
use super::revocations::Revocations;
use super::stream::{AgentStream, Connections, Outbound};
use super::watch::PolicyWatcher;
use crate::auth::SigningKey;
use crate::store::Store;
use crate::store::agents::AgentHello;
use corsair_proto::v1::policy_sync_server::PolicySync;
use corsair_proto::v1::{AgentMessage, ControlMessage, Hello, agent_message};
use futures_util::StreamExt as _;
use futures_util::stream::Map;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::{Semaphore, SemaphorePermit, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info_span, warn};

const MAX_ID_LEN: usize = 128;
const MAX_NAME_LEN: usize = 256;
const MAX_SERVICES: usize = 256;
/// Outbound messages buffered per stream before the stream task waits.
const OUTBOUND_BUFFER: usize = 4;
/// Stream openings doing their database work (token check, agent binding,
/// the agent's row) at once; the rest wait for a turn before building any
/// query. When a whole fleet reconnects, 10,000 openings each holding
/// sqlx's queued query futures (~10 KiB apiece) waiting for one of the
/// pool's 16 connections peaked at hundreds of MiB, which glibc kept
/// resident; the pool cannot serve more than this at once anyway.
const OPENINGS_AT_ONCE: usize = 32;

/// The `corsair.v1.PolicySync` service.
#[derive(Debug, Clone)]
pub struct PolicySyncService<W> {
    watcher: W,
    revocations: Revocations,
    store: Store,
    keys: SigningKey,
    config: GrpcConfig,
    shutdown: watch::Receiver<bool>,
    connections: Connections,
    drain: mpsc::WeakSender<()>,
    acks: AckWriter,
    openings: Arc<Semaphore>,
}

impl<W: PolicyWatcher> PolicySyncService<W> {
    /// A service answering streams from `watcher`, recording agents in
    /// `store`; a token id published to `revocations` ends that token's
    /// streams with UNAUTHENTICATED. Open streams end (UNAVAILABLE, so agents reconnect elsewhere)
    /// once `shutdown` turns `true`. Each stream holds a clone of `drain`
    /// until it has wound down (new streams are refused once every strong
    /// sender is gone), so the owner of the receiver can wait for them all;
    /// so does the task that writes the streams' ACKs and heartbeats in
    /// batches, until every stream and this service are gone. Call within a
    /// Tokio runtime (it starts that task).
    pub fn new(
        watcher: W,
        revocations: Revocations,
        store: Store,
        keys: SigningKey,
        config: GrpcConfig,
        shutdown: watch::Receiver<bool>,
        drain: mpsc::WeakSender<()>,
    ) -> Self {
        let acks = AckWriter::spawn(store.clone(), drain.upgrade());
        Self {
            watcher,
            revocations,
            store,
            keys,
            config,
            shutdown,
            connections: Connections::default(),
            drain,
            acks,
            openings: Arc::new(Semaphore::new(OPENINGS_AT_ONCE)),
        }
    }

    /// A turn to do a stream opening's database work ([`OPENINGS_AT_ONCE`]).
    async fn opening_turn(&self) -> Result<SemaphorePermit<'_>, Status> {
        self.openings
            .acquire()
            .await
            .map_err(|_| Status::unavailable("control plane shutting down"))
    }
}

#[tonic::async_trait]
impl<W: PolicyWatcher> PolicySync for PolicySyncService<W> {
    type SyncStream = Map<ReceiverStream<Outbound>, fn(Outbound) -> Result<ControlMessage, Status>>;

    async fn sync(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        let peer = request.remote_addr();
        let drain = self
            .drain
            .upgrade()
            .ok_or_else(|| Status::unavailable("control plane shutting down"))?;
        // Subscribed before the token is checked, so a revocation committed
        // after the check cannot slip past the stream.
        let revoked = self.revocations.subscribe();
        let turn = self.opening_turn().await?;
        let auth = authenticate(request.metadata(), &self.keys, &self.store)
            .await
            .inspect_err(|status| {
                warn!(?peer, reason = status.message(), "agent stream refused")
            })?;
        // Not held while the agent takes its time to send the Hello.
        drop(turn);
        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(self.config.hello_timeout, inbound.message()).await {
            Err(_) => return Err(Status::deadline_exceeded("no Hello received in time")),
            Ok(Err(status)) => return Err(status),
            Ok(Ok(Some(AgentMessage {
                msg: Some(agent_message::Msg::Hello(hello)),
            }))) => hello,
            Ok(Ok(_)) => {
                return Err(Status::invalid_argument(
                    "the first message must be a Hello",
                ));
            }
        };
        let services = check_hello(&hello, &auth.claims.services)
            .inspect_err(|status| warn!(?peer, agent_id = %hello.agent_id, reason = status.message(), "agent stream refused"))?;
        let turn = self.opening_turn().await?;
        bind_agent(&self.store, &auth, &hello.agent_id)
            .await
            .inspect_err(|status| warn!(?peer, agent_id = %hello.agent_id, reason = status.message(), "agent stream refused"))?;

        let span = info_span!(
            "policy_stream",
            agent_id = %hello.agent_id,
            agent_name = %hello.agent_name,
            token = %auth.claims.sub,
        );
        let mut watches = Vec::with_capacity(services.len());
        for service in &services {
            let rx = self.watcher.watch(service).await.map_err(|error| {
                tracing::error!(parent: &span, service = %service, %error, "cannot load policy");
                Status::unavailable("cannot load the policy right now")
            })?;
            watches.push((service.clone(), rx));
        }
        self.store
            .agent_connected(&AgentHello {
                id: &hello.agent_id,
                name: &hello.agent_name,
                token_id: auth.token_id,
                services: &services,
                version: &hello.version,
            })
            .await
            .map_err(|error| {
                tracing::error!(parent: &span, %error, "cannot record agent");
                Status::unavailable("cannot record the agent right now")
            })?;
        drop(turn);

        let (tx, rx) = mpsc::channel(OUTBOUND_BUFFER);
        let stream = AgentStream {
            agent_id: hello.agent_id,
            held: hello.revisions,
            watches,
            inbound,
            outbound: tx,
            store: self.store.clone(),
            acks: self.acks.clone(),
            shutdown: self.shutdown.clone(),
            connections: self.connections.clone(),
            token_id: auth.token_id,
            token_exp: auth.claims.exp,
            recheck_every: self.config.token_recheck_interval,
            revoked,
            max_age: self.config.stream_age(),
            pushed_at: HashMap::new(),
            _drain: drain,
        };
        tokio::spawn(stream.run().instrument(span));
        let unbox: fn(Outbound) -> Result<ControlMessage, Status> = |message| *message;
        Ok(Response::new(ReceiverStream::new(rx).map(unbox)))
    }
}

/// Validates a Hello against the token's scope; returns its services,
/// deduplicated and sorted.
fn check_hello(hello: &Hello, allowed: &[String]) -> Result<Vec<String>, Status> {
    if hello.agent_id.is_empty() || hello.agent_id.len() > MAX_ID_LEN {
        return Err(Status::invalid_argument(format!(
            "agent_id must be 1 to {MAX_ID_LEN} bytes"
        )));
    }
    if hello.agent_name.len() > MAX_NAME_LEN {
        return Err(Status::invalid_argument(format!(
            "agent_name must be at most {MAX_NAME_LEN} bytes"
        )));
    }
    if hello.services.is_empty() || hello.services.len() > MAX_SERVICES {
        return Err(Status::invalid_argument(format!(
            "name 1 to {MAX_SERVICES} services"
        )));
    }
    let services: BTreeSet<&String> = hello.services.iter().collect();
    let denied: Vec<&str> = services
        .iter()
        .filter(|s| !allowed.contains(s))
        .map(|s| s.as_str())
        .collect();
    if !denied.is_empty() {
        return Err(Status::permission_denied(format!(
            "this agent token is not scoped to service(s): {}",
            denied.join(", ")
        )));
    }
    Ok(services.into_iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(services: &[&str]) -> Hello {
        Hello {
            agent_id: "a1".into(),
            agent_name: "n".into(),
            version: "0".into(),
            services: services.iter().map(|s| s.to_string()).collect(),
            revisions: Default::default(),
        }
    }

    #[test]
    fn hello_checks() {
        let allowed = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            check_hello(&hello(&["b", "a", "b"]), &allowed).ok(),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            check_hello(&hello(&["a", "c"]), &allowed)
                .unwrap_err()
                .code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            check_hello(&hello(&[]), &allowed).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let mut h = hello(&["a"]);
        h.agent_id.clear();
        assert_eq!(
            check_hello(&h, &allowed).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }
}
