//! Revocation requests, the four-eyes way to withdraw an approved origin:
//! one person asks (with a reason), another approver confirms (the origin
//! is revoked, like a direct revoke: revision bump, agents stop granting
//! it) or dismisses the request. The direct approver revoke stays, for
//! emergencies. Every step is audited.

use super::{Error, origins::check_four_eyes_on, validate};
use crate::state::AppState;
use crate::store::origins::{Decision, Origin};

/// Files `actor`'s request to revoke approved origin `id`, for `reason`;
/// `person` is the human behind `actor` (an API token's creator), who
/// then cannot confirm it either.
///
/// Errors: [`Error::Unprocessable`] (empty, overlong or NUL reason),
/// [`Error::InvalidState`] (not approved), [`Error::Conflict`] (a request
/// is already pending), [`Error::NotFound`].
pub async fn request(
    state: &AppState,
    id: i64,
    reason: &str,
    actor: &str,
    person: &str,
) -> Result<Origin, Error> {
    validate::text("reason", reason, true)?;
    let origin = state
        .store
        .request_revocation(id, reason.trim(), actor, person)
        .await?;
    tracing::info!(service = %origin.service, origin = %origin.pattern, id, actor, "origin revocation requested");
    Ok(origin)
}

/// Confirms the pending revocation request on origin `id` as `actor`: the
/// origin is revoked (with `note`, if any). Four eyes: the person who asked
/// (`actor`, or `person`: the human behind a token) cannot confirm, unless the control plane runs with `--single-operator`.
///
/// Errors: [`Error::InvalidState`] (no pending request, or not approved),
/// [`Error::Forbidden`] (four eyes), [`Error::Unprocessable`] (bad note),
/// [`Error::NotFound`].
pub async fn confirm(
    state: &AppState,
    id: i64,
    note: Option<&str>,
    actor: &str,
    person: &str,
) -> Result<Origin, Error> {
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if let Some(note) = note {
        validate::text("note", note, false)?;
    }
    let origin = state
        .store
        .decide_origin_with(id, Decision::Revoke, note, actor, |origin, _, _| {
            let Some(by) = &origin.revocation_requested_by else {
                return Err(Error::InvalidState(format!(
                    "origin {id} has no pending revocation request; request one first"
                )));
            };
            let by_person = origin
                .revocation_requested_by_person
                .as_deref()
                .unwrap_or(by);
            check_four_eyes_on(
                state,
                &[by, by_person],
                &format!("origin {}", origin.pattern),
                "asked to revoke",
                "confirm the revocation of",
                actor,
                person,
            )
        })
        .await?;
    tracing::info!(service = %origin.service, origin = %origin.pattern, id, actor, "origin revocation confirmed");
    Ok(origin)
}

/// Dismisses the pending revocation request on origin `id` as `actor`; the
/// origin stays approved. Errors: [`Error::InvalidState`] (none pending),
/// [`Error::NotFound`].
pub async fn dismiss(state: &AppState, id: i64, actor: &str) -> Result<Origin, Error> {
    let origin = state.store.dismiss_revocation(id, actor).await?;
    tracing::info!(service = %origin.service, origin = %origin.pattern, id, actor, "origin revocation request dismissed");
    Ok(origin)
}
