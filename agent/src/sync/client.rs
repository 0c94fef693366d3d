//! The API call: open `PolicySync.Sync` with a Hello and yield domain
//! snapshots; send ACK/NACKs back. No policy logic, no retry logic here.

use super::snapshot::{MalformedSnapshot, Snapshot};
use corsair_proto::v1::policy_sync_client::PolicySyncClient;
use corsair_proto::v1::{Ack, AgentMessage, Hello, Nack, agent_message, control_message};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::{ClientTlsConfig, Endpoint};
use tonic::{Request, Status, Streaming};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    endpoint: Endpoint,
    authorization: MetadataValue<tonic::metadata::Ascii>,
}

/// Why the connection settings are unusable (a configuration error).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The control-plane URL does not parse, or TLS cannot be set up.
    #[error("control plane URL {url:?}: {message}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The token cannot be sent as a header.
    #[error("agent token contains characters not allowed in a header")]
    Token,
}

impl Connector {
    pub(crate) fn new(
        url: &str,
        token: &str,
        connect_timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let bad = |e: tonic::transport::Error| ConfigError::Url {
            url: url.to_owned(),
            message: e.to_string(),
        };
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(bad)?
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        if endpoint.uri().scheme_str() == Some("https") {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(bad)?;
        }
        let authorization = format!("Bearer {}", token.trim())
            .parse()
            .map_err(|_| ConfigError::Token)?;
        Ok(Self {
            endpoint,
            authorization,
        })
    }

    /// Connects and opens the stream; returns once the control plane
    /// accepted it (authentication and Hello checks passed).
    pub(crate) async fn open(&self, hello: Hello) -> Result<(Snapshots, Replies), Status> {
        let channel = self
            .endpoint
            .connect()
            .await
            .map_err(|e| Status::unavailable(format!("cannot connect: {}", error_chain(&e))))?;
        let (tx, rx) = mpsc::channel(8);
        tx.send(AgentMessage {
            msg: Some(agent_message::Msg::Hello(hello)),
        })
        .await
        .map_err(|_| Status::internal("outbound channel closed"))?;
        let mut request = Request::new(ReceiverStream::new(rx));
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        let response = PolicySyncClient::new(channel).sync(request).await?;
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
            match self.inbound.message().await? {
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

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
