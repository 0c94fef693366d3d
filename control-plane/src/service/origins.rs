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
///
/// `actor` is the approver as audited (an email or `token:<name>`),
/// `person` the human behind it ([`CurrentUser::person`]): the rule compares
/// people, so neither an API token its requester created nor the creator of
/// the token that filed the request can approve it.
///
/// [`CurrentUser::person`]: crate::auth::CurrentUser::person
pub fn check_four_eyes(
    state: &AppState,
    origin: &Origin,
    actor: &str,
    person: &str,
) -> Result<(), Error> {
    check_four_eyes_on(
        state,
        &[&origin.requested_by, &origin.requested_by_person],
        &format!("origin {}", origin.pattern),
        "requested",
        "approve",
        actor,
        person,
    )
}

/// The four-eyes rule for any two-step change: `actor` (or `person`, the
/// human behind it) may not `confirm` (e.g. "approve") what one of
/// `asked_by` `asked` (e.g. "requested", "asked to revoke") for `what`
/// (e.g. "origin https://app.example.com"), unless the control plane runs
/// with `--single-operator`; [`Error::Forbidden`] otherwise.
pub fn check_four_eyes_on(
    state: &AppState,
    asked_by: &[&str],
    what: &str,
    asked: &str,
    confirm: &str,
    actor: &str,
    person: &str,
) -> Result<(), Error> {
    let own = asked_by
        .iter()
        .any(|a| a.eq_ignore_ascii_case(actor) || a.eq_ignore_ascii_case(person));
    if !state.single_operator && own {
        let via = if actor.eq_ignore_ascii_case(person) {
            String::new()
        } else {
            format!(" (acting as {actor})")
        };
        return Err(Error::Forbidden(format!(
            "four-eyes rule: {} {asked} {what}, and {person}{via} cannot also {confirm} it; ask another approver",
            asked_by.first().copied().unwrap_or_default()
        )));
    }
    Ok(())
}

/// Whether `origin` was requested by `actor` or by the person behind it
/// (the four-eyes rule would stop them approving it), for faces that mark
/// such rows.
pub fn is_own(origin: &Origin, actor: &str, person: &str) -> bool {
    origin.requested_by.eq_ignore_ascii_case(actor)
        || origin.requested_by_person.eq_ignore_ascii_case(person)
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

/// Files a pending request for `pattern` on `service` as `actor` (audited),
/// on behalf of `person` (the human behind `actor`, for four eyes).
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
    person: &str,
) -> Result<Origin, Error> {
    state.store.get_service(service).await?;
    validate::text("reason", reason, true)?;
    check_expiry(expires_at)?;
    let pattern = check_pattern(state, service, pattern).await?;
    let origin = state
        .store
        .request_origin_for(service, &pattern, reason.trim(), expires_at, actor, person)
        .await?;
    tracing::info!(service = %service, origin = %origin.pattern, id = origin.id, actor = %actor, "origin requested");
    Ok(origin)
}

/// Applies `decision` to origin `id` as `actor` (audited; `person` is the
/// human behind it, for four eyes), with every rule: a reject
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
    person: &str,
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
            check_four_eyes(state, origin, actor, person)?;
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
