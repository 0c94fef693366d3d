//! The service layer: the one place for each write and its rules. The REST
//! API, the admin UI and gRPC are thin faces that parse input, call a
//! function here and render its result (or its [`Error`]).
//!
//! - [`error`]: [`Error`], the face-neutral refusal every function returns.
//! - [`origins`]: request, approve, reject, revoke (four eyes, expiry, the reject note).
//! - [`rollout`]: "k of N agents applied revision R", now or after waiting for it.
//! - [`revocations`]: revocation requests (ask, confirm with four eyes, dismiss).
//! - [`usage`]: origins with their usage, the stale-origins view.
//! - [`services`]: create, edit (settings, description) and delete services.
//! - [`settings_changes`]: four eyes on settings changes that widen access
//!   (what widens; confirm, dismiss).
//! - [`simulate`]: the policy simulator (the engine on a service's effective policy).
//! - [`tokens`]: issue and revoke agent tokens and API tokens.
//! - [`users`]: create users, change roles, disable (not oneself).
//! - [`validate`]: input checks; origin patterns and policies are judged by
//!   the agent's engine, so nothing is accepted that agents would refuse.

pub mod error;
pub mod origins;
pub mod revocations;
pub mod rollout;
pub mod services;
pub mod settings_changes;
pub mod simulate;
pub mod tokens;
pub mod usage;
pub mod users;
pub mod validate;

pub use error::{Error, RETRY_AFTER_SECS};
