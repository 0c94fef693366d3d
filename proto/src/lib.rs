//! Corsair's wire contract.
//!
//! - [`v1`]: package `corsair.v1` — `PolicySync` (agent ⇄ control plane policy
//!   stream) and `Telemetry` (blocked-request batches). Generated from `proto/corsair/v1/*.proto` at build time.
//! - [`codec`]: the codec of the generated code (prost, small buffers).
//! - [`HANDOVER_METADATA`]: how the control plane marks a stream it ends on
//!   purpose.
#![deny(rust_2018_idioms)]

pub mod codec;

/// Trailer metadata key on the `UNAVAILABLE` status with which the control
/// plane ends a `PolicySync` stream on purpose, so that the agent reconnects
/// (`max-stream-age`: `serve --max-stream-age`; `shutdown`: the replica is
/// stopping). Its value is one of those two words; an agent logs such a
/// handover as routine rather than as a failure.
pub const HANDOVER_METADATA: &str = "corsair-handover";

/// Package `corsair.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("corsair.v1");
}
