//! Blocked-request telemetry on the control plane.
//!
//! - [`service`]: [`TelemetryService`], the tonic `corsair.v1.Telemetry`
//!   service: authenticates a batch with the agent's token, checks it and
//!   stores it idempotently (see [`crate::store::blocked`]).
//! - [`retention`]: the partition maintenance job (create ahead, drop past
//!   the retention), safe with several replicas.

pub mod retention;
pub mod service;

pub use retention::{RetentionConfig, run_retention};
pub use service::TelemetryService;
