//! Corsair agent.
//!
//! - [`engine`]: the CORS decision engine — pure, synchronous, no I/O. Compiles
//!   a service policy ([`engine::PolicySpec`] → [`engine::Policy`]) and decides
//!   each request ([`engine::Policy::evaluate`]). The control plane uses it too,
//!   for validation and simulation, so the two can never disagree.
//! - `handle` (feature `runtime`): `PolicyHandle`, the atomically swapped
//!   current policy that the request path reads lock-free.
//! - `control_plane` (feature `runtime`): the one gRPC client setup shared by
//!   `sync` and `report` — URL, token (inline or re-read from a file), TLS.
//! - `sync` (feature `runtime`): the `PolicySync` gRPC client — hello,
//!   snapshots, ACK/NACK, reconnect with jittered backoff, last-known-good cache.
//! - `enforce` (feature `runtime`): the one path from a request to the
//!   agent's CORS answer — decide, count, log, answer locally — shared by
//!   `layer`, `proxy` and `authz`.
//! - `layer` (feature `runtime`): `CorsairLayer`, a tower `Layer` that
//!   enforces the current policy in any tower/axum/hyper gateway.
//! - `proxy` (feature `runtime`): the sidecar reverse proxy in front of an upstream.
//! - `authz` (feature `runtime`): the decision endpoint for nginx
//!   `auth_request` (authz mode: the gateway forwards, the agent decides).
//! - `report` (feature `runtime`): blocked-request counting and batched,
//!   idempotent upload over `corsair.v1.Telemetry`.
//! - `metrics` (feature `runtime`): the agent's Prometheus metrics.
//! - `durable` (feature `runtime`): the one atomic write with fsync (file
//!   and directory) behind the policy cache and the telemetry spool.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod engine;

#[cfg(feature = "runtime")]
pub mod authz;
#[cfg(feature = "runtime")]
pub mod control_plane;
#[cfg(feature = "runtime")]
pub mod durable;
#[cfg(feature = "runtime")]
pub mod enforce;
#[cfg(feature = "runtime")]
pub mod handle;
#[cfg(feature = "runtime")]
pub mod layer;
#[cfg(feature = "runtime")]
pub mod metrics;
#[cfg(feature = "runtime")]
pub mod proxy;
#[cfg(feature = "runtime")]
pub mod report;
#[cfg(feature = "runtime")]
pub mod sync;

#[cfg(feature = "runtime")]
pub use layer::CorsairLayer;
