//! Request telemetry: count in memory, upload in batches. Blocked requests
//! per (service, origin, method, reason); allowed ones per (service,
//! approved pattern), counted by the policy and drained into the same
//! batches (same intervals, ids, spill and retries: exact the same way).
//!
//! - [`counter`]: [`Recorder`], the sharded per-interval counts (bounded
//!   cardinality with an `(other)` bucket).
//! - [`queue`]: [`SpillQueue`], unacknowledged batches in memory and on disk.
//! - [`upload`]: the `corsair.v1.Telemetry` client.
//!
//! [`run`] ties them together: every interval the counts become a batch
//! (id = agent id + persisted sequence), queued and spilled; the queue is
//! sent oldest first, each batch until the control plane acknowledges it,
//! with jittered exponential backoff between failures (the schedule and the
//! status classification are [`crate::control_plane`]'s, shared with the
//! policy stream).
//!
//! # What a stop or a crash loses
//!
//! - A clean stop (SIGTERM, Ctrl-C) loses nothing: the partial last
//!   interval is queued and spilled too, and sent after the restart.
//! - A crash (SIGKILL, OOM kill, power loss) loses the counts of the
//!   interval in progress, and nothing before it: **at most one
//!   `--report-interval` of events** (default 10 s), plus those counted
//!   while that interval's batch was being written (the fsyncs of one small
//!   file). Every batch flushed before is on disk, whole, with its
//!   sequence number, and is sent after the restart.
//! - A full queue (`--report-queue` batches unacknowledged) drops the
//!   oldest batches; their event count travels with the next batch
//!   (`dropped_events`), so the control plane shows the loss; their allowed
//!   counts are merged into the next batch's, so none is lost.
//!
//! Allowed counts have the same guarantees as blocked ones: they are taken
//! at the same moment, into the same batch.

pub mod counter;
pub mod queue;
pub mod upload;

pub use counter::{Recorded, Recorder};
pub use queue::{AllowedCount, Batch, Count, SpillQueue};

use crate::control_plane::{Backoff, FailureKind, classify};
use crate::engine::{Decision, RequestParts};
use crate::metrics::{AgentMetrics, ServiceLabel};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Telemetry settings.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Aggregation (and flush) interval.
    pub interval: Duration,
    /// Distinct keys per interval before the `(other)` bucket takes over.
    pub max_keys: usize,
    /// Unacknowledged batches kept before the oldest are dropped.
    pub max_queue_batches: usize,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Per-attempt deadline (connect + answer).
    pub request_timeout: Duration,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            max_keys: 10_000,
            max_queue_batches: 1_000,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The request path's handle: counts one service's blocked decisions.
#[derive(Debug, Clone)]
pub struct Reporter {
    service: Arc<str>,
    recorder: Recorder,
    metrics: AgentMetrics,
}

impl Reporter {
    /// A handle counting for `service`.
    pub fn new(service: &str, recorder: Recorder, metrics: AgentMetrics) -> Self {
        Self {
            service: service.into(),
            recorder,
            metrics,
        }
    }

    /// Counts an answer the proxy made itself instead of the upstream's
    /// (see [`AgentMetrics::proxy_failure`]).
    pub fn proxy_failure(&self, failure: &'static str, status: u16) {
        self.metrics.proxy_failure(failure, status);
    }

    /// Records `decision` for `request`: every decision in the metrics;
    /// blocked and would-block ones also in the telemetry counts.
    pub fn observe(&self, request: &RequestParts<'_>, decision: &Decision<'_>) {
        self.metrics.request(decision.kind(), decision.reason());
        let Some(reason) = decision.reason() else {
            return;
        };
        let origin = request
            .headers
            .get(http::header::ORIGIN)
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .unwrap_or_default();
        // For a preflight, the method the browser wants to use says more
        // than OPTIONS.
        let requested = (request.method == http::Method::OPTIONS)
            .then(|| {
                request
                    .headers
                    .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            })
            .flatten()
            .and_then(|v| v.to_str().ok());
        let method = requested.unwrap_or(request.method.as_str());
        let recorded = self.recorder.record(
            &self.service,
            &origin,
            method,
            reason.as_str(),
            decision.would_block(),
        );
        if recorded == Recorded::Overflow {
            self.metrics.overflow.inc();
        }
        self.metrics
            .blocked
            .get_or_create(&ServiceLabel {
                service: self.service.to_string(),
            })
            .inc();
    }
}

/// Where and as whom to upload.
#[derive(Debug, Clone)]
pub struct UploadTarget {
    /// Where the control plane is and how to authenticate.
    pub control_plane: crate::control_plane::ControlPlaneConfig,
    /// This agent's id.
    pub agent_id: String,
    /// The service dropped-event counts are reported under.
    pub service: String,
    /// Spill directory (`<cache dir>/telemetry`).
    pub spill_dir: PathBuf,
}

