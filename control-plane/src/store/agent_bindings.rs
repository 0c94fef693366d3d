//! Which agent token lineage owns which agent id: a token may act (sync,
//! report) only as the ids first seen with its lineage, or as fresh ones.
//! A token issued to replace another joins that token's lineage (an admin
//! action), which is how a gateway's agent keeps its id across token
//! rotation.

use super::audit::{self, AuditRecord};
use super::{Store, StoreError};
use serde_json::json;
use uuid::Uuid;

/// Whether a token may act as an agent id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentBinding {
    /// The id is (now) bound to the token's lineage: go ahead.
    Own,
    /// Another lineage presented the id first.
    Foreign,
}

impl Store {
    /// Binds `agent_id` to `token_id`'s lineage if no token has presented
    /// it yet, and says whether the token may act as it. Race-free: of two
    /// tokens binding a fresh id at once, the primary key lets exactly one
    /// win, and the other sees the winner's row. A token without a row in
    /// `agent_tokens` is [`StoreError::NotFound`].
    pub async fn bind_agent_id(
        &self,
        agent_id: &str,
        token_id: Uuid,
    ) -> Result<AgentBinding, StoreError> {
        // Two rounds at most: a lost insert race means the row is committed
        // (ON CONFLICT waits for the other transaction), so the next read
        // sees it.
        for _ in 0..2 {
            if let Some(same) = self.binding_matches(agent_id, token_id).await? {
                return Ok(if same {
                    AgentBinding::Own
                } else {
                    AgentBinding::Foreign
                });
            }
            let inserted = sqlx::query_scalar!(
                r#"INSERT INTO agent_bindings (agent_id, lineage, token_id)
                   SELECT $1, COALESCE(lineage, id), id FROM agent_tokens WHERE id = $2
                   ON CONFLICT (agent_id) DO NOTHING
                   RETURNING agent_id"#,
                agent_id,
                token_id
            )
            .fetch_optional(&self.pool)
            .await?;
            if inserted.is_some() {
                return Ok(AgentBinding::Own);
            }
        }
        Err(StoreError::NotFound(format!("agent token {token_id}")))
    }

    /// `Some(true)` if `agent_id` is bound to `token_id`'s lineage,
    /// `Some(false)` if to another, `None` if unbound (or no such token).
    async fn binding_matches(
        &self,
        agent_id: &str,
        token_id: Uuid,
    ) -> Result<Option<bool>, StoreError> {
        Ok(sqlx::query_scalar!(
            r#"SELECT b.lineage = COALESCE(t.lineage, t.id) AS "same!"
                 FROM agent_bindings b JOIN agent_tokens t ON t.id = $2
                WHERE b.agent_id = $1"#,
            agent_id,
            token_id
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Makes token `id` a successor of token `replaces`: it joins that
    /// token's lineage and may act as every agent id bound to it (an admin
    /// action, audited as `agent_token.replace`). Either token missing is
    /// [`StoreError::NotFound`]; a token that already acted as an agent id
    /// cannot change lineage ([`StoreError::InvalidState`]).
    pub async fn replace_agent_token(
        &self,
        id: Uuid,
        replaces: Uuid,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let lineage = sqlx::query_scalar!(
            r#"SELECT COALESCE(lineage, id) AS "lineage!" FROM agent_tokens WHERE id = $1"#,
            replaces
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("agent token {replaces}")))?;
        // Only a token that has neither acted as an agent nor been replaced
        // itself may change lineage: its bindings would be left behind.
        let used = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM agent_bindings WHERE token_id = $1 OR lineage = $1)
                   OR EXISTS (SELECT 1 FROM agent_tokens WHERE lineage = $1) AS "used!""#,
            id
        )
        .fetch_one(&mut *tx)
        .await?;
        if used {
            return Err(StoreError::InvalidState(format!(
                "agent token {id} already acts as agents of its own (or was replaced); \
                 issue a new token to replace {replaces}"
            )));
        }
        let updated = sqlx::query!(
            "UPDATE agent_tokens SET lineage = $2 WHERE id = $1 AND id <> $2",
            id,
            lineage
        )
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!("agent token {id}")));
        }
        let target = format!("agent_token:{id}");
        audit::append(
            &mut tx,
            AuditRecord {
                actor,
                action: "agent_token.replace",
                service: None,
                target: &target,
                before: None,
                after: Some(&json!({"id": id, "replaces": replaces, "lineage": lineage})),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
