//! `/services/{name}`: the service detail page (settings and the changes
//! to them that wait for a second approver, origins, the request form,
//! effective policy, last-24h blocked summary) and the views
//! the forms in [`super::forms`] re-render it with.

use crate::service;
use crate::service::usage::OriginWithUsage;
use crate::state::AppState;
use crate::store::rollout::Rollout;
use crate::store::services::Service;
use crate::ui::page::{Ctx, Layout, UiResult, when, when_opt};
use askama::Template;
use axum::extract::{Path, Query, State};
use corsair_agent::engine::PolicySettings;
use http::StatusCode;
use serde::Deserialize;

/// The settings form's values (as typed) and the problems found in them.
#[derive(Debug, Default, Clone)]
pub struct SettingsView {
    pub(super) allow_methods: String,
    pub(super) allow_headers: String,
    pub(super) expose_headers: String,
    pub(super) allow_credentials: bool,
    pub(super) max_age_secs: String,
    pub(super) allow_private_network: bool,
    pub(super) mode: String,
    pub(super) strict: bool,
    pub(super) allow_insecure_http: bool,
    pub(super) errors: FieldErrors,
}

/// Messages shown beside each field of a form ("" when fine).
#[derive(Debug, Default, Clone)]
pub struct FieldErrors {
    pub(super) allow_methods: String,
    pub(super) allow_headers: String,
    pub(super) expose_headers: String,
    pub(super) max_age_secs: String,
    pub(super) allow_credentials: String,
    pub(super) other: String,
    pub(super) pattern: String,
    pub(super) reason: String,
    pub(super) expires_at: String,
    pub(super) description: String,
}

impl SettingsView {
    pub(super) fn of(s: &PolicySettings) -> Self {
        SettingsView {
            allow_methods: s.allow_methods.join(", "),
            allow_headers: s.allow_headers.join(", "),
            expose_headers: s.expose_headers.join(", "),
            allow_credentials: s.allow_credentials,
            max_age_secs: s.max_age_secs.to_string(),
            allow_private_network: s.allow_private_network,
            mode: s.mode.as_str().to_owned(),
            strict: s.strict,
            allow_insecure_http: s.allow_insecure_http,
            errors: FieldErrors::default(),
        }
    }
}

/// One origin, ready to show.
pub struct OriginRow {
    pub(super) id: i64,
    pub(super) pattern: String,
    pub(super) status: String,
    pub(super) requested_by: String,
    pub(super) reason: String,
    pub(super) requested_at: String,
    pub(super) decided: String,
    pub(super) note: String,
    pub(super) expires: String,
    /// The last allowed request agents reported, or an em dash.
    pub(super) last_used: String,
    /// Allowed requests over the last 30 days.
    pub(super) allowed_30d: i64,
    /// Who asked for its revocation (pending), or "".
    pub(super) revocation_requested_by: String,
}

impl OriginRow {
    pub(super) fn of(row: &OriginWithUsage) -> Self {
        let o = &row.origin;
        OriginRow {
            last_used: when_opt(&row.usage.last_allowed_at),
            allowed_30d: row.usage.allowed_30d,
            revocation_requested_by: o
                .revocation_requested_by
                .clone()
                .filter(|_| o.status == crate::domain::OriginStatus::Approved)
                .unwrap_or_default(),
            id: o.id,
            pattern: o.pattern.clone(),
            status: o.status.as_str().to_owned(),
            requested_by: o.requested_by.clone(),
            reason: o.reason.clone(),
            requested_at: when(&o.requested_at),
            decided: match (&o.decided_by, &o.decided_at) {
                (Some(by), Some(at)) => format!("{by}, {}", when(at)),
                _ => "—".into(),
            },
            note: o.note.clone().unwrap_or_default(),
            expires: when_opt(&o.expires_at),
        }
    }
}

/// The request-an-origin form's values.
#[derive(Debug, Default, Clone)]
pub struct RequestView {
    pub(super) pattern: String,
    pub(super) reason: String,
    pub(super) expires_at: String,
}

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage {
    pub(super) page: Layout,
    pub(super) name: String,
    pub(super) description: String,
    pub(super) revision: i64,
    pub(super) settings: SettingsView,
    pub(super) request: RequestView,
    pub(super) errors: FieldErrors,
    pub(super) origins: Vec<OriginRow>,
    pub(super) effective: String,
    pub(super) blocked: crate::ui::blocked::ServiceSummary,
    pub(super) rollout: RolloutView,
    /// Settings changes waiting for a second approver.
    pub(super) settings_changes: Vec<super::SettingsChangeRow>,
}

