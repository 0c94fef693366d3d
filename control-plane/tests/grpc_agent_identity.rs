//! Agent identity is bound to the token (issue 11, item 5), over real gRPC
//! against real Postgres: a token may sync (PolicySync) and report
//! (Telemetry) only as the agent ids first seen with it, or as fresh ones;
//! another token's agent id is PERMISSION_DENIED. A token issued to
//! replace another (an admin action) may act as the replaced token's ids.

mod grpc_support;

use corsair_control_plane::auth::{SigningKey, TokenKind};
use corsair_control_plane::store::StoreError;
use corsair_control_plane::store::agent_bindings::AgentBinding;
use corsair_proto::v1::telemetry_client::TelemetryClient;
use corsair_proto::v1::{AgentMessage, BlockedCount, Hello, ReportBatch, agent_message};
use grpc_support::{ControlPlane, TestDb, TestResult, fast_config, next_snapshot, raw_stream};
use tonic::Code;
use uuid::Uuid;

fn hello(agent_id: &str) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Hello(Hello {
            agent_id: agent_id.into(),
            agent_name: "gw".into(),
            version: "test".into(),
            services: vec!["orders".into()],
            revisions: Default::default(),
        })),
    }
}

/// The token's id (`jti`), as the admin sees it in the token list.
fn token_id(token: &str) -> Result<Uuid, Box<dyn std::error::Error + Send + Sync>> {
    let keys = SigningKey::from_bytes(&hex::decode(grpc_support::signing_key_hex())?);
    Ok(Uuid::parse_str(&keys.verify(token, TokenKind::Agent)?.jti)?)
}

/// Opens a PolicySync stream as `agent_id`; `Ok` once the first snapshot
/// arrives, else the refusal.
async fn sync(cp: &ControlPlane, token: &str, agent_id: &str) -> Result<(), tonic::Status> {
    let mut stream = raw_stream(cp, token, hello(agent_id)).await?;
    next_snapshot(&mut stream)
        .await
        .map(|_| ())
        .map_err(|e| tonic::Status::unknown(e.to_string()))
}

/// Sends one telemetry batch (sequence `seq`) as `agent_id`.
async fn report(
    cp: &ControlPlane,
    token: &str,
    agent_id: &str,
    seq: u64,
) -> Result<bool, tonic::Status> {
    let mut client = TelemetryClient::connect(cp.url())
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut request = tonic::Request::new(ReportBatch {
        batch_id: format!("{agent_id}:{seq}"),
        agent_id: agent_id.into(),
        sequence: seq,
        interval_start_unix_ms: now,
        interval_end_unix_ms: now,
        counts: vec![BlockedCount {
            service: "orders".into(),
            origin: "https://a.test".into(),
            method: "GET".into(),
            reason: "origin_not_allowed".into(),
            would_block: false,
            count: 1,
        }],
        dropped_events: 0,
        dropped_service: String::new(),
        allowed: Vec::new(),
    });
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| tonic::Status::internal("token is not metadata"))?;
    request.metadata_mut().insert("authorization", value);
    Ok(client.report(request).await?.into_inner().duplicate)
}

