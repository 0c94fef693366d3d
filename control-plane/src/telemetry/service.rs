//! The `corsair.v1.Telemetry` tonic service.

use crate::auth::SigningKey;
use crate::grpc::auth::{authenticate, bind_agent};
use crate::metrics::{BatchLabels, metrics};
use crate::store::Store;
use crate::store::blocked::{BlockedCount, IngestBatch, Ingested};
use crate::store::usage::OriginUse;
use chrono::{DateTime, Utc};
use corsair_proto::v1::telemetry_server::Telemetry;
use corsair_proto::v1::{ReportAck, ReportBatch};
use std::collections::{BTreeMap, BTreeSet};
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

const MAX_ID_LEN: usize = 256;
const MAX_FIELD_LEN: usize = 1024;
/// Generous: an agent sends at most its key limit plus one overflow bucket
/// per service and reason.
const MAX_COUNTS: usize = 50_000;

/// Stores agents' blocked-request batches.
#[derive(Debug, Clone)]
pub struct TelemetryService {
    store: Store,
    keys: SigningKey,
}

impl TelemetryService {
    /// A service verifying agent tokens with `keys` and storing into `store`.
    pub fn new(store: Store, keys: SigningKey) -> Self {
        Self { store, keys }
    }
}

#[tonic::async_trait]
impl Telemetry for TelemetryService {
    async fn report(&self, request: Request<ReportBatch>) -> Result<Response<ReportAck>, Status> {
        let auth = authenticate(request.metadata(), &self.keys, &self.store).await?;
        let batch = request.into_inner();
        let scope: BTreeSet<&str> = auth.claims.services.iter().map(String::as_str).collect();
        let checked = match check(&batch, &scope) {
            Ok(ingest) => bind_agent(&self.store, &auth, &ingest.agent_id)
                .await
                .map(|()| ingest),
            Err(status) => Err(status),
        };
        let ingest = match checked {
            Ok(ingest) => ingest,
            Err(status) => {
                metrics()
                    .telemetry_batches
                    .get_or_create(&BatchLabels { result: "rejected" })
                    .inc();
                warn!(batch_id = %batch.batch_id, agent_id = %batch.agent_id, reason = status.message(), "telemetry batch refused");
                return Err(status);
            }
        };
        match self.store.ingest_blocked_batch(&ingest).await {
            Ok(Ingested::Stored { events }) => {
                metrics()
                    .telemetry_batches
                    .get_or_create(&BatchLabels { result: "stored" })
                    .inc();
                metrics()
                    .telemetry_events
                    .inc_by(u64::try_from(events).unwrap_or(0));
                debug!(batch_id = %ingest.batch_id, events, "telemetry batch stored");
                Ok(Response::new(ReportAck {
                    batch_id: batch.batch_id,
                    duplicate: false,
                }))
            }
            Ok(Ingested::Duplicate) => {
                metrics()
                    .telemetry_batches
                    .get_or_create(&BatchLabels {
                        result: "duplicate",
                    })
                    .inc();
                debug!(batch_id = %ingest.batch_id, "telemetry batch seen before");
                Ok(Response::new(ReportAck {
                    batch_id: batch.batch_id,
                    duplicate: true,
                }))
            }
            Err(error) => {
                tracing::error!(%error, batch_id = %ingest.batch_id, "storing a telemetry batch failed");
                Err(Status::unavailable(
                    "cannot store the batch right now; retry",
                ))
            }
        }
    }
}

