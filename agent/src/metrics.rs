//! The agent's Prometheus metrics, served on the admin listener's
//! `GET /metrics` (text format, via `prometheus-client`).
//!
//! The request path only touches pre-created counters (atomic increments, no
//! lock); per-service families are used on the blocked path only, and
//! gauges mirroring the sync status are refreshed at scrape time.

use crate::engine::{DecisionKind, Reason};
use crate::sync::SyncStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const KINDS: [DecisionKind; 5] = [
    DecisionKind::NotCors,
    DecisionKind::PreflightAllowed,
    DecisionKind::PreflightRejected,
    DecisionKind::Allowed,
    DecisionKind::Blocked,
];
const REASONS: [Option<Reason>; 6] = [
    None,
    Some(Reason::OriginNotAllowed),
    Some(Reason::MethodNotAllowed),
    Some(Reason::HeaderNotAllowed),
    Some(Reason::PrivateNetworkNotAllowed),
    Some(Reason::NoPolicy),
];

/// Labels of `corsair_agent_requests`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    decision: &'static str,
    reason: &'static str,
}

/// Labels of `corsair_agent_proxy_failures`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    failure: &'static str,
    status: u16,
}

/// Labels naming a service.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    /// The service.
    pub service: String,
}

/// Every agent metric. Cheap to clone (shared counters).
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    registry: Arc<Registry>,
    requests: Arc<[Counter; KINDS.len() * REASONS.len()]>,
    preflights: Counter,
    /// Blocked (and would-block) requests by service.
    pub blocked: Family<ServiceLabel, Counter>,
    revision: Family<ServiceLabel, Gauge>,
    stream_connected: Gauge,
    reconnects: Counter,
    reconnects_seen: Arc<AtomicU64>,
    /// Telemetry batches acknowledged by the control plane.
    pub batches_sent: Counter,
    /// Failed upload attempts (each one retried later).
    pub batches_retried: Counter,
    /// Batches dropped from the full queue (or refused for good).
    pub batches_dropped: Counter,
    /// Events in dropped batches.
    pub events_dropped: Counter,
    /// Distinct keys that went into the `(other)` bucket.
    pub overflow: Counter,
    /// Batches waiting for an ACK.
    pub queue_depth: Gauge,
    /// Requests the proxy answered itself, by failure and status.
    proxy_failures: Family<FailureLabels, Counter>,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentMetrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("corsair_agent");
        let requests_family = Family::<RequestLabels, Counter>::default();
        let requests: [Counter; KINDS.len() * REASONS.len()] = std::array::from_fn(|i| {
            let kind = KINDS[i / REASONS.len()];
            let reason = REASONS[i % REASONS.len()];
            requests_family
                .get_or_create(&RequestLabels {
                    decision: kind.as_str(),
                    reason: reason.map_or("none", Reason::as_str),
                })
                .clone()
        });
        registry.register(
            "requests",
            "Requests by CORS decision and reason",
            requests_family,
        );
        let preflights = Counter::default();
        registry.register(
            "preflights",
            "Preflight requests answered",
            preflights.clone(),
        );
        let blocked = Family::<ServiceLabel, Counter>::default();
        registry.register(
            "blocked",
            "Blocked and would-block requests by service",
            blocked.clone(),
        );
        let revision = Family::<ServiceLabel, Gauge>::default();
        registry.register(
            "policy_revision",
            "Policy revision in force per service",
            revision.clone(),
        );
        let stream_connected = Gauge::default();
        registry.register(
            "sync_stream_connected",
            "1 while the PolicySync stream is open",
            stream_connected.clone(),
        );
        let reconnects = Counter::default();
        registry.register(
            "sync_reconnects",
            "PolicySync streams reopened",
            reconnects.clone(),
        );
        let batches_sent = Counter::default();
        registry.register(
            "telemetry_batches_sent",
            "Telemetry batches acknowledged",
            batches_sent.clone(),
        );
        let batches_retried = Counter::default();
        registry.register(
            "telemetry_batches_retried",
            "Telemetry upload attempts that failed and will be retried",
            batches_retried.clone(),
        );
        let batches_dropped = Counter::default();
        registry.register(
            "telemetry_batches_dropped",
            "Telemetry batches dropped (queue full)",
            batches_dropped.clone(),
        );
        let events_dropped = Counter::default();
        registry.register(
            "telemetry_events_dropped",
            "Blocked events in dropped batches",
            events_dropped.clone(),
        );
        let overflow = Counter::default();
        registry.register(
            "telemetry_overflow",
            "Blocked events counted in the (other) bucket",
            overflow.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "telemetry_queue_depth",
            "Telemetry batches waiting for an ACK",
            queue_depth.clone(),
        );
        let proxy_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "proxy_failures",
            "Requests the proxy answered itself instead of the upstream (502 unreachable, \
             504 timeouts, 408 stalled bodies, 400 unforwardable), by failure and status",
            proxy_failures.clone(),
        );
        Self {
            registry: Arc::new(registry),
            requests: Arc::new(requests),
            preflights,
            blocked,
            revision,
            stream_connected,
            reconnects,
            reconnects_seen: Arc::new(AtomicU64::new(0)),
            batches_sent,
            batches_retried,
            batches_dropped,
            events_dropped,
            overflow,
            queue_depth,
            proxy_failures,
        }
    }

    /// Counts one answer the proxy made itself: `failure` is its
    /// machine-readable name (e.g. `upstream_timeout`), `status` what the
    /// client got. Rare, so a labelled family (one lock) is fine here.
    pub fn proxy_failure(&self, failure: &'static str, status: u16) {
        self.proxy_failures
            .get_or_create(&FailureLabels { failure, status })
            .inc();
    }

    /// Counts one request's decision (lock-free).
    pub fn request(&self, kind: DecisionKind, reason: Option<Reason>) {
        let k = KINDS.iter().position(|x| *x == kind).unwrap_or(0);
        let r = REASONS.iter().position(|x| *x == reason).unwrap_or(0);
        self.requests[k * REASONS.len() + r].inc();
        if matches!(
            kind,
            DecisionKind::PreflightAllowed | DecisionKind::PreflightRejected
        ) {
            self.preflights.inc();
        }
    }

    /// Mirrors the sync client's state into the gauges.
    pub fn observe_sync(&self, status: &SyncStatus) {
        self.stream_connected.set(i64::from(status.connected));
        let seen = self
            .reconnects_seen
            .swap(status.reconnects, Ordering::Relaxed);
        self.reconnects
            .inc_by(status.reconnects.saturating_sub(seen));
        for (service, s) in &status.services {
            self.revision
                .get_or_create(&ServiceLabel {
                    service: service.clone(),
                })
                .set(s.revision.unwrap_or(0));
        }
    }

    /// Everything in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
