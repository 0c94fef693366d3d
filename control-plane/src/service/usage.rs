//! Origin usage for people: each origin of a service with when it last let
//! a request through and its 30-day count, and the stale-origins view
//! (approved origins nobody has used for a while), with the reason a
//! revocation request from that view is filed with.

use super::Error;
use crate::state::AppState;
use crate::store::origins::Origin;
use crate::store::usage::{StaleOrigin, Usage};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Longest `unused_days` asked for: ten years.
pub const MAX_UNUSED_DAYS: i64 = 3650;

/// An origin with its usage (zero and `null` for one never used, and for
/// requests that were never approved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OriginWithUsage {
    /// The origin.
    #[serde(flatten)]
    pub origin: Origin,
    /// Its usage, as agents reported it.
    #[serde(flatten)]
    pub usage: Usage,
}

/// Every origin of `service` (all states, newest request first) with its
/// usage; [`Error::NotFound`] for no such service.
pub async fn origins_with_usage(
    state: &AppState,
    service: &str,
) -> Result<Vec<OriginWithUsage>, Error> {
    state.store.get_service(service).await?;
    let origins = state.store.list_origins(service).await?;
    let usage = state.store.origin_usage(service, Utc::now()).await?;
    Ok(origins
        .into_iter()
        .map(|origin| OriginWithUsage {
            usage: usage.get(&origin.pattern).copied().unwrap_or_default(),
            origin,
        })
        .collect())
}

/// Approved origins unused for `unused_days` days, across services: approved
/// at least that long ago, with no allowed request reported since (or ever).
/// [`Error::Unprocessable`] unless `1 <= unused_days <= MAX_UNUSED_DAYS`.
pub async fn stale(state: &AppState, unused_days: i64) -> Result<Vec<StaleOrigin>, Error> {
    if !(1..=MAX_UNUSED_DAYS).contains(&unused_days) {
        return Err(Error::unprocessable(format!(
            "unused_days must be between 1 and {MAX_UNUSED_DAYS}"
        )));
    }
    Ok(state.store.stale_origins(unused_days, Utc::now()).await?)
}

/// The reason a revocation request from the stale-origins view is filed
/// with (the form shows it, editable).
pub fn stale_reason(origin: &StaleOrigin, unused_days: i64) -> String {
    let day = |t: DateTime<Utc>| t.format("%Y-%m-%d").to_string();
    let last = origin
        .last_allowed_at
        .map_or_else(|| "never".to_owned(), day);
    format!(
        "Unused for {unused_days} days: no allowed cross-origin request since {} (last used: {last}; approved {}).",
        day(Utc::now() - chrono::Duration::days(unused_days)),
        day(origin.approved_at),
    )
}
