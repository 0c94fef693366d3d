//! `/agents` (the fleet) and `/simulator` (the engine's answer for a
//! hypothetical request, via the same code as `POST /api/v1/simulate`).

use super::page::{Ctx, Layout, UiResult, when, when_opt};
use crate::service::simulate::{SimulateRequest, run};
use crate::state::AppState;
use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use http::StatusCode;
use serde::Deserialize;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agents", get(agents))
        .route("/simulator", get(simulator))
}

/// One agent × service line.
pub struct AgentRow {
    name: String,
    id: String,
    version: String,
    connected: bool,
    last_seen: String,
    services: Vec<ServiceState>,
}

/// An agent's state for one service.
pub struct ServiceState {
    service: String,
    applied: String,
    current: String,
    behind: bool,
    nack: String,
}

#[derive(Template)]
#[template(path = "agents.html")]
struct AgentsPage {
    page: Layout,
    rows: Vec<AgentRow>,
}

async fn agents(ctx: Ctx, State(state): State<AppState>) -> UiResult {
    let agents = state.store.list_agent_status().await?;
    let mut names: Vec<String> = agents.iter().flat_map(|a| a.services.clone()).collect();
    names.sort();
    names.dedup();
    let current = state.store.service_revisions(&names).await?;
    let rows = agents
        .into_iter()
        .map(|a| AgentRow {
            services: a
                .services
                .iter()
                .map(|s| {
                    let st = a.service_states.iter().find(|x| &x.service == s);
                    let applied = st.and_then(|x| x.applied_revision);
                    let cur = current.get(s).copied();
                    ServiceState {
                        service: s.clone(),
                        applied: applied.map_or_else(|| "—".into(), |r| r.to_string()),
                        current: cur.map_or_else(|| "(no such service)".into(), |r| r.to_string()),
                        behind: cur.is_some() && applied != cur,
                        nack: st
                            .and_then(|x| {
                                x.last_nack_error.as_ref().map(|e| {
                                    format!(
                                        "rev {}: {e} ({})",
                                        x.last_nack_revision.unwrap_or_default(),
                                        when_opt(&x.last_nack_at)
                                    )
                                })
                            })
                            .unwrap_or_default(),
                    }
                })
                .collect(),
            name: a.name,
            id: a.id,
            version: a.version,
            connected: a.connected,
            last_seen: when(&a.last_seen),
        })
        .collect();
    Ok(ctx.render(
        StatusCode::OK,
        &AgentsPage {
            page: ctx.layout("Agents", "agents"),
            rows,
        },
    ))
}

/// The simulator form (GET: simulating changes nothing).
#[derive(Debug, Default, Deserialize)]
pub struct SimQuery {
    #[serde(default)]
    service: String,
    #[serde(default)]
    origin: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    headers: String,
}

/// One step of the result.
pub struct StepView {
    request: &'static str,
    decision: &'static str,
    reason: String,
    status: String,
    headers: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "simulator.html")]
struct SimulatorPage {
    page: Layout,
    services: Vec<String>,
    service: String,
    origin: String,
    method: String,
    headers: String,
    error: String,
    ran: bool,
    allowed: bool,
    decision: String,
    reason: String,
    revision: i64,
    steps: Vec<StepView>,
}

async fn simulator(ctx: Ctx, State(state): State<AppState>, Query(q): Query<SimQuery>) -> UiResult {
    let services = state
        .store
        .list_services()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let mut page = SimulatorPage {
        page: ctx.layout("Policy simulator", "simulator"),
        services,
        service: q.service.clone(),
        origin: q.origin.clone(),
        method: if q.method.trim().is_empty() {
            "GET".into()
        } else {
            q.method.clone()
        },
        headers: q.headers.clone(),
        error: String::new(),
        ran: false,
        allowed: false,
        decision: String::new(),
        reason: String::new(),
        revision: 0,
        steps: Vec::new(),
    };
    let mut status = StatusCode::OK;
    if !q.service.is_empty() || !q.origin.is_empty() {
        let req = SimulateRequest {
            service: q.service.trim().to_owned(),
            origin: q.origin.trim().to_owned(),
            method: Some(page.method.trim().to_owned()),
            request_headers: q
                .headers
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        match run(&state, &req).await {
            Ok(r) => {
                page.ran = true;
                page.allowed = r.allowed;
                page.decision = r.decision.to_owned();
                page.reason = r.reason.unwrap_or_default().to_owned();
                page.revision = r.revision;
                page.steps = r
                    .steps
                    .into_iter()
                    .map(|s| StepView {
                        request: s.request,
                        decision: s.decision,
                        reason: s.reason.unwrap_or_default().to_owned(),
                        status: s
                            .status
                            .map_or_else(|| "forwarded to the upstream".into(), |c| c.to_string()),
                        headers: s
                            .headers
                            .into_iter()
                            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                            .collect(),
                    })
                    .collect();
            }
            Err(
                e @ (crate::service::Error::Internal(_) | crate::service::Error::Unavailable(_)),
            ) => {
                return Err(e.into());
            }
            Err(e) => {
                status = e.status();
                page.error = e.to_string();
            }
        }
    }
    Ok(ctx.render(status, &page))
}
