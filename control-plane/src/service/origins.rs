//! Origin requests and their life cycle: request, approve, reject, revoke,
//! with every rule that goes with them (a reason to request, a note to
//! reject, four eyes, expiry, the policy as it is at the moment of the
//! write). Both the REST API and the UI call these.

use super::{Error, validate};
use crate::domain::OriginStatus;
use crate::state::AppState;
use crate::store::origins::{Decision, Origin};
use chrono::{DateTime, Utc};

/// Four eyes: nobody approves their own request, unless the control plane
/// runs with `--single-operator`; [`Error::Forbidden`] otherwise.
pub fn check_four_eyes(state: &AppState, origin: &Origin, actor: &str) -> Result<(), Error> {
    check_four_eyes_on(
        state,
        &origin.requested_by,
        &origin.pattern,
        "requested",
        "approve",
        actor,
    )
}

/// The four-eyes rule for any two-step change: `actor` may not `confirm`
/// (e.g. "approve") what they themselves `asked` (e.g. "requested", "asked
/// to revoke") for `pattern`, unless the control plane runs with
/// `--single-operator`; [`Error::Forbidden`] otherwise.
pub fn check_four_eyes_on(
    state: &AppState,
    asked_by: &str,
    pattern: &str,
    asked: &str,
    confirm: &str,
    actor: &str,
) -> Result<(), Error> {
    if !state.single_operator && asked_by.eq_ignore_ascii_case(actor) {
        return Err(Error::Forbidden(format!(
            "four-eyes rule: {actor} {asked} origin {pattern} and cannot also {confirm} it; ask another approver"
        )));
    }
    Ok(())
}

/// Whether `origin` was requested by `actor` (the four-eyes rule would stop
/// them approving it), for faces that mark such rows.
pub fn is_own(origin: &Origin, actor: &str) -> bool {
    origin.requested_by.eq_ignore_ascii_case(actor)
}

/// The approved patterns among `origins`.
fn approved(origins: Vec<Origin>) -> Vec<String> {
    origins
        .into_iter()
        .filter(|o| o.status == OriginStatus::Approved)
        .map(|o| o.pattern)
        .collect()
}

/// Checks `pattern` for service `service` as it would be requested: the
/// canonical pattern, or the engine's problems ([`Error::Unprocessable`]
/// with details on `pattern`), or [`Error::NotFound`] for no such service.
pub async fn check_pattern(
    state: &AppState,
    service: &str,
    pattern: &str,
) -> Result<String, Error> {
    let settings = state.store.get_service(service).await?.settings;
    let others = approved(state.store.list_origins(service).await?);
    validate::origin(pattern, &settings, others)
}

/// A temporary grant must end in the future: [`Error::Unprocessable`]
/// otherwise.
pub fn check_expiry(expires_at: Option<DateTime<Utc>>) -> Result<(), Error> {
    match expires_at {
        Some(t) if t <= Utc::now() => Err(Error::unprocessable(format!(
            "expires_at {t} is in the past"
        ))),
        _ => Ok(()),
    }
}

/// Files a pending request for `pattern` on `service` as `actor`.
///
/// Errors: [`Error::NotFound`] (no such service), [`Error::Unprocessable`]
/// (empty or overlong reason, expiry in the past, a pattern the engine
/// refuses for this service), [`Error::Conflict`] (already pending or
/// approved).
pub async fn request(
    state: &AppState,
    service: &str,
    pattern: &str,
    reason: &str,
    expires_at: Option<DateTime<Utc>>,
    actor: &str,
) -> Result<Origin, Error> {
    state.store.get_service(service).await?;
    validate::text("reason", reason, true)?;
    check_expiry(expires_at)?;
    let pattern = check_pattern(state, service, pattern).await?;
    let origin = state
        .store
        .request_origin(service, &pattern, reason.trim(), expires_at, actor)
        .await?;
    tracing::info!(service = %service, origin = %origin.pattern, id = origin.id, actor = %actor, "origin requested");
    Ok(origin)
}

/// Applies `decision` to origin `id` as `actor`, with every rule: a reject
/// needs a non-empty note (the reason, for the requester and the audit
/// log); an approval needs four eyes, an unexpired request and an origin
/// that fits the service's policy as it is now (checked with the service
/// row locked).
///
/// Errors: [`Error::Unprocessable`] (no note to reject, a bad note, an
/// expired request, a policy problem), [`Error::Forbidden`] (four eyes),
/// [`Error::NotFound`], [`Error::InvalidState`] (e.g. approving a rejected
/// origin).
pub async fn decide(
    state: &AppState,
    id: i64,
    decision: Decision,
    note: Option<&str>,
    actor: &str,
) -> Result<Origin, Error> {
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if decision == Decision::Reject && note.is_none() {
        return Err(Error::unprocessable(
            "a note is required to reject: give the reason, for the requester and the audit log",
        ));
    }
    if let Some(note) = note {
        validate::text("note", note, false)?;
    }
    let origin = state
        .store
        .decide_origin_with(id, decision, note, actor, |origin, service, approved| {
            if decision != Decision::Approve {
                return Ok(());
            }
            check_four_eyes(state, origin, actor)?;
            if let Some(t) = origin.expires_at
                && t <= Utc::now()
            {
                return Err(Error::unprocessable(format!(
                    "origin {id} was requested until {t}, which has passed; request it again"
                )));
            }
            // Settings may have changed since the request was filed (e.g.
            // credentials turned on): check the origin against them as they
            // are now, with the service row locked.
            validate::origin(&origin.pattern, &service.settings, approved).map(|_| ())
        })
        .await?;
    tracing::info!(
        service = %origin.service,
        origin = %origin.pattern,
        id,
        actor,
        decision = decision.verb(),
        "origin decided"
    );
    Ok(origin)
}
