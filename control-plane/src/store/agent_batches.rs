//! Agent records written in batches: the ACKs and heartbeats of thousands
//! of PolicySync streams, gathered by `grpc::acks` and written one
//! statement per batch instead of one round trip per message.

use super::{Store, StoreError};

/// One agent's ACK: it applied `revision` of `service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentAck {
    /// The agent's id.
    pub agent_id: String,
    /// The service.
    pub service: String,
    /// The revision it applied.
    pub revision: i64,
}

/// How stale an agent's `last_seen` must be before an ACK rewrites it.
/// `last_seen` only has to be finer than
/// [`AGENT_STALE_AFTER`](super::agents::AGENT_STALE_AFTER) (180 s); without
/// this, every approval rewrote the row of every agent (10,000 row versions
/// and their index entries per approval at 10,000 agents).
pub const LAST_SEEN_RESOLUTION: std::time::Duration = std::time::Duration::from_secs(10);

impl Store {
    /// Records many ACKs in one statement (as [`Store::agent_acked`] does
    /// for one): upserts each `agent_services` row and bumps the agents'
    /// `last_seen` where it is older than [`LAST_SEEN_RESOLUTION`]. Each
    /// (agent, service) pair may appear only once. A recorded revision
    /// never moves back (two replicas' batches may land in either order),
    /// except to 0: the service was deleted.
    pub async fn agents_acked(&self, acks: &[AgentAck]) -> Result<(), StoreError> {
        let agent_ids: Vec<String> = acks.iter().map(|a| a.agent_id.clone()).collect();
        let services: Vec<String> = acks.iter().map(|a| a.service.clone()).collect();
        let revisions: Vec<i64> = acks.iter().map(|a| a.revision).collect();
        sqlx::query!(
            r#"WITH acks AS (
                   SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])
                       AS a (agent_id, service, revision)
               ),
               seen AS (UPDATE agents SET last_seen = now()
                         WHERE id IN (SELECT agent_id FROM acks)
                           AND last_seen < now() - make_interval(secs => $4))
               INSERT INTO agent_services (agent_id, service, applied_revision, applied_at)
               SELECT agent_id, service, revision, now() FROM acks
               ON CONFLICT (agent_id, service) DO UPDATE
                  SET applied_revision = EXCLUDED.applied_revision, applied_at = now()
                WHERE agent_services.applied_revision IS NULL
                   OR agent_services.applied_revision <= EXCLUDED.applied_revision
                   OR EXCLUDED.applied_revision = 0"#,
            &agent_ids,
            &services,
            &revisions,
            LAST_SEEN_RESOLUTION.as_secs_f64()
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Bumps the `last_seen` of every agent in `agent_ids` (heartbeats).
    pub async fn agents_seen(&self, agent_ids: &[String]) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE agents SET last_seen = now() WHERE id = ANY($1)",
            agent_ids
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
