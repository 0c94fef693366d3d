//! `/approvals`: every pending request, oldest first; and the approve /
//! reject / revoke forms (also used from the service page).

use super::local_path;
use super::page::{Ctx, Layout, UiResult, redirect_with_flash, when, when_opt};
use crate::auth::{Approver, CsrfForm, RequireRole};
use crate::service::{self, Error};
use crate::state::AppState;
use crate::store::origins::Decision;
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
            own: service::origins::is_own(&o, &ctx.user.email),
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
        .map(|o| super::stale::RevocationRow::of(o, &ctx.user.email))
        .collect();
    let page = ApprovalsPage {
        revocations,
        page: ctx.layout("Approvals", "approvals"),
        rows,
        total,
        single_operator: state.single_operator,
    };
    Ok(ctx.render(StatusCode::OK, &page))
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
    actor: &str,
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
    match service::origins::decide(state, id, decision, Some(&form.note), actor).await {
        Ok(origin) => {
            let done = match decision {
                Decision::Approve => "Approved",
                Decision::Reject => "Rejected",
                Decision::Revoke => "Revoked",
            };
            Ok(redirect_with_flash(
                &back,
                "ok",
                &format!(
                    "{done} {} for {} (#{}).",
                    origin.pattern, origin.service, origin.id
                ),
            ))
        }
        Err(Error::Internal(e)) => Err(Error::Internal(e).into()),
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
    run(&state, &user.email, id, Decision::Approve, form).await
}

async fn reject(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<DecisionForm>,
) -> UiResult {
    run(&state, &user.email, id, Decision::Reject, form).await
}

async fn revoke(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<DecisionForm>,
) -> UiResult {
    run(&state, &user.email, id, Decision::Revoke, form).await
}
