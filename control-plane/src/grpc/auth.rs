//! Authenticating a PolicySync stream: the bearer token in its metadata.

use crate::auth::{Claims, SigningKey, TokenKind};
use crate::store::Store;
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
