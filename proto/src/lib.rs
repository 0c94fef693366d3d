//! Corsair's wire contract.
//!
//! - [`v1`]: package `corsair.v1` — `PolicySync` (agent ⇄ control plane policy
//!   stream) and `Telemetry` (blocked-request batches). Generated from `proto/corsair/v1/*.proto` at build time.
//! - [`codec`]: the codec of the generated code (prost, small buffers).
#![deny(rust_2018_idioms)]

pub mod codec;

/// Package `corsair.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("corsair.v1");
}