fn denied(result: Result<impl std::fmt::Debug, tonic::Status>, what: &str) {
    match result {
        Err(status) => {
            assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
            assert!(
                status.message().contains("belongs to another agent token"),
                "{what}: {}",
                status.message()
            );
        }
        Ok(v) => panic!("{what}: accepted ({v:?})"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_acts_only_as_its_own_or_fresh_agent_ids() -> TestResult {
    let db = TestDb::new().await?;
    db.create_service("orders", &["https://a.test"]).await?;
    let cp = ControlPlane::start(&db, fast_config()).await?;
    let first = db.token(&["orders"]).await?;
    let second = db.token(&["orders"]).await?;

    // The first token makes gw-1 its own, and may reconnect as it.
    sync(&cp, &first, "gw-1").await?;
    sync(&cp, &first, "gw-1").await?;
    assert!(!report(&cp, &first, "gw-1", 1).await?);

    // The second token cannot sync or report as gw-1...
    denied(
        sync(&cp, &second, "gw-1").await,
        "sync as another token's agent",
    );
    denied(
        report(&cp, &second, "gw-1", 2).await,
        "report as another token's agent",
    );
    // ...so it cannot squat gw-1's telemetry sequence: gw-1's next batch is
    // stored, not taken for a duplicate of the squatter's.
    assert!(
        !report(&cp, &first, "gw-1", 2).await?,
        "gw-1:2 stored as new"
    );

    // A fresh id is the second token's own, whether first seen on the
    // stream or in a report; then the first token cannot use those.
    sync(&cp, &second, "gw-2").await?;
    assert!(!report(&cp, &second, "gw-2", 1).await?);
    assert!(!report(&cp, &second, "gw-3", 1).await?);
    sync(&cp, &second, "gw-3").await?;
    denied(sync(&cp, &first, "gw-2").await, "first token as gw-2");
    denied(sync(&cp, &first, "gw-3").await, "first token as gw-3");
    denied(
        report(&cp, &first, "gw-3", 9).await,
        "first token reporting as gw-3",
    );
    cp.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_s_agents_go_only_to_the_token_an_admin_issued_to_replace_it() -> TestResult
{
    let db = TestDb::new().await?;
    db.create_service("orders", &["https://a.test"]).await?;
    let cp = ControlPlane::start(&db, fast_config()).await?;
    let old = db.token(&["orders"]).await?;
    sync(&cp, &old, "gw-1").await?;
    assert!(!report(&cp, &old, "gw-1", 1).await?);
    db.revoke_token(&old).await?;
    assert_eq!(
        sync(&cp, &old, "gw-1").await.err().map(|s| s.code()),
        Some(Code::Unauthenticated)
    );

    // Revoking frees nothing: any other token is still refused gw-1.
    let other = db.token(&["orders"]).await?;
    denied(
        sync(&cp, &other, "gw-1").await,
        "a new token, not replacing the old one",
    );

    // The admin issues the replacement as such; it takes over gw-1 and its
    // telemetry sequence carries on.
    let new = db.token(&["orders"]).await?;
    db.store
        .replace_agent_token(token_id(&new)?, token_id(&old)?, "admin@example.com")
        .await?;
    sync(&cp, &new, "gw-1").await?;
    assert!(!report(&cp, &new, "gw-1", 2).await?);
    assert!(
        report(&cp, &new, "gw-1", 1).await?,
        "gw-1:1 was the old token's"
    );
    // A replacement of the replacement belongs to the same lineage.
    let newer = db.token(&["orders"]).await?;
    db.store
        .replace_agent_token(token_id(&newer)?, token_id(&new)?, "admin@example.com")
        .await?;
    sync(&cp, &newer, "gw-1").await?;
    // The token that was refused cannot become a replacement after acting as
    // an agent of its own, and the action is audited.
    sync(&cp, &other, "gw-9").await?;
    let refused = db
        .store
        .replace_agent_token(token_id(&other)?, token_id(&old)?, "admin@example.com")
        .await;
    assert!(
        matches!(refused, Err(StoreError::InvalidState(_))),
        "{refused:?}"
    );
    let unknown = db
        .store
        .replace_agent_token(token_id(&newer)?, Uuid::new_v4(), "admin@example.com")
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    let audit = db.store.list_audit(None, 50).await?;
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "agent_token.replace")
            .count(),
        2
    );
    cp.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_binding_is_race_free() -> TestResult {
    let db = TestDb::new().await?;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(token_id(&db.token(&["orders"]).await?)?);
    }
    for round in 0..5 {
        let agent = format!("contested-{round}");
        let tasks: Vec<_> = ids
            .iter()
            .map(|&id| {
                let store = db.store.clone();
                let agent = agent.clone();
                tokio::spawn(async move { store.bind_agent_id(&agent, id).await })
            })
            .collect();
        let mut winners = Vec::new();
        for (task, id) in tasks.into_iter().zip(&ids) {
            if task.await?? == AgentBinding::Own {
                winners.push(*id);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        // And the winner keeps it.
        assert_eq!(
            db.store.bind_agent_id(&agent, winners[0]).await?,
            AgentBinding::Own
        );
    }
    // A token without a row cannot bind anything.
    let unknown = db.store.bind_agent_id("nobody", Uuid::new_v4()).await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    Ok(())
}