/// The rollout section: "k of N agents applied revision R" and a row per
/// laggard.
pub struct RolloutView {
    pub(super) summary: String,
    pub(super) complete: bool,
    pub(super) agents: i64,
    pub(super) laggards: Vec<LaggardRow>,
    /// Laggards not listed (past the store's limit).
    pub(super) unlisted: i64,
    /// Disconnected agents still holding an older revision, said in words
    /// (empty when there are none).
    pub(super) unreachable: String,
}

/// One agent that does not hold the revision yet, ready to show.
pub struct LaggardRow {
    pub(super) name: String,
    pub(super) agent_id: String,
    pub(super) holds: String,
    pub(super) nack: String,
}

impl RolloutView {
    fn of(r: Rollout) -> Self {
        let listed = r.laggards.len() as i64;
        RolloutView {
            summary: r.summary(),
            unreachable: r.unreachable_note().unwrap_or_default(),
            complete: r.complete,
            agents: r.agents,
            unlisted: (r.agents - r.applied - listed).max(0),
            laggards: r
                .laggards
                .into_iter()
                .map(|l| LaggardRow {
                    holds: l
                        .applied_revision
                        .map_or("none".to_owned(), |r| r.to_string()),
                    nack: l
                        .nack
                        .map(|n| {
                            format!(
                                "revision {} refused {}: {}",
                                n.revision,
                                when(&n.at),
                                n.error
                            )
                        })
                        .unwrap_or_default(),
                    name: l.name,
                    agent_id: l.agent_id,
                })
                .collect(),
        }
    }
}

pub(super) async fn render_detail(
    ctx: &Ctx,
    state: &AppState,
    service: Service,
    settings: Option<SettingsView>,
    request: RequestView,
    errors: FieldErrors,
    status: StatusCode,
) -> UiResult {
    let origins = crate::service::usage::origins_with_usage(state, &service.name).await?;
    let effective = state
        .store
        .effective_policy(&service.name)
        .await?
        .map(|p| serde_json::to_string_pretty(&p).unwrap_or_default())
        .unwrap_or_default();
    let blocked = crate::ui::blocked::service_summary(&state.store, &service.name).await?;
    let rollout = RolloutView::of(service::rollout::status(state, &service.name).await?);
    let settings_changes = service::settings_changes::pending(state, &service.name)
        .await?
        .iter()
        .map(|p| super::SettingsChangeRow::of(p, &ctx.user.email, &ctx.user.person))
        .collect();
    let page = ServicePage {
        page: ctx.layout(format!("Service {}", service.name), "services"),
        settings: settings.unwrap_or_else(|| SettingsView::of(&service.settings)),
        name: service.name,
        description: service.description,
        revision: service.revision,
        request,
        errors,
        origins: origins.iter().map(OriginRow::of).collect(),
        effective,
        blocked,
        rollout,
        settings_changes,
    };
    Ok(ctx.render(status, &page))
}

/// Query of `/services/{name}`: a pre-fill of the request form (the
/// Blocked requests page links here), cut to a sane length.
#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    #[serde(default)]
    pub(super) request_origin: String,
    #[serde(default)]
    pub(super) request_reason: String,
}

pub(super) async fn detail(
    ctx: Ctx,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<DetailQuery>,
) -> UiResult {
    let service = state
        .store
        .get_service(&name)
        .await
        .map_err(|e| ctx.error(e))?;
    let cap = |text: &str, max: usize| text.trim().chars().take(max).collect::<String>();
    let request = RequestView {
        pattern: cap(&q.request_origin, crate::ui::blocked::PREFILL_ORIGIN_MAX),
        reason: cap(&q.request_reason, crate::ui::blocked::PREFILL_REASON_MAX),
        expires_at: String::new(),
    };
    render_detail(
        &ctx,
        &state,
        service,
        None,
        request,
        FieldErrors::default(),
        StatusCode::OK,
    )
    .await
}
