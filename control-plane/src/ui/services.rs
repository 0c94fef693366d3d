//! `/services` (overview with search, create) here; the detail page in
//! [`detail`], its forms in [`forms`], and the settings changes that wait
//! for a second approver (confirm, dismiss) in [`changes`].

mod changes;
mod detail;
mod forms;

pub use changes::SettingsChangeRow;

use super::page::{Ctx, Layout, UiResult, redirect_with_flash, when};
use crate::auth::{Admin, CsrfForm, RequireRole};
use crate::service::{self, Error};
use crate::state::AppState;
use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use corsair_agent::engine::PolicySettings;
use http::StatusCode;
use serde::Deserialize;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/services", get(list).post(create))
        .route("/services/{name}", get(detail::detail))
        .route("/services/{name}/settings", post(forms::save_settings))
        .route(
            "/services/{name}/description",
            post(forms::save_description),
        )
        .route("/services/{name}/origins", post(forms::request_origin))
        .route(
            "/services/{name}/settings-changes/{id}/confirm",
            post(changes::confirm),
        )
        .route(
            "/services/{name}/settings-changes/{id}/dismiss",
            post(changes::dismiss),
        )
}

/// One row of the services table, ready to show.
pub struct Row {
    name: String,
    description: String,
    mode: String,
    approved: i64,
    pending: i64,
    last_change: String,
    revision: i64,
    held: String,
    drift: bool,
}

#[derive(Template)]
#[template(path = "services.html")]
struct ServicesPage {
    page: Layout,
    q: String,
    rows: Vec<Row>,
    new_name: String,
    new_description: String,
    create_error: String,
}

/// Query of `/services`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
}

async fn list(ctx: Ctx, State(state): State<AppState>, Query(query): Query<ListQuery>) -> UiResult {
    render_list(
        &ctx,
        &state,
        query.q.trim(),
        NewService::default(),
        String::new(),
        StatusCode::OK,
    )
    .await
}

async fn render_list(
    ctx: &Ctx,
    state: &AppState,
    q: &str,
    new: NewService,
    create_error: String,
    status: StatusCode,
) -> UiResult {
    let rows = state
        .store
        .service_summaries(q)
        .await?
        .into_iter()
        .map(|s| Row {
            held: match (s.agents, s.agents_min_revision) {
                (0, _) => "no agent".into(),
                (_, None) => "none applied".into(),
                (n, Some(r)) => format!("{r} ({n} agent{})", if n == 1 { "" } else { "s" }),
            },
            drift: s.agents > 0 && s.agents_min_revision != Some(s.revision),
            name: s.name,
            description: s.description,
            mode: s.mode,
            approved: s.approved,
            pending: s.pending,
            last_change: when(&s.last_change),
            revision: s.revision,
        })
        .collect();
    let page = ServicesPage {
        page: ctx.layout("Services", "services"),
        q: q.to_owned(),
        rows,
        new_name: new.name,
        new_description: new.description,
        create_error,
    };
    Ok(ctx.render(status, &page))
}

/// The new-service form (admin).
#[derive(Debug, Default, Deserialize)]
pub struct NewService {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

async fn create(
    RequireRole { user, .. }: RequireRole<Admin>,
    ctx: Ctx,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<NewService>,
) -> UiResult {
    let name = form.name.trim().to_owned();
    match service::services::create(
        &state,
        &name,
        &form.description,
        &PolicySettings::default(),
        &user.email,
    )
    .await
    {
        Ok(_) => Ok(redirect_with_flash(
            &format!("/services/{name}"),
            "ok",
            &format!("Created {name}. Set its policy below, then request origins."),
        )),
        Err(Error::Conflict(_)) => {
            let message = format!("A service named {name} already exists.");
            render_list(&ctx, &state, "", form, message, StatusCode::CONFLICT).await
        }
        Err(e @ Error::Unprocessable { .. }) => {
            let message = e.to_string();
            render_list(
                &ctx,
                &state,
                "",
                form,
                message,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(other) => Err(ctx.error(other)),
    }
}
