//! Authenticating a PolicySync stream: the bearer token in its metadata.

use crate::auth::{Claims, SigningKey, TokenKind};
use crate::store::Store;
use crate::store::agent_bindings::AgentBinding;
use tonic::Status;
use tonic::metadata::MetadataMap;
use uuid::Uuid;

/// An authenticated agent token.
#[derive(Debug)]
pub(crate) struct AgentAuth {
    pub claims: Claims,
    pub token_id: Uuid,
}

/// Checks `authorization: Bearer <token>`: signature, kind, expiry, and that
/// the token is still listed and not revoked. Any failure is UNAUTHENTICATED
/// (UNAVAILABLE if the database cannot be asked).
pub(crate) async fn authenticate(
    metadata: &MetadataMap,
    keys: &SigningKey,
    store: &Store,
) -> Result<AgentAuth, Status> {
    let header = metadata.get("authorization").ok_or_else(|| {
        Status::unauthenticated("missing authorization metadata (Bearer agent token)")
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <agent token>`"))?;
    let claims = keys
        .verify(token, TokenKind::Agent)
        .map_err(|e| Status::unauthenticated(e.to_string()))?;
    let token_id = Uuid::parse_str(&claims.jti)
        .map_err(|_| Status::unauthenticated("invalid token: jti is not a token id"))?;
    match store.agent_token_active(token_id).await {
        Ok(true) => Ok(AgentAuth { claims, token_id }),
        Ok(false) => Err(Status::unauthenticated("agent token revoked or unknown")),
        Err(error) => {
            tracing::error!(%error, "cannot check agent token");
            Err(Status::unavailable(
                "cannot check the agent token right now",
            ))
        }
    }
}

/// Lets `auth`'s token act as agent `agent_id` (PolicySync Hello, Telemetry
/// batch) only if the id was first seen with this token's lineage, or is
/// fresh (then it is bound to it now): PERMISSION_DENIED otherwise, so no
/// token can take over another agent's status or telemetry sequence.
/// UNAVAILABLE if the database cannot be asked.
pub(crate) async fn bind_agent(
    store: &Store,
    auth: &AgentAuth,
    agent_id: &str,
) -> Result<(), Status> {
    match store.bind_agent_id(agent_id, auth.token_id).await {
        Ok(AgentBinding::Own) => Ok(()),
        Ok(AgentBinding::Foreign) => Err(Status::permission_denied(format!(
            "agent id {agent_id:?} belongs to another agent token: a token may only act as the \
             agent ids first seen with it (or new ones). Use that agent's token, give this agent \
             its own id (its own --cache-dir), or, when this token replaces the other one, have \
             an admin issue it with `replaces`"
        ))),
        Err(error) => {
            tracing::error!(%error, "cannot check the agent id's token");
            Err(Status::unavailable("cannot check the agent id right now"))
        }
    }
}
