//! Corsair control plane.
//!
//! - [`domain`]: domain types below everything (role, origin status, input problems).
//! - [`state`]: [`state::AppState`], what the HTTP faces and the service layer reach.
//! - [`service`]: the one place for each write and its rules (four eyes, expiry, audit).
//! - [`store`]: the Postgres repository (the only module with SQL) and migrations.
//! - [`auth`]: signing key, user and agent tokens (JWT), passwords (argon2), extractors.
//! - [`api`]: the JSON REST API under `/api/v1`.
//! - [`ui`]: the admin web UI (server-rendered pages and forms).
//! - [`grpc`]: the `PolicySync` tonic service and the LISTEN/NOTIFY fan-out.
//! - [`telemetry`]: the `Telemetry` tonic service (blocked-request batches) and
//!   the partition retention job.
//! - [`metrics`]: Prometheus metrics (`GET /metrics`).
//! - [`health`]: probes, `GET /healthz` (alive) and `GET /readyz` (database and schema).
//! - [`node`]: one control-plane node (HTTP + gRPC + jobs) on bound listeners.
//! - [`server`]: wires HTTP and gRPC onto already-bound listeners with graceful shutdown.
//! - [`tls`]: TLS on both listeners (`serve --tls-*`), certificates reloaded while serving.
//! - [`pg`]: a private PostgreSQL from the machine's binaries (dev, tests).
//! - `testing`: a fresh database per test and the control-plane fixture.
//! - [`dev`]: `corsair-control-plane dev` — private Postgres, demo upstream, agent, demo page.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod api;
pub mod auth;
#[cfg(feature = "dev")]
pub mod dev;
pub mod domain;
pub mod grpc;
pub mod health;
pub mod metrics;
pub mod node;
pub mod pg;
pub mod server;
pub mod service;
pub mod state;
pub mod store;
pub mod telemetry;
#[doc(hidden)]
pub mod testing;
pub mod tls;
pub mod ui;
