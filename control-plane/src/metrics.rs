//! The control plane's Prometheus metrics, served as text on `GET /metrics`.
//!
//! One process-wide registry ([`metrics`]): the gRPC services, the telemetry
//! ingestion and the HTTP middleware record into it without threading a
//! handle through every constructor. The audit log's figures are read from
//! the database at most once per interval ([`audit_figures`]).

pub mod audit_figures;

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// Labels of HTTP request metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Request method.
    pub method: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of telemetry batch outcomes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BatchLabels {
    /// `stored`, `duplicate` or `rejected`.
    pub result: &'static str,
}

/// Every control-plane metric.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Agents holding a PolicySync stream on this replica.
    pub agents_connected: Gauge,
    /// Snapshots pushed to agents.
    pub pushes: Counter,
    /// ACKs received.
    pub acks: Counter,
    /// NACKs received.
    pub nacks: Counter,
    /// Time from pushing a snapshot to its ACK.
    pub push_to_ack_seconds: Histogram,
    /// Telemetry batches by outcome.
    pub telemetry_batches: Family<BatchLabels, Counter>,
    /// Blocked events stored (dropped-event counts included).
    pub telemetry_events: Counter,
    /// HTTP request durations.
    pub http_request_duration_seconds: Family<HttpLabels, Histogram>,
    /// Rows in the change audit log's hash chain, as the newest read for
    /// `/metrics` found it (NaN until a read succeeds and after a failed
    /// one). Reads: [`audit_figures::AuditFigures`].
    pub audit_chain_length: Gauge<f64, AtomicU64>,
    /// Rows deleted from the audit log as Postgres counts them, as the
    /// newest read found it (NaN likewise).
    pub audit_rows_deleted: Gauge<f64, AtomicU64>,
    /// Reads of the audit figures from the database (at most one per
    /// interval per app, however many scrapes).
    pub audit_reads: Counter,
    /// Reads of the audit figures that failed or timed out.
    pub audit_read_failures: Counter,
}

fn http_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("corsair");
        let agents_connected = Gauge::default();
        registry.register(
            "agents_connected",
            "Agents holding a PolicySync stream on this replica",
            agents_connected.clone(),
        );
        let pushes = Counter::default();
        registry.register(
            "policy_pushes",
            "Policy snapshots pushed to agents",
            pushes.clone(),
        );
        let acks = Counter::default();
        registry.register(
            "policy_acks",
            "Snapshot ACKs received from agents",
            acks.clone(),
        );
        let nacks = Counter::default();
        registry.register(
            "policy_nacks",
            "Snapshot NACKs received from agents",
            nacks.clone(),
        );
        let push_to_ack_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "policy_push_to_ack_seconds",
            "Time from pushing a snapshot to its ACK",
            push_to_ack_seconds.clone(),
        );
        let telemetry_batches = Family::<BatchLabels, Counter>::default();
        registry.register(
            "telemetry_batches",
            "Telemetry batches received, by result",
            telemetry_batches.clone(),
        );
        let telemetry_events = Counter::default();
        registry.register(
            "telemetry_events",
            "Blocked events stored",
            telemetry_events.clone(),
        );
        let http_request_duration_seconds = Family::<HttpLabels, Histogram>::new_with_constructor(
            http_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request durations",
            http_request_duration_seconds.clone(),
        );
        // Production's figures; tests may read more often.
        let every = format!("{} s", audit_figures::AUDIT_READ_INTERVAL.as_secs());
        let timeout = format!("{} s", audit_figures::AUDIT_READ_TIMEOUT.as_secs());
        let audit_chain_length = Gauge::<f64, AtomicU64>::default();
        audit_chain_length.set(f64::NAN);
        registry.register(
            "audit_chain_length",
            format!("Rows in the change audit log's hash chain (its newest row's position), read from the database for /metrics at most once every {every} (scrapes in between reuse the newest read; NaN when it failed or took over {timeout}); it never decreases unless rows were removed from the end of the log"),
            audit_chain_length.clone(),
        );
        let audit_rows_deleted = Gauge::<f64, AtomicU64>::default();
        audit_rows_deleted.set(f64::NAN);
        registry.register(
            "audit_rows_deleted",
            format!("Rows deleted from the append-only change audit log as Postgres counts them (pg_stat_user_tables.n_tup_del, cumulative since its statistics were reset), read with corsair_audit_chain_length (at most once every {every}; NaN when the newest read failed or took over {timeout}); any increase is tampering"),
            audit_rows_deleted.clone(),
        );
        let audit_reads = Counter::default();
        registry.register(
            "audit_reads",
            format!("Reads of the audit log's figures from the database for /metrics (at most one every {every}, however many scrapes)"),
            audit_reads.clone(),
        );
        let audit_read_failures = Counter::default();
        registry.register(
            "audit_read_failures",
            format!("Reads of the audit log's figures for /metrics that failed or took over {timeout} (each failure serves the scrapes of the next {every} as NaN)"),
            audit_read_failures.clone(),
        );
        Self {
            registry,
            agents_connected,
            pushes,
            acks,
            nacks,
            push_to_ack_seconds,
            telemetry_batches,
            telemetry_events,
            http_request_duration_seconds,
            audit_chain_length,
            audit_rows_deleted,
            audit_reads,
            audit_read_failures,
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

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// `GET /metrics`. The audit log's figures come from the newest read
/// ([`audit_figures::AuditFigures::current`]: at most one read per interval,
/// and never more than a second's wait); when it failed or did not answer
/// they are NaN (which PromQL's `max` and `max_over_time` skip), never a
/// zero an alert could misread.
pub async fn handler(State(state): State<AppState>) -> Response {
    let figures = state.audit_figures.current().await;
    let m = metrics();
    match figures {
        Some(figures) => {
            // Both far below 2^53: exact as f64.
            m.audit_chain_length.set(figures.chain_length as f64);
            m.audit_rows_deleted.set(figures.rows_deleted as f64);
        }
        None => {
            m.audit_chain_length.set(f64::NAN);
            m.audit_rows_deleted.set(f64::NAN);
        }
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}

/// Middleware recording every HTTP request's duration.
pub async fn track_http(request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    metrics()
        .http_request_duration_seconds
        .get_or_create(&HttpLabels {
            method,
            status: response.status().as_u16(),
        })
        .observe(start.elapsed().as_secs_f64());
    response
}
