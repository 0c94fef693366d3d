//! Agents as the PolicySync streams see them: who is connected, what each has
//! applied or refused, whether its token is still valid, and the revisions of
//! the services agents are subscribed to (for the periodic resync).

use super::{Store, StoreError};
use std::collections::HashMap;
use uuid::Uuid;

/// What an agent says about itself when its stream opens.
#[derive(Debug, Clone)]
pub struct AgentHello<'a> {
    /// Stable agent id (from the agent's cache dir).
    pub id: &'a str,
    /// Human-readable name.
    pub name: &'a str,
    /// The token the stream authenticated with.
    pub token_id: Uuid,
    /// Services the agent enforces.
    pub services: &'a [String],
    /// Agent software version.
    pub version: &'a str,
}

/// An agent whose stream has not bumped `last_seen` for this long counts as
/// disconnected, whatever its `connected` flag says: streams bump it every
/// token re-check (60 s by default), so this is three missed beats. It is
/// what clears the agents of a replica that died without recording their
/// disconnects.
pub const AGENT_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(180);

impl Store {
    /// Records a connecting agent: upserts its row (connected, last seen now)
    /// and forgets per-service rows of services it no longer serves.
    pub async fn agent_connected(&self, hello: &AgentHello<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            r#"INSERT INTO agents (id, name, token_id, services, version, connected, last_seen)
               VALUES ($1, $2, $3, $4, $5, true, now())
               ON CONFLICT (id) DO UPDATE
                  SET name = EXCLUDED.name, token_id = EXCLUDED.token_id,
                      services = EXCLUDED.services, version = EXCLUDED.version,
                      connected = true, last_seen = now()"#,
            hello.id,
            hello.name,
            hello.token_id,
            hello.services,
            hello.version
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM agent_services WHERE agent_id = $1 AND service <> ALL($2)",
            hello.id,
            hello.services
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that an agent applied `revision` of `service`. Never moves a
    /// recorded revision back (an older ACK written late, from another
    /// replica's batch or a stream that ended meanwhile, changes nothing),
    /// except to 0: the service was deleted and the agent fails closed.
    pub async fn agent_acked(
        &self,
        agent_id: &str,
        service: &str,
        revision: i64,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            r#"WITH seen AS (UPDATE agents SET last_seen = now() WHERE id = $1)
               INSERT INTO agent_services (agent_id, service, applied_revision, applied_at)
               VALUES ($1, $2, $3, now())
               ON CONFLICT (agent_id, service) DO UPDATE
                  SET applied_revision = EXCLUDED.applied_revision, applied_at = now()
                WHERE agent_services.applied_revision IS NULL
                   OR agent_services.applied_revision <= EXCLUDED.applied_revision
                   OR EXCLUDED.applied_revision = 0"#,
            agent_id,
            service,
            revision
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that an agent refused `revision` of `service` with `error`.
    pub async fn agent_nacked(
        &self,
        agent_id: &str,
        service: &str,
        revision: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            r#"WITH seen AS (UPDATE agents SET last_seen = now() WHERE id = $1)
               INSERT INTO agent_services (agent_id, service, last_nack_revision, last_nack_error, last_nack_at)
               VALUES ($1, $2, $3, $4, now())
               ON CONFLICT (agent_id, service) DO UPDATE
                  SET last_nack_revision = EXCLUDED.last_nack_revision,
                      last_nack_error = EXCLUDED.last_nack_error, last_nack_at = now()"#,
            agent_id,
            service,
            revision,
            error
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Bumps an agent's `last_seen`.
    pub async fn agent_seen(&self, agent_id: &str) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE agents SET last_seen = now() WHERE id = $1",
            agent_id
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that an agent's stream ended; `closed_by_agent`: the agent
    /// ended it itself (a clean shutdown, `closed_at`), which rollout
    /// evidence takes as retired until the agent is seen again, where a
    /// stream lost otherwise counts as unreachable. One statement, so a
    /// rollout read never sees the disconnect without the clean close (as
    /// two writes let it: an agent that shut down cleanly counted as lost
    /// for a moment).
    pub async fn agent_disconnected(
        &self,
        agent_id: &str,
        closed_by_agent: bool,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE agents SET connected = false, last_seen = now(), closed_at = CASE WHEN $2 THEN now() ELSE closed_at END WHERE id = $1",
            agent_id,
            closed_by_agent
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The current revision of each named service that exists. Lives here
    /// rather than in `policy` because only the PolicySync resync uses it.
    pub async fn service_revisions(
        &self,
        services: &[String],
    ) -> Result<HashMap<String, i64>, StoreError> {
        let rows = sqlx::query!(
            "SELECT name, revision FROM services WHERE name = ANY($1)",
            services
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.name, r.revision)).collect())
    }
}
