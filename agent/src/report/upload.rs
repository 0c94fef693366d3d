//! The `corsair.v1.Telemetry` client: one lazily connected channel, the
//! agent token on every call, a deadline per attempt.

use super::queue::Batch;
use crate::sync::ConfigError;
use corsair_proto::v1::telemetry_client::TelemetryClient;
use corsair_proto::v1::{BlockedCount, ReportAck, ReportBatch};
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

/// Sends batches.
#[derive(Debug, Clone)]
pub struct Uploader {
    channel: Channel,
    authorization: MetadataValue<Ascii>,
}

impl Uploader {
    /// A client for `url` (not connected until the first send).
    pub fn new(url: &str, token: &str, timeout: Duration) -> Result<Self, ConfigError> {
        let bad = |e: tonic::transport::Error| ConfigError::Url {
            url: url.to_owned(),
            message: e.to_string(),
        };
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(bad)?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true);
        if endpoint.uri().scheme_str() == Some("https") {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(bad)?;
        }
        let authorization = format!("Bearer {}", token.trim())
            .parse()
            .map_err(|_| ConfigError::Token)?;
        Ok(Self {
            channel: endpoint.connect_lazy(),
            authorization,
        })
    }

    /// Sends one batch; `Ok` once the control plane acknowledged it.
    pub async fn send(&self, batch: &Batch) -> Result<ReportAck, Status> {
        let mut request = Request::new(to_proto(batch));
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        let ack = TelemetryClient::new(self.channel.clone())
            .report(request)
            .await?
            .into_inner();
        if ack.batch_id != batch.batch_id {
            return Err(Status::internal("the acknowledgement names another batch"));
        }
        Ok(ack)
    }
}

fn to_proto(batch: &Batch) -> ReportBatch {
    ReportBatch {
        batch_id: batch.batch_id.clone(),
        agent_id: batch.agent_id.clone(),
        sequence: batch.sequence,
        interval_start_unix_ms: batch.start_ms,
        interval_end_unix_ms: batch.end_ms,
        counts: batch
            .counts
            .iter()
            .map(|c| BlockedCount {
                service: c.service.clone(),
                origin: c.origin.clone(),
                method: c.method.clone(),
                reason: c.reason.clone(),
                would_block: c.would_block,
                count: c.count,
            })
            .collect(),
        dropped_events: batch.dropped_events,
        dropped_service: batch.dropped_service.clone(),
    }
}