/// Validates a batch against the token's scope and converts it.
fn check(batch: &ReportBatch, scope: &BTreeSet<&str>) -> Result<IngestBatch, Status> {
    let bad = |m: String| Err(Status::invalid_argument(m));
    if batch.batch_id.is_empty() || batch.batch_id.len() > MAX_ID_LEN {
        return bad(format!("batch_id must be 1..={MAX_ID_LEN} bytes"));
    }
    if batch.agent_id.is_empty() || batch.agent_id.len() > MAX_ID_LEN {
        return bad(format!("agent_id must be 1..={MAX_ID_LEN} bytes"));
    }
    if batch.agent_id.contains('\0') || batch.batch_id.contains('\0') {
        return bad("batch_id and agent_id must not contain NUL bytes".into());
    }
    if !batch.batch_id.starts_with(&batch.agent_id) {
        return bad("batch_id must start with the agent_id".into());
    }
    if batch.counts.len() > MAX_COUNTS || batch.allowed.len() > MAX_COUNTS {
        return bad(format!(
            "at most {MAX_COUNTS} counts and {MAX_COUNTS} allowed counts per batch"
        ));
    }
    let now = Utc::now();
    // A clock far ahead must not create partitions in the future.
    let ts = DateTime::<Utc>::from_timestamp_millis(batch.interval_start_unix_ms)
        .filter(|t| *t <= now)
        .unwrap_or(now);
    let mut counts = Vec::with_capacity(batch.counts.len());
    for c in &batch.counts {
        if !scope.contains(c.service.as_str()) {
            return Err(Status::permission_denied(format!(
                "the agent token is not scoped to service {:?}",
                c.service
            )));
        }
        for (name, value) in [
            ("origin", &c.origin),
            ("method", &c.method),
            ("reason", &c.reason),
        ] {
            if value.len() > MAX_FIELD_LEN {
                return bad(format!("{name} longer than {MAX_FIELD_LEN} bytes"));
            }
            // Postgres text cannot hold NUL: storing it would fail the whole
            // batch on every retry, so refuse it here with a reason.
            if value.contains('\0') {
                return bad(format!("{name} contains a NUL byte"));
            }
        }
        if c.count == 0 {
            continue;
        }
        let count =
            i64::try_from(c.count).map_err(|_| Status::invalid_argument("count out of range"))?;
        counts.push(BlockedCount {
            service: c.service.clone(),
            origin: c.origin.clone(),
            method: c.method.clone(),
            reason: c.reason.clone(),
            would_block: c.would_block,
            count,
        });
    }
    let uses = check_allowed(batch, scope)?;
    // The uses' last-allowed time: the interval's end, on the same clamp.
    let ts_end = DateTime::<Utc>::from_timestamp_millis(batch.interval_end_unix_ms)
        .filter(|t| *t <= now)
        .unwrap_or(now)
        .max(ts);
    let dropped_events = i64::try_from(batch.dropped_events)
        .map_err(|_| Status::invalid_argument("dropped_events out of range"))?;
    if dropped_events > 0 && !scope.contains(batch.dropped_service.as_str()) {
        return Err(Status::permission_denied(format!(
            "the agent token is not scoped to service {:?}",
            batch.dropped_service
        )));
    }
    Ok(IngestBatch {
        batch_id: batch.batch_id.clone(),
        agent_id: batch.agent_id.clone(),
        ts,
        counts,
        dropped_events,
        dropped_service: batch.dropped_service.clone(),
        uses,
        ts_end,
    })
}

/// Checks the batch's allowed counts (scope, sizes, no NUL) and merges
/// repeated (service, pattern) keys, which the store's upsert needs unique.
fn check_allowed(batch: &ReportBatch, scope: &BTreeSet<&str>) -> Result<Vec<OriginUse>, Status> {
    let mut merged: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for a in &batch.allowed {
        if !scope.contains(a.service.as_str()) {
            return Err(Status::permission_denied(format!(
                "the agent token is not scoped to service {:?}",
                a.service
            )));
        }
        if a.origin_pattern.len() > MAX_FIELD_LEN {
            return Err(Status::invalid_argument(format!(
                "origin_pattern longer than {MAX_FIELD_LEN} bytes"
            )));
        }
        if a.origin_pattern.contains('\0') {
            return Err(Status::invalid_argument(
                "origin_pattern contains a NUL byte",
            ));
        }
        if a.count == 0 {
            continue;
        }
        let count = i64::try_from(a.count)
            .map_err(|_| Status::invalid_argument("allowed count out of range"))?;
        let total = merged
            .entry((a.service.as_str(), a.origin_pattern.as_str()))
            .or_insert(0);
        *total = total
            .checked_add(count)
            .ok_or_else(|| Status::invalid_argument("allowed count out of range"))?;
    }
    Ok(merged
        .into_iter()
        .map(|((service, pattern), count)| OriginUse {
            service: service.to_owned(),
            pattern: pattern.to_owned(),
            count,
        })
        .collect())
}
