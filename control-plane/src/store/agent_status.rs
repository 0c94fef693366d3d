//! Read side of the agents the control plane has seen (the gRPC server
//! writes these tables; the API only lists them).

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One agent as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgentStatus {
    /// The agent's id (from its hello).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The services it serves.
    pub services: Vec<String>,
    /// Its version.
    pub version: String,
    /// Whether it holds a stream right now: marked connected and heard
    /// from within [`AGENT_STALE_AFTER`](super::agents::AGENT_STALE_AFTER).
    pub connected: bool,
    /// First contact.
    pub first_seen: DateTime<Utc>,
    /// Last contact.
    pub last_seen: DateTime<Utc>,
    /// Per service: what it applied and what it refused.
    pub service_states: Vec<AgentServiceState>,
}

/// An agent's state for one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgentServiceState {
    /// The service.
    pub service: String,
    /// The revision it applied last.
    pub applied_revision: Option<i64>,
    /// When.
    pub applied_at: Option<DateTime<Utc>>,
    /// The revision it refused last.
    pub last_nack_revision: Option<i64>,
    /// Why.
    pub last_nack_error: Option<String>,
    /// When.
    pub last_nack_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Every agent, most recently seen first, with its per-service state.
    pub async fn list_agent_status(&self) -> Result<Vec<AgentStatus>, StoreError> {
        let agents = sqlx::query!(
            r#"
            SELECT id, name, services, version,
                   connected AND last_seen > now() - make_interval(secs => $1) AS "connected!",
                   first_seen, last_seen
              FROM agents ORDER BY last_seen DESC, id
            "#,
            super::agents::AGENT_STALE_AFTER.as_secs_f64()
        )
        .fetch_all(&self.pool)
        .await?;
        let states = sqlx::query!(
            r#"
            SELECT agent_id, service, applied_revision, applied_at,
                   last_nack_revision, last_nack_error, last_nack_at
              FROM agent_services ORDER BY agent_id, service
            "#
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<AgentStatus> = agents
            .into_iter()
            .map(|a| AgentStatus {
                id: a.id,
                name: a.name,
                services: a.services,
                version: a.version,
                connected: a.connected,
                first_seen: a.first_seen,
                last_seen: a.last_seen,
                service_states: Vec::new(),
            })
            .collect();
        // Index by id: thousands of agents are expected.
        let index: std::collections::HashMap<String, usize> = out
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.clone(), i))
            .collect();
        for s in states {
            if let Some(agent) = index.get(&s.agent_id).and_then(|&i| out.get_mut(i)) {
                agent.service_states.push(AgentServiceState {
                    service: s.service,
                    applied_revision: s.applied_revision,
                    applied_at: s.applied_at,
                    last_nack_revision: s.last_nack_revision,
                    last_nack_error: s.last_nack_error,
                    last_nack_at: s.last_nack_at,
                });
            }
        }
        Ok(out)
    }
}
