//! The `corsair.v1.Telemetry` client: one lazily connected channel (rebuilt
//! when the TLS files change), the agent token read afresh for every batch,
//! a deadline per attempt.

use super::queue::Batch;
use crate::control_plane::{ConfigError, ControlPlane, ControlPlaneConfig, TlsMaterial};
use corsair_proto::v1::telemetry_client::TelemetryClient;
use corsair_proto::v1::{AllowedCount, BlockedCount, ReportAck, ReportBatch};
use std::sync::Mutex;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Sends batches.
#[derive(Debug)]
pub struct Uploader {
    control_plane: ControlPlane,
    timeout: Duration,
    channel: Mutex<(Channel, TlsMaterial)>,
}

impl Uploader {
    /// A client for `config` (not connected until the first send); each
    /// attempt, connect included, gets `timeout`.
    pub fn new(config: ControlPlaneConfig, timeout: Duration) -> Result<Self, ConfigError> {
        let control_plane = ControlPlane::new(config, timeout)?;
        let channel = Self::lazy(&control_plane, timeout)?;
        Ok(Self {
            control_plane,
            timeout,
            channel: Mutex::new(channel),
        })
    }

    fn lazy(
        control_plane: &ControlPlane,
        timeout: Duration,
    ) -> Result<(Channel, TlsMaterial), ConfigError> {
        let (endpoint, material) = control_plane.endpoint()?;
        Ok((endpoint.timeout(timeout).connect_lazy(), material))
    }

    /// The channel for the TLS files as they are now: the same one while
    /// they are unchanged, so batches reuse one connection.
    fn channel(&self) -> Result<Channel, ConfigError> {
        let (fresh, material) = Self::lazy(&self.control_plane, self.timeout)?;
        let Ok(mut current) = self.channel.lock() else {
            return Ok(fresh);
        };
        if current.1 != material {
            tracing::info!("control-plane TLS files changed; reconnecting telemetry");
            *current = (fresh, material);
        }
        Ok(current.0.clone())
    }

    /// Sends one batch; `Ok` once the control plane acknowledged it.
    pub async fn send(&self, batch: &Batch) -> Result<ReportAck, Status> {
        let mut request = Request::new(to_proto(batch));
        self.control_plane.authorize(&mut request)?;
        let ack = TelemetryClient::new(self.channel()?)
            .report(request)
            .await
            .map_err(crate::control_plane::explain)?
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
        allowed: batch
            .allowed
            .iter()
            .map(|a| AllowedCount {
                service: a.service.clone(),
                origin_pattern: a.pattern.clone(),
                count: a.count,
            })
            .collect(),
    }
}
