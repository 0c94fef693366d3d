//! `/origins/stale`: approved origins nobody has used for N days, across
//! services, each with a "request revocation" form (reason pre-filled); and
//! the revocation-request forms: ask (from here), confirm and dismiss (on
//! the approvals page).

use super::local_path;
use super::page::{Ctx, Layout, UiResult, redirect_with_flash, when, when_opt};
use crate::auth::{Approver, CsrfForm, Requester, RequireRole};
use crate::service::{self, Error};
use crate::state::AppState;
use crate::store::origins::Origin;
use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use http::StatusCode;
use serde::Deserialize;

/// `unused_days` when the page is opened without one.
const DEFAULT_UNUSED_DAYS: i64 = 90;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/origins/stale", get(page))
        .route("/origins/{id}/revocation-request", post(request))
        .route("/origins/{id}/revocation-request/confirm", post(confirm))
        .route("/origins/{id}/revocation-request/dismiss", post(dismiss))
}

/// One stale origin, ready to show.
pub struct StaleRow {
    id: i64,
    service: String,
    pattern: String,
    approved: String,
    last_used: String,
    revocation_requested_by: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "stale.html")]
struct StalePage {
    page: Layout,
    unused_days: i64,
    rows: Vec<StaleRow>,
    csv: String,
}

/// Query of `/origins/stale`.
#[derive(Debug, Deserialize)]
pub struct StaleQuery {
    unused_days: Option<i64>,
}

async fn page(ctx: Ctx, State(state): State<AppState>, Query(q): Query<StaleQuery>) -> UiResult {
    let unused_days = q.unused_days.unwrap_or(DEFAULT_UNUSED_DAYS);
    let stale = service::usage::stale(&state, unused_days)
        .await
        .map_err(|e| ctx.error(e))?;
    let rows = stale
        .iter()
        .map(|o| StaleRow {
            reason: service::usage::stale_reason(o, unused_days),
            id: o.id,
            service: o.service.clone(),
            pattern: o.pattern.clone(),
            approved: format!(
                "{}{}",
                when(&o.approved_at),
                o.approved_by
                    .as_ref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default()
            ),
            last_used: o
                .last_allowed_at
                .map_or_else(|| "never".to_owned(), |t| when(&t)),
            revocation_requested_by: o.revocation_requested_by.clone().unwrap_or_default(),
        })
        .collect();
    let page = StalePage {
        page: ctx.layout("Stale origins", "stale"),
        csv: format!(
            "/api/v1/origins/stale?{}",
            super::query(&[
                ("unused_days", unused_days.to_string().as_str()),
                ("format", "csv")
            ])
        ),
        unused_days,
        rows,
    };
    Ok(ctx.render(StatusCode::OK, &page))
}

/// The revocation-request forms: a reason (to ask) or a note (to confirm),
/// and where to go back to.
#[derive(Debug, Deserialize)]
pub struct RevocationForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    next: String,
}

// async: the faces' handlers all return `UiResult` from async fns.
async fn done(result: Result<Origin, Error>, back: &str, what: &str) -> UiResult {
    match result {
        Ok(origin) => Ok(redirect_with_flash(
            back,
            "ok",
            &format!(
                "{what} {} for {} (#{}).",
                origin.pattern, origin.service, origin.id
            ),
        )),
        Err(Error::Internal(e)) => Err(Error::Internal(e).into()),
        Err(e) => Ok(redirect_with_flash(
            back,
            "error",
            &format!("Nothing changed: {e}."),
        )),
    }
}

async fn request(
    RequireRole { user, .. }: RequireRole<Requester>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<RevocationForm>,
) -> UiResult {
    let back = local_path(Some(&form.next), "/origins/stale");
    let result =
        service::revocations::request(&state, id, &form.reason, &user.email, &user.person).await;
    done(
        result,
        &back,
        "Revocation requested (an approver confirms it on the Approvals page):",
    )
    .await
}

async fn confirm(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<RevocationForm>,
) -> UiResult {
    let back = local_path(Some(&form.next), "/approvals");
    let result =
        service::revocations::confirm(&state, id, Some(&form.note), &user.email, &user.person)
            .await;
    done(result, &back, "Revoked").await
}

async fn dismiss(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<RevocationForm>,
) -> UiResult {
    let back = local_path(Some(&form.next), "/approvals");
    let result = service::revocations::dismiss(&state, id, &user.email).await;
    done(
        result,
        &back,
        "Revocation request dismissed; still approved:",
    )
    .await
}

/// A pending revocation request, for the approvals page.
pub struct RevocationRow {
    pub(super) id: i64,
    pub(super) service: String,
    pub(super) pattern: String,
    pub(super) requested_by: String,
    pub(super) reason: String,
    pub(super) requested_at: String,
    pub(super) own: bool,
}

impl RevocationRow {
    /// `o` (with a pending request) as seen by `actor`, who is `person`
    /// (an API token's creator, or the user).
    pub(super) fn of(o: Origin, actor: &str, person: &str) -> Self {
        let requested_by = o.revocation_requested_by.unwrap_or_default();
        let requested_by_person = o.revocation_requested_by_person.unwrap_or_default();
        RevocationRow {
            own: requested_by.eq_ignore_ascii_case(actor)
                || requested_by_person.eq_ignore_ascii_case(person),
            id: o.id,
            service: o.service,
            pattern: o.pattern,
            requested_by,
            reason: o.revocation_reason.unwrap_or_default(),
            requested_at: when_opt(&o.revocation_requested_at),
        }
    }
}