/// Errors that stop telemetry from starting.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The spill directory cannot be used.
    #[error("telemetry spill directory {path}: {source}")]
    Spill {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The URL or token cannot be used.
    #[error(transparent)]
    Config(#[from] crate::sync::ConfigError),
}

/// Runs telemetry until `shutdown`: flush every interval, upload with retry.
pub async fn run(
    config: ReportConfig,
    target: UploadTarget,
    recorder: Recorder,
    metrics: AgentMetrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ReportError> {
    let spill = |source| ReportError::Spill {
        path: target.spill_dir.clone(),
        source,
    };
    let mut queue = SpillQueue::open(&target.spill_dir, config.max_queue_batches).map_err(spill)?;
    let client = upload::Uploader::new(target.control_plane.clone(), config.request_timeout)?;
    metrics.queue_depth.set(queue_len(&queue));
    if !queue.is_empty() {
        tracing::info!(
            batches = queue.len(),
            "resending telemetry batches spilled by a previous run"
        );
    }
    // Ends the interval that began at `start`: its counts become a spilled
    // batch; returns when the next interval begins.
    let cut = |queue: &mut SpillQueue, start: i64| {
        let end = now_ms();
        flush(&recorder, queue, &target, &metrics, start, end).map_err(spill)?;
        Ok::<_, ReportError>(end)
    };
    let mut interval_start = now_ms();
    let mut next_flush = Instant::now() + config.interval;
    let mut retry_at = Instant::now();
    // The one jittered backoff the sync client uses too.
    let mut retry = Backoff::new(config.retry_base, config.retry_max);
    tokio::pin!(shutdown);
    loop {
        if !queue.is_empty() && Instant::now() >= retry_at {
            match send_queue(&client, &mut queue, &metrics).await {
                Ok(()) => retry.reset(),
                Err(status) => {
                    let delay = retry.next_delay();
                    tracing::debug!(code = ?status.code(), error = status.message(), ?delay, "telemetry upload failed; retrying");
                    retry_at = Instant::now() + delay;
                }
            }
        }
        let wake = if queue.is_empty() {
            next_flush
        } else {
            next_flush.min(retry_at)
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep_until(wake) => {}
        }
        if Instant::now() >= next_flush {
            interval_start = cut(&mut queue, interval_start)?;
            next_flush += config.interval;
        }
    }
    // The partial last interval goes to disk; one quick attempt to send.
    cut(&mut queue, interval_start)?;
    if !queue.is_empty() {
        let _ = tokio::time::timeout(
            config.request_timeout.min(Duration::from_secs(2)),
            send_queue(&client, &mut queue, &metrics),
        )
        .await;
    }
    if !queue.is_empty() {
        tracing::info!(
            batches = queue.len(),
            "telemetry batches kept on disk for the next run"
        );
    }
    Ok(())
}

/// Turns the interval's counts into a queued batch (nothing when empty).
fn flush(
    recorder: &Recorder,
    queue: &mut SpillQueue,
    target: &UploadTarget,
    metrics: &AgentMetrics,
    start_ms: i64,
    end_ms: i64,
) -> std::io::Result<()> {
    let counts = recorder.take();
    let uses = recorder.take_uses();
    if counts.is_empty() && uses.is_empty() {
        return Ok(());
    }
    let sequence = queue.next_sequence()?;
    let mut counts: Vec<Count> = counts
        .into_iter()
        .map(|(k, count)| Count {
            service: k.service,
            origin: k.origin,
            method: k.method,
            reason: k.reason,
            would_block: k.would_block,
            count,
        })
        .collect();
    counts.sort_by(|a, b| {
        (&a.service, &a.origin, &a.method).cmp(&(&b.service, &b.origin, &b.method))
    });
    let batch = Batch {
        batch_id: format!("{}:{sequence}", target.agent_id),
        agent_id: target.agent_id.clone(),
        sequence,
        start_ms,
        end_ms,
        counts,
        dropped_events: 0,
        dropped_service: target.service.clone(),
        allowed: uses
            .into_iter()
            .map(|((service, pattern), count)| AllowedCount {
                service,
                pattern,
                count,
            })
            .collect(),
    };
    let dropped = queue.push(batch)?;
    if dropped.batches > 0 {
        metrics.batches_dropped.inc_by(dropped.batches);
        metrics.events_dropped.inc_by(dropped.lost);
        tracing::warn!(
            batches = dropped.batches,
            events = dropped.lost,
            "telemetry queue full: dropped the oldest batches; their event count is reported with the next batch"
        );
    }
    metrics.queue_depth.set(queue_len(queue));
    Ok(())
}

/// Sends the queue oldest first until it is empty or a send fails.
async fn send_queue(
    client: &upload::Uploader,
    queue: &mut SpillQueue,
    metrics: &AgentMetrics,
) -> Result<(), tonic::Status> {
    while let Some(batch) = queue.front() {
        match client.send(batch).await {
            Ok(_) => {
                metrics.batches_sent.inc();
                queue.pop_front();
            }
            Err(status)
                if matches!(
                    classify(status.code()),
                    FailureKind::Invalid | FailureKind::Forbidden
                ) =>
            {
                // This batch is refused for what it is (malformed, or outside
                // the token's scope): resending it cannot help and would hold
                // up every batch behind it. Drop it, loudly.
                metrics.batches_dropped.inc();
                tracing::error!(batch_id = %batch.batch_id, code = ?status.code(), error = status.message(), "telemetry batch refused by the control plane; dropping it");
                if let Some(b) = queue.pop_front() {
                    metrics.events_dropped.inc_by(b.events());
                }
            }
            Err(status) => {
                metrics.batches_retried.inc();
                metrics.queue_depth.set(queue_len(queue));
                return Err(status);
            }
        }
        metrics.queue_depth.set(queue_len(queue));
    }
    Ok(())
}

fn queue_len(queue: &SpillQueue) -> i64 {
    i64::try_from(queue.len()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
