//! Rollout evidence, read from the agents' own reports: of the connected
//! agents subscribed to a service, how many hold a revision, and why the
//! others do not; and how many recently seen agents are not connected and
//! still hold an older one. Any replica may have recorded an ACK, so this reads the
//! `agents` and `agent_services` tables, never a replica's memory; the
//! triggers of migration 0009 announce every change on [`ROLLOUT_CHANNEL`].

use super::agents::AGENT_STALE_AFTER;
use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgListener;

/// The channel migration 0009's triggers notify on; the payload is the
/// service name. Sent when an agent's applied revision or last NACK of a
/// service changes, and when an agent serving it connects, disconnects or
/// changes its services.
pub const ROLLOUT_CHANNEL: &str = "corsair_rollout";

/// Most laggards a [`Rollout`] lists (by name, then id); `agents - applied`
/// counts them all.
pub const LAGGARDS_LISTED: i64 = 100;

/// How far back a disconnected agent still counts as
/// [`Rollout::unreachable`]: one not heard from for longer is taken as
/// retired (scaled down, replaced), not as enforcing an old policy.
pub const UNREACHABLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// How far a service's revision has reached its connected agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Rollout {
    /// The service.
    #[schema(example = "payments-api")]
    pub service: String,
    /// The revision counted: the service's current revision, or the one a
    /// change produced when waiting on that change.
    pub revision: i64,
    /// N: agents subscribed to the service that are connected now (marked
    /// connected and heard from within the last 180 s).
    pub agents: i64,
    /// k: how many of them hold `revision` or a newer one (revisions only
    /// grow, so a newer one includes the change).
    pub applied: i64,
    /// Whether every connected agent holds it (`applied == agents`; true
    /// when no agent is connected).
    pub complete: bool,
    /// The connected agents that do not hold it yet, by name then id: at
    /// most 100 are listed.
    pub laggards: Vec<Laggard>,
    /// Agents subscribed to the service that are not connected now, were
    /// heard from within the last 24 h, did not end their stream themselves
    /// (a clean shutdown reads as retired) and do not hold `revision`: lost
    /// (crashed, partitioned, killed), and if still running, enforcing an
    /// older policy (their last-known-good cache) until they reconnect. Not
    /// in `agents`, so `complete` can be true while this is not 0.
    pub unreachable: i64,
}

/// A connected agent that does not hold the revision yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Laggard {
    /// The agent's id (from its hello).
    pub agent_id: String,
    /// Its name.
    pub name: String,
    /// The revision it holds (its last ACK); null if it has applied none.
    pub applied_revision: Option<i64>,
    /// Its last refusal, when it is newer than the revision it holds: the
    /// likely reason it lags.
    pub nack: Option<Nack>,
}

/// An agent's refusal of a revision (a NACK), as it reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Nack {
    /// The revision refused.
    pub revision: i64,
    /// The agent's error, e.g. why its engine refused the policy.
    pub error: String,
    /// When the control plane received it.
    pub at: DateTime<Utc>,
}

impl Rollout {
    /// "k of N agents applied revision R", for people.
    pub fn summary(&self) -> String {
        let noun = if self.agents == 1 { "agent" } else { "agents" };
        format!(
            "{} of {} {noun} applied revision {}",
            self.applied, self.agents, self.revision
        )
    }

    /// What [`Rollout::unreachable`] means, for people; `None` when it is 0.
    pub fn unreachable_note(&self) -> Option<String> {
        match self.unreachable {
            0 => None,
            1 => Some(
                "1 agent heard from within 24 h lost its connection and holds an older revision"
                    .to_owned(),
            ),
            n => Some(format!(
                "{n} agents heard from within 24 h lost their connection and hold an older revision"
            )),
        }
    }
}

impl Store {
    /// The rollout of `service`'s `revision` (its current one if `None`)
    /// across the connected agents subscribed to it, read in one snapshot.
    ///
    /// Errors: [`StoreError::NotFound`] if there is no such service.
    pub async fn service_rollout(
        &self,
        service: &str,
        revision: Option<i64>,
    ) -> Result<Rollout, StoreError> {
        let stale_secs = AGENT_STALE_AFTER.as_secs_f64();
        let mut tx = self.pool.begin().await?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let counts = sqlx::query!(
            r#"
            SELECT s.revision,
                   count(a.id) AS "agents!",
                   count(a.id) FILTER (WHERE x.applied_revision >= coalesce($2, s.revision)) AS "applied!"
              FROM services s
              LEFT JOIN agents a
                ON a.services @> ARRAY[s.name] AND a.connected
               AND a.last_seen > now() - make_interval(secs => $3)
              LEFT JOIN agent_services x ON x.agent_id = a.id AND x.service = s.name
             WHERE s.name = $1
             GROUP BY s.revision
            "#,
            service,
            revision,
            stale_secs
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("service {service}")))?;
        let target = revision.unwrap_or(counts.revision);
        let rows = sqlx::query!(
            r#"
            SELECT a.id, a.name, x.applied_revision AS "applied_revision?",
                   x.last_nack_revision AS "last_nack_revision?",
                   x.last_nack_error AS "last_nack_error?",
                   x.last_nack_at AS "last_nack_at?"
              FROM agents a
              LEFT JOIN agent_services x ON x.agent_id = a.id AND x.service = $1
             WHERE a.services @> ARRAY[$1::text] AND a.connected
               AND a.last_seen > now() - make_interval(secs => $3)
               AND (x.applied_revision IS NULL OR x.applied_revision < $2)
             ORDER BY a.name, a.id
             LIMIT $4
            "#,
            service,
            target,
            stale_secs,
            LAGGARDS_LISTED
        )
        .fetch_all(&mut *tx)
        .await?;
        let unreachable: i64 = sqlx::query_scalar(
            r#"
            SELECT count(*)
              FROM agents a
              LEFT JOIN agent_services x ON x.agent_id = a.id AND x.service = $1
             WHERE a.services @> ARRAY[$1::text]
               AND NOT (a.connected AND a.last_seen > now() - make_interval(secs => $3))
               AND a.last_seen > now() - make_interval(secs => $4)
               AND NOT coalesce(a.closed_at >= a.last_seen, false)
               AND (x.applied_revision IS NULL OR x.applied_revision < $2)
            "#,
        )
        .bind(service)
        .bind(target)
        .bind(stale_secs)
        .bind(UNREACHABLE_WITHIN.as_secs_f64())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let laggards = rows
            .into_iter()
            .map(|r| {
                let held = r.applied_revision;
                let nack = match (r.last_nack_revision, r.last_nack_error, r.last_nack_at) {
                    (Some(revision), Some(error), Some(at)) if Some(revision) > held => {
                        Some(Nack {
                            revision,
                            error,
                            at,
                        })
                    }
                    _ => None,
                };
                Laggard {
                    agent_id: r.id,
                    name: r.name,
                    applied_revision: held,
                    nack,
                }
            })
            .collect();
        Ok(Rollout {
            service: service.to_owned(),
            revision: target,
            agents: counts.agents,
            applied: counts.applied,
            complete: counts.applied == counts.agents,
            laggards,
            unreachable,
        })
    }

    /// A connection that `LISTEN`s on [`ROLLOUT_CHANNEL`]: one of the pool's
    /// connections, held until the listener is dropped.
    pub async fn listen_rollouts(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(ROLLOUT_CHANNEL).await?;
        Ok(listener)
    }
}
