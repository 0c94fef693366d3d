//! `POST /api/v1/agent-tokens` with `replaces`: the admin action that lets a
//! rotated token act as the agent ids of the token it replaces (issue 11,
//! item 5); without it, a new token is refused those ids.

mod api_common;

use api_common::Api;
use corsair_control_plane::auth::Role;
use corsair_control_plane::store::agent_bindings::AgentBinding;
use http::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

async fn issue(api: &Api, replaces: Option<Uuid>) -> (StatusCode, Option<Uuid>) {
    let mut body = json!({"name": "gw", "services": ["orders"]});
    if let Some(old) = replaces {
        body["replaces"] = json!(old);
    }
    let reply = api
        .as_role(
            Role::Admin,
            Method::POST,
            "/api/v1/agent-tokens",
            Some(body),
        )
        .await;
    let id = reply.body["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok());
    (reply.status, id)
}

#[tokio::test]
async fn a_replacement_token_takes_over_the_old_token_s_agent_ids() {
    let api = Api::new().await;
    api.create_service("orders", json!({})).await;
    let (status, old) = issue(&api, None).await;
    assert_eq!(status, StatusCode::CREATED);
    let old = old.expect("id");
    assert_eq!(
        api.store.bind_agent_id("gw-1", old).await.expect("bind"),
        AgentBinding::Own
    );

    // A plain new token may not act as gw-1; one issued to replace the old may.
    let (_, plain) = issue(&api, None).await;
    let plain = plain.expect("id");
    assert_eq!(
        api.store.bind_agent_id("gw-1", plain).await.expect("bind"),
        AgentBinding::Foreign
    );
    let (status, new) = issue(&api, Some(old)).await;
    assert_eq!(status, StatusCode::CREATED);
    let new = new.expect("id");
    assert_eq!(
        api.store.bind_agent_id("gw-1", new).await.expect("bind"),
        AgentBinding::Own
    );
    // The old token keeps working until it is revoked.
    assert_eq!(
        api.store.bind_agent_id("gw-1", old).await.expect("bind"),
        AgentBinding::Own
    );

    // Replacing an unknown token is a 404 and issues nothing.
    let before = api.store.list_agent_tokens().await.expect("list").len();
    let (status, _) = issue(&api, Some(Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.store.list_agent_tokens().await.expect("list").len(),
        before
    );
    // Only admins issue tokens, replacements included.
    let reply = api
        .as_role(
            Role::Approver,
            Method::POST,
            "/api/v1/agent-tokens",
            Some(json!({"name": "gw", "services": ["orders"], "replaces": old})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}
