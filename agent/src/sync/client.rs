//! The API call: open `PolicySync.Sync` with a Hello and yield domain
//! snapshots; send ACK/NACKs back. No policy logic, no retry logic here.

use super::snapshot::{MalformedSnapshot, Snapshot};
use crate::control_plane::status::{error_chain, explain, with_hint};
use crate::control_plane::{ConfigError, ControlPlane, ControlPlaneConfig};
use corsair_proto::v1::policy_sync_client::PolicySyncClient;
use corsair_proto::v1::{Ack, AgentMessage, Hello, Nack, agent_message, control_message};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Request, Status, Streaming};

/// Where and how to connect.
#[derive(Debug)]
pub(crate) struct Connector {
    control_plane: ControlPlane,
    /// The token the last [`Connector::open`] sent, to notice a rotation.
    last_token: std::sync::Mutex<Option<MetadataValue<Ascii>>>,
}

impl Connector {
    pub(crate) fn new(
        config: ControlPlaneConfig,
        connect_timeout: Duration,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            control_plane: ControlPlane::new(config, connect_timeout)?,
            last_token: std::sync::Mutex::new(None),
        })
    }

    /// Whether the token source now holds a different token from the one
    /// the last stream was opened with (a rotated `--token-file`).
    pub(crate) fn token_changed(&self) -> bool {
        let Ok(now) = self.control_plane.authorization() else {
            return false;
        };
        match self.last_token.lock() {
            Ok(last) => last.as_ref().is_some_and(|last| *last != now),
            Err(_) => false,
        }
    }

    /// Connects and opens the stream; returns once the control plane
    /// accepted it (authentication and Hello checks passed).
    pub(crate) async fn open(&self, hello: Hello) -> Result<(Snapshots, Replies), Status> {
        // Files are read again for every stream: a rotated token, CA or
        // client certificate is used without a restart.
        let (endpoint, _) = self.control_plane.endpoint()?;
        let endpoint = endpoint
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let authorization = self.control_plane.authorization()?;
        if let Ok(mut last) = self.last_token.lock() {
            *last = Some(authorization.clone());
        }
        let channel = endpoint.connect().await.map_err(|e| {
            Status::unavailable(with_hint(format!("cannot connect: {}", error_chain(&e))))
        })?;
        let (tx, rx) = mpsc::channel(8);
        tx.send(AgentMessage {
            msg: Some(agent_message::Msg::Hello(hello)),
        })
        .await
        .map_err(|_| Status::internal("outbound channel closed"))?;
        let mut request = Request::new(ReceiverStream::new(rx));
        request
            .metadata_mut()
            .insert("authorization", authorization);
        let https = endpoint_is_https(&self.control_plane);
        let response = PolicySyncClient::new(channel)
            .sync(request)
            .await
            .map_err(|status| closed_during_setup(explain(status), https))?;
        Ok((
            Snapshots {
                inbound: response.into_inner(),
            },
            Replies { tx },
        ))
    }
}

/// Snapshots as they arrive on an open stream.
#[derive(Debug)]
pub(crate) struct Snapshots {
    inbound: Streaming<corsair_proto::v1::ControlMessage>,
}

impl Snapshots {
    /// The next snapshot (or why it could not be converted); `Ok(None)` when
    /// the control plane ended the stream cleanly.
    pub(crate) async fn next(
        &mut self,
    ) -> Result<Option<Result<Snapshot, MalformedSnapshot>>, Status> {
        loop {
            match self.inbound.message().await.map_err(explain)? {
                None => return Ok(None),
                Some(message) => match message.msg {
                    Some(control_message::Msg::Snapshot(snapshot)) => {
                        return Ok(Some(Snapshot::try_from(snapshot)));
                    }
                    // A message kind newer than this agent: ignore it.
                    None => continue,
                },
            }
        }
    }
}

/// The agent's half of the stream.
#[derive(Debug)]
pub(crate) struct Replies {
    tx: mpsc::Sender<AgentMessage>,
}

impl Replies {
    pub(crate) async fn ack(&self, service: &str, revision: i64) -> Result<(), Status> {
        self.send(agent_message::Msg::Ack(Ack {
            service: service.to_owned(),
            revision,
        }))
        .await
    }

    pub(crate) async fn nack(
        &self,
        service: &str,
        revision: i64,
        error: &str,
    ) -> Result<(), Status> {
        let error = error.to_owned();
        self.send(agent_message::Msg::Nack(Nack {
            service: service.to_owned(),
            revision,
            error,
        }))
        .await
    }

    async fn send(&self, msg: agent_message::Msg) -> Result<(), Status> {
        self.tx
            .send(AgentMessage { msg: Some(msg) })
            .await
            .map_err(|_| Status::unavailable("stream to the control plane closed"))
    }
}

fn endpoint_is_https(control_plane: &ControlPlane) -> bool {
    control_plane.config().url.starts_with("https://")
}

/// A TLS connection closed before the stream opened, with no reason given
/// (the alert saying why can be lost): most likely the control plane
/// refused the client certificate (mTLS). Say so, carefully.
fn closed_during_setup(status: Status, https: bool) -> Status {
    if https && status.message().ends_with("connection closed") {
        let message = format!(
            "{} (the control plane closed the TLS connection before the stream opened: \
             if it requires client certificates, it refused this agent's client certificate \
             or got none; its log says which)",
            status.message()
        );
        return Status::new(status.code(), message);
    }
    status
}
