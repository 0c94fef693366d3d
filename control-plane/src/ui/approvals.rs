//! `/approvals`: every pending request, oldest first (origins, revocation
//! requests, settings changes that wait for a second approver); and the
//! approve / reject / revoke forms (also used from the service page).

use super::local_path;
use super::page::{Ctx, Layout, UiResult, redirect_with_flash, when, when_opt};
use crate::auth::{Approver, CsrfForm, CurrentUser, RequireRole};
use crate::service::{self, Error};
use crate::state::AppState;
use crate::store::origins::Decision;
use crate::store::rollout::Rollout;
use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use http::StatusCode;
use serde::Deserialize;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/approvals", get(queue))
        .route("/origins/{id}/approve", post(approve))
        .route("/origins/{id}/reject", post(reject))
        .route("/origins/{id}/revoke", post(revoke))
}

/// One pending request, ready to show.
pub struct PendingRow {
    id: i64,
    service: String,
    pattern: String,
    requested_by: String,
    reason: String,
    requested_at: String,
    expires: String,
    own: bool,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage {
    page: Layout,
    rows: Vec<PendingRow>,
    total: usize,
    single_operator: bool,
    revocations: Vec<super::stale::RevocationRow>,
    settings_changes: Vec<super::services::SettingsChangeRow>,
}

/// Most requests the queue shows at once (the oldest): a page of thousands
/// helps nobody decide.
pub const QUEUE_LIMIT: usize = 200;

async fn queue(ctx: Ctx, State(state): State<AppState>) -> UiResult {
    let pending = state.store.pending_origins().await?;
    let total = pending.len();
    let rows = pending
        .into_iter()
        .take(QUEUE_LIMIT)
        .map(|o| PendingRow {
            own: service::origins::is_own(&o, &ctx.user.email, &ctx.user.person),
            id: o.id,
            service: o.service,
            pattern: o.pattern,
            requested_by: o.requested_by,
            reason: o.reason,
            requested_at: when(&o.requested_at),
            expires: when_opt(&o.expires_at),
        })
        .collect();
    let revocations = state
        .store
        .pending_revocations()
        .await?
        .into_iter()
        .take(QUEUE_LIMIT)
        .map(|o| super::stale::RevocationRow::of(o, &ctx.user.email, &ctx.user.person))
        .collect();
    let settings_changes = service::settings_changes::all_pending(&state)
        .await?
        .iter()
        .take(QUEUE_LIMIT)
        .map(|p| super::services::SettingsChangeRow::of(p, &ctx.user.email, &ctx.user.person))
        .collect();
    let page = ApprovalsPage {
        revocations,
        settings_changes,
        page: ctx.layout("Approvals", "approvals"),
        rows,
        total,
        single_operator: state.single_operator,
    };
    Ok(ctx.render(StatusCode::OK, &page))
}

/// How long an approval or revocation in the UI waits for the connected
/// agents before its confirmation says how far the change got (the service
/// page shows the rollout live).
pub const UI_ROLLOUT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Laggards named in a confirmation; the service page lists them all.
const FLASH_LAGGARDS: usize = 3;

/// The rollout as the confirmation says it: "2 of 3 agents applied
/// revision 17; not yet: edge-b (holds revision 15; refused 17: …)".
pub(crate) fn rollout_sentence(rollout: &Rollout) -> String {
    let unreachable = rollout
        .unreachable_note()
        .map_or_else(String::new, |note| format!(" {}.", capitalised(&note)));
    if rollout.agents == 0 {
        return format!(
            "No connected agent serves {} (revision {}).{unreachable}",
            rollout.service, rollout.revision
        );
    }
    let mut out = rollout.summary();
    if rollout.complete {
        out.push('.');
        out.push_str(&unreachable);
        return out;
    }
    out.push_str(&format!(
        " within {} s; not yet: ",
        UI_ROLLOUT_WAIT.as_secs()
    ));
    let named: Vec<String> = rollout
        .laggards
        .iter()
        .take(FLASH_LAGGARDS)
        .map(|l| {
            let held = l
                .applied_revision
                .map_or("no revision".to_owned(), |r| format!("revision {r}"));
            match &l.nack {
                Some(nack) => {
                    let error: String = nack.error.chars().take(160).collect();
                    format!(
                        "{} (holds {held}; refused {}: {error})",
                        l.name, nack.revision
                    )
                }
                None => format!("{} (holds {held})", l.name),
            }
        })
        .collect();
    out.push_str(&named.join(", "));
    let more = rollout.agents - rollout.applied - named.len() as i64;
    if more > 0 {
        out.push_str(&format!(" and {more} more"));
    }
    out.push('.');
    out.push_str(&unreachable);
    out.push_str(" See the service page.");
    out
}

/// `text` with its first letter upper-case.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The decision forms: a note (required to reject) and where to go back to.
#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    note: String,
    #[serde(default)]
    next: String,
}

async fn run(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    decision: Decision,
    form: DecisionForm,
) -> UiResult {
    let back = local_path(Some(&form.next), "/approvals");
    // The UI asks for a note to revoke too (the REST API leaves it optional);
    // a reject's note is the service layer's rule, for every face.
    if decision == Decision::Revoke && form.note.trim().is_empty() {
        return Ok(redirect_with_flash(
            &back,
            "error",
            "Nothing changed: a note is required to revoke (say why, for the audit log).",
        ));
    }
    match service::origins::decide(
        state,
        id,
        decision,
        Some(&form.note),
        &user.email,
        &user.person,
    )
    .await
    {
        Ok(origin) => {
            let done = match decision {
                Decision::Approve => "Approved",
                Decision::Reject => "Rejected",
                Decision::Revoke => "Revoked",
            };
            let mut message = format!(
                "{done} {} for {} (#{}).",
                origin.pattern, origin.service, origin.id
            );
            // Approvals and revocations change what agents enforce: say how
            // far the change got.
            if decision != Decision::Reject {
                match service::rollout::wait_applied(state, &origin.service, None, UI_ROLLOUT_WAIT)
                    .await
                {
                    Ok(wait) => {
                        message.push(' ');
                        message.push_str(&rollout_sentence(&wait.rollout));
                    }
                    // The change is made; only the evidence is missing.
                    Err(error) => {
                        tracing::warn!(%error, service = %origin.service, "cannot read the rollout after a decision");
                    }
                }
            }
            Ok(redirect_with_flash(&back, "ok", &message))
        }
        Err(e @ (Error::Internal(_) | Error::Unavailable(_))) => Err(e.into()),
        Err(e) => Ok(redirect_with_flash(
            &back,
            "error",
            &format!("Nothing changed: {e}."),
        )),
    }
}

async fn approve(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<DecisionForm>,
) -> UiResult {
    run(&state, &user, id, Decision::Approve, form).await
}

async fn reject(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<DecisionForm>,
) -> UiResult {
    run(&state, &user, id, Decision::Reject, form).await
}

async fn revoke(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<DecisionForm>,
) -> UiResult {
    run(&state, &user, id, Decision::Revoke, form).await
}
