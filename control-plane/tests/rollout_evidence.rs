//! Rollout evidence (issue 12, item 2) against a real control plane, real
//! Postgres and real PolicySync streams: agents that apply (the agent's own
//! sync client), one that NACKs and one that never answers (raw tonic
//! streams). "k of N agents applied revision R" in the REST API, on the
//! service page and in the approval's confirmation; `?wait=applied` that
//! answers when every agent ACKed, or at its timeout with the laggards.

mod grpc_support;
mod ui_support;

use anyhow::{Context, Result, anyhow};
use corsair_control_plane::auth::Role;
use corsair_proto::v1::{AgentMessage, Nack, agent_message, control_message};
use corsair_test_support::eventually;
use grpc_support::{Agent, hello, raw_stream_on};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use ui_support::{Browser, Page, Server};

const SERVICE: &str = "payments-api";
const REFUSAL: &str = "engine refused the policy: test agent says no";

/// How a raw agent answers snapshots.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// NACKs every snapshot with [`REFUSAL`].
    Nack,
    /// Never answers (the test may ACK by hand through `tx`).
    Silent,
}

/// A PolicySync stream opened with a raw tonic client over a socket.
struct RawAgent {
    id: String,
    /// The newest revision received.
    seen: watch::Receiver<i64>,
    tx: mpsc::Sender<AgentMessage>,
    task: JoinHandle<()>,
}

impl RawAgent {
    async fn start(server: &Server, token: &str, answer: Answer) -> Result<Self> {
        Self::start_as(server, token, answer, None).await
    }

    /// [`RawAgent::start`] with a given agent id (an agent reconnecting
    /// keeps its id), or a fresh one.
    async fn start_as(
        server: &Server,
        token: &str,
        answer: Answer,
        agent_id: Option<&str>,
    ) -> Result<Self> {
        Self::start_at(&server.grpc_url, token, answer, agent_id).await
    }

    /// [`RawAgent::start_as`] through `url` (e.g. a balancer in front).
    async fn start_at(
        url: &str,
        token: &str,
        answer: Answer,
        agent_id: Option<&str>,
    ) -> Result<Self> {
        let mut first = hello(&[SERVICE], &[]);
        let id = match &mut first.msg {
            Some(agent_message::Msg::Hello(h)) => {
                if let Some(given) = agent_id {
                    h.agent_id = given.to_owned();
                }
                h.agent_id.clone()
            }
            _ => return Err(anyhow!("hello() built no hello")),
        };
        let channel = tonic::transport::Channel::from_shared(url.to_owned())?
            .connect()
            .await?;
        let (mut incoming, tx) = raw_stream_on(channel, token, first)
            .await
            .map_err(|s| anyhow!("stream refused: {s}"))?;
        let (seen_tx, seen) = watch::channel(0);
        let reply = tx.clone();
        let task = tokio::spawn(async move {
            while let Ok(Some(message)) = incoming.message().await {
                if let Some(control_message::Msg::Snapshot(s)) = message.msg {
                    if answer == Answer::Nack {
                        let nack = AgentMessage {
                            msg: Some(agent_message::Msg::Nack(Nack {
                                service: s.service.clone(),
                                revision: s.revision,
                                error: REFUSAL.into(),
                            })),
                        };
                        let _ = reply.send(nack).await;
                    }
                    seen_tx.send_replace(s.revision);
                }
            }
        });
        Ok(Self { id, seen, tx, task })
    }

    async fn wait_seen(&self, revision: i64) -> Result<()> {
        eventually(
            &format!("raw agent received revision {revision}"),
            || async { *self.seen.borrow() >= revision },
        )
        .await
    }

    async fn ack(&self, revision: i64) -> Result<()> {
        let ack = AgentMessage {
            msg: Some(agent_message::Msg::Ack(corsair_proto::v1::Ack {
                service: SERVICE.into(),
                revision,
            })),
        };
        self.tx.send(ack).await.context("stream closed")
    }
}

impl Drop for RawAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A real agent (its sync client) serving [`SERVICE`], with its cache dir.
async fn real_agent(server: &Server, token: &str) -> Result<(Agent, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let agent = Agent::start_at(server.grpc_addr, token, &[SERVICE], dir.path())
        .map_err(|e| anyhow!("{e}"))?;
    Ok((agent, dir))
}

/// A REST call as `role`; (status, JSON body).
async fn api(
    server: &Server,
    role: Role,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let mut request = reqwest::Client::new()
        .request(method, server.api(path))
        .bearer_auth(server.user_token(role)?);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let json = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
    Ok((status, json))
}

async fn rollout(server: &Server) -> Result<Value> {
    let (status, body) = api(
        server,
        Role::Viewer,
        reqwest::Method::GET,
        &format!("/services/{SERVICE}/rollout"),
        None,
    )
    .await?;
    anyhow::ensure!(status == 200, "rollout answered {status}: {body}");
    Ok(body)
}

/// Files a pending request as the requester; its id.
async fn pending_origin(server: &Server, pattern: &str) -> Result<i64> {
    let origin = server
        .db
        .store
        .request_origin(
            SERVICE,
            pattern,
            "test",
            None,
            &ui_support::email(Role::Requester),
        )
        .await?;
    Ok(origin.id)
}

async fn revision(server: &Server) -> Result<i64> {
    Ok(server.db.store.get_service(SERVICE).await?.revision)
}

async fn push_to_ack_count(server: &Server) -> Result<f64> {
    let text = reqwest::get(server.url("/metrics")).await?.text().await?;
    text.lines()
        .find_map(|l| l.strip_prefix("corsair_policy_push_to_ack_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no corsair_policy_push_to_ack_seconds_count in /metrics:\n{text}"))
}

/// Approves origin `id` through the UI as an approver (303 back to the
/// service page); the approver's browser and the page with the confirmation.
async fn approve_in_ui(server: &Server, id: i64) -> Result<(Browser, Page)> {
    let mut approver = server.signed_in(Role::Approver).await?;
    let r = approver
        .post(
            &format!("/origins/{id}/approve"),
            &[("note", "ok"), ("next", &format!("/services/{SERVICE}"))],
        )
        .await?;
    anyhow::ensure!(r.status == 303, "approve answered {}: {}", r.status, r.body);
    let shown = approver.follow(&r).await?;
    Ok((approver, shown))
}

fn laggard<'a>(rollout: &'a Value, agent_id: &str) -> Option<&'a Value> {
    rollout["laggards"]
        .as_array()?
        .iter()
        .find(|l| l["agent_id"] == agent_id)
}

#[tokio::test]
async fn k_of_n_with_nack_errors_in_the_api_the_service_page_and_the_confirmation() -> Result<()> {
    let server = Server::start(false).await?;
    let token = server.agent_token("edge", &[SERVICE]).await?;
    let (a, _a_dir) = real_agent(&server, &token).await?;
    let (b, _b_dir) = real_agent(&server, &token).await?;
    let nacker = RawAgent::start(&server, &token, Answer::Nack).await?;
    let silent = RawAgent::start(&server, &token, Answer::Silent).await?;
    let start = revision(&server).await?;
    a.wait_revision(SERVICE, start).await?;
    b.wait_revision(SERVICE, start).await?;
    silent.wait_seen(start).await?;
    eventually("4 connected, 2 applied", || async {
        rollout(&server)
            .await
            .is_ok_and(|r| r["agents"] == 4 && r["applied"] == 2)
    })
    .await?;
    let acks_before = push_to_ack_count(&server).await?;

    // Approve over REST, waiting at most 1 s: two laggards never apply it.
    let id = pending_origin(&server, "https://app.example.com").await?;
    let (status, body) = api(
        &server,
        Role::Approver,
        reqwest::Method::POST,
        &format!("/origins/{id}/approve?wait=applied&timeout=1s"),
        None,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["status"], "approved",
        "the change keeps its body: {body}"
    );
    let after = revision(&server).await?;
    assert!(after > start);
    let waited = &body["rollout"];
    assert_eq!(waited["revision"], after, "{body}");
    assert_eq!(waited["timed_out"], true, "{body}");
    assert_eq!(waited["complete"], false, "{body}");
    assert_eq!(waited["agents"], 4, "{body}");
    assert_eq!(waited["applied"], 2, "the real agents applied it: {body}");
    let n = laggard(waited, &nacker.id).with_context(|| format!("NACKer listed: {body}"))?;
    assert_eq!(n["nack"]["error"], REFUSAL, "{body}");
    assert_eq!(n["nack"]["revision"], after, "{body}");
    let s = laggard(waited, &silent.id).with_context(|| format!("silent listed: {body}"))?;
    assert_eq!(s["applied_revision"], Value::Null, "{body}");
    assert_eq!(s["nack"], Value::Null, "{body}");
    for agent in [&a, &b] {
        assert!(laggard(waited, &agent.id).is_none(), "{body}");
    }

    // The same evidence, read back.
    let now = rollout(&server).await?;
    assert_eq!(now["revision"], after);
    assert_eq!(
        (now["applied"].clone(), now["agents"].clone()),
        (2.into(), 4.into())
    );
    assert_eq!(
        laggard(&now, &nacker.id).map(|l| l["nack"]["error"].clone()),
        Some(REFUSAL.into())
    );

    // The push → ACK histogram counted the real agents' ACKs.
    assert!(push_to_ack_count(&server).await? >= acks_before + 2.0);
    let metrics = reqwest::get(server.url("/metrics")).await?.text().await?;
    assert!(
        metrics.contains("# HELP corsair_policy_push_to_ack_seconds"),
        "{metrics}"
    );
    assert!(
        metrics.contains("corsair_policy_push_to_ack_seconds_bucket{le="),
        "{metrics}"
    );

    // The service page.
    let mut viewer = server.signed_in(Role::Viewer).await?;
    let page = viewer.get(&format!("/services/{SERVICE}")).await?;
    assert_eq!(page.status, 200);
    let summary = format!("2 of 4 agents applied revision {after}");
    assert!(page.body.contains(&summary), "{summary} in {}", page.body);
    assert!(
        page.body.contains(REFUSAL),
        "NACK error on the page: {}",
        page.body
    );
    assert!(page.body.contains(&nacker.id) && page.body.contains(&silent.id));
    assert!(
        !page.body.contains(&a.id),
        "an agent that applied is no laggard"
    );

    // The approval's confirmation in the UI.
    let id = pending_origin(&server, "https://shop.example.com").await?;
    let (_, shown) = approve_in_ui(&server, id).await?;
    let latest = revision(&server).await?;
    assert!(latest > after);
    let confirmation = format!(
        "Approved https://shop.example.com for {SERVICE} (#{id}). 2 of 4 agents applied revision {latest}"
    );
    assert!(
        shown.body.contains(&confirmation),
        "{confirmation} in {}",
        shown.body
    );
    assert!(
        shown.body.contains(REFUSAL),
        "NACK error in the confirmation: {}",
        shown.body
    );

    a.stop().await;
    b.stop().await;
    Ok(())
}

#[tokio::test]
async fn wait_applied_answers_once_every_agent_acked() -> Result<()> {
    let server = Server::start(false).await?;
    let token = server.agent_token("edge", &[SERVICE]).await?;
    let (a, _a_dir) = real_agent(&server, &token).await?;
    let late = RawAgent::start(&server, &token, Answer::Silent).await?;
    let start = revision(&server).await?;
    a.wait_revision(SERVICE, start).await?;
    late.wait_seen(start).await?;
    late.ack(start).await?;
    eventually("both applied", || async {
        rollout(&server)
            .await
            .is_ok_and(|r| r["agents"] == 2 && r["complete"] == true)
    })
    .await?;

    // The wait holds while one agent has not ACKed, and answers once it has.
    let id = pending_origin(&server, "https://app.example.com").await?;
    let request = {
        // Owned pieces, so the request runs while the test goes on.
        let url = server.api(&format!("/origins/{id}/approve?wait=applied&timeout=60s"));
        let bearer = server.user_token(Role::Approver)?;
        tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(bearer)
                .send()
                .await?;
            let status = response.status().as_u16();
            let body: Value = response.json().await?;
            anyhow::Ok((status, body))
        })
    };
    let after = eventually("the approval committed", || async {
        revision(&server).await.ok().filter(|r| *r > start)
    })
    .await?;
    a.wait_revision(SERVICE, after).await?;
    late.wait_seen(after).await?;
    eventually("the real agent's ACK recorded", || async {
        rollout(&server).await.is_ok_and(|r| r["applied"] == 1)
    })
    .await?;
    assert!(
        !request.is_finished(),
        "the wait answered while an agent had not applied the revision"
    );
    // The waiting replica hears ACKs through Postgres (any replica may
    // record them): it LISTENs while the request waits.
    eventually("a LISTEN on corsair_rollout", || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND query ILIKE 'LISTEN%corsair_rollout%'",
        )
        .fetch_one(server.db.store.pool())
        .await
        .is_ok_and(|n| n == 1)
    })
    .await?;
    late.ack(after).await?;
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), request).await???;
    assert_eq!(status, 200, "{body}");
    let waited = &body["rollout"];
    assert_eq!(waited["revision"], after, "{body}");
    assert_eq!(waited["complete"], true, "{body}");
    assert_eq!(waited["timed_out"], false, "{body}");
    assert_eq!(
        (waited["applied"].clone(), waited["agents"].clone()),
        (2.into(), 2.into())
    );
    assert_eq!(waited["laggards"], serde_json::json!([]), "{body}");

    // Revoke and a settings change wait the same way (the real agent ACKs;
    // the raw one is stopped, so it no longer counts).
    drop(late);
    eventually("the raw agent disconnected", || async {
        rollout(&server).await.is_ok_and(|r| r["agents"] == 1)
    })
    .await?;
    let (status, body) = api(
        &server,
        Role::Approver,
        reqwest::Method::POST,
        &format!("/origins/{id}/revoke?wait=applied&timeout=30s"),
        None,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "revoked");
    assert_eq!(body["rollout"]["complete"], true, "{body}");
    assert_eq!(
        body["rollout"]["revision"],
        revision(&server).await?,
        "{body}"
    );
    let (status, body) = api(
        &server,
        Role::Approver,
        reqwest::Method::PATCH,
        &format!("/services/{SERVICE}?wait=applied&timeout=30s"),
        Some(serde_json::json!({"max_age_secs": 600})),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["max_age_secs"], 600, "{body}");
    assert_eq!(body["rollout"]["revision"], body["revision"], "{body}");
    assert_eq!(body["rollout"]["complete"], true, "{body}");
    assert_eq!(body["rollout"]["applied"], 1, "{body}");
    let held = body["revision"].as_i64().context("revision")?;
    a.wait_revision(SERVICE, held).await?;

    // Without a wait the bodies are as before.
    let (_, body) = api(
        &server,
        Role::Approver,
        reqwest::Method::PATCH,
        &format!("/services/{SERVICE}"),
        Some(serde_json::json!({"max_age_secs": 60})),
    )
    .await?;
    assert!(body.get("rollout").is_none(), "{body}");
    a.stop().await;
    Ok(())
}

/// An agent that applied a revision and then lost its stream (the
/// connection cut, as a crash or a partition cuts it) is not in "k of N"
/// (it is not connected), but if it still runs it enforces the old policy
/// from its cache: the rollout counts it as unreachable, in the API, on the
/// service page and in the approval's confirmation, until it reconnects. An
/// agent that shut down cleanly (ended its stream) is not counted.
#[tokio::test]
async fn agents_that_lost_their_stream_holding_an_old_revision_are_counted() -> Result<()> {
    let server = Server::start(false).await?;
    let token = server.agent_token("edge", &[SERVICE]).await?;
    let start = revision(&server).await?;
    let balancer = corsair_test_support::balancer::Balancer::start(vec![server.grpc_addr]).await?;
    let lost = RawAgent::start_at(
        &format!("http://{}", balancer.addr),
        &token,
        Answer::Silent,
        None,
    )
    .await?;
    lost.wait_seen(start).await?;
    lost.ack(start).await?;
    let (retired, _dir) = real_agent(&server, &token).await?;
    retired.wait_revision(SERVICE, start).await?;
    eventually("2 connected, 2 applied", || async {
        rollout(&server)
            .await
            .is_ok_and(|r| r["agents"] == 2 && r["applied"] == 2 && r["unreachable"] == 0)
    })
    .await?;
    retired.stop().await;
    balancer.cut();
    let lost_id = lost.id.clone();
    drop(lost);
    eventually("both to count as disconnected", || async {
        rollout(&server).await.is_ok_and(|r| r["agents"] == 0)
    })
    .await?;
    // They hold the current revision: nothing to warn about yet.
    assert_eq!(rollout(&server).await?["unreachable"], 0);

    // A change neither can receive: only the one that lost its stream counts.
    let id = pending_origin(&server, "https://app.example.com").await?;
    let (mut approver, shown) = approve_in_ui(&server, id).await?;
    let now = rollout(&server).await?;
    assert_eq!(now["revision"], revision(&server).await?, "{now}");
    assert_eq!(
        (now["agents"].clone(), now["unreachable"].clone()),
        (0.into(), 1.into()),
        "the cleanly stopped agent is retired, the cut one unreachable: {now}"
    );
    assert_eq!(now["complete"], true, "no connected agent lags: {now}");
    let note = "1 agent heard from within 24 h lost its connection and holds an older revision";
    assert!(
        shown.body.contains(note),
        "{note} in the confirmation: {}",
        shown.body
    );
    let page = approver.get(&format!("/services/{SERVICE}")).await?;
    assert!(
        page.body.contains(note),
        "{note} on the service page: {}",
        page.body
    );

    // Back (same agent id) with the new revision applied: no longer counted.
    let latest = revision(&server).await?;
    let back = RawAgent::start_as(&server, &token, Answer::Silent, Some(&lost_id)).await?;
    back.wait_seen(latest).await?;
    back.ack(latest).await?;
    eventually(
        "the agent to count as connected and applied again",
        || async {
            rollout(&server)
                .await
                .is_ok_and(|r| r["agents"] == 1 && r["applied"] == 1 && r["unreachable"] == 0)
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn bad_wait_values_are_refused_before_anything_changes() -> Result<()> {
    let server = Server::start(false).await?;
    let id = pending_origin(&server, "https://app.example.com").await?;
    for (query, status, says) in [
        ("wait=soon", 422, "send wait=applied"),
        ("wait=applied&timeout=5m", 422, "at most timeout=60s"),
        ("wait=applied&timeout=ten", 422, "timeout=10s"),
        ("timeout=10s", 422, "wait=applied"),
        ("wait=applied&later=1", 400, "later"),
    ] {
        let (got, body) = api(
            &server,
            Role::Approver,
            reqwest::Method::POST,
            &format!("/origins/{id}/approve?{query}"),
            None,
        )
        .await?;
        assert_eq!(got, status, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{query}: {message}");
        assert_eq!(
            server.db.store.get_origin(id).await?.status,
            "pending",
            "{query} changed the origin"
        );
    }
    let (got, body) = api(
        &server,
        Role::Approver,
        reqwest::Method::PATCH,
        &format!("/services/{SERVICE}?wait=applied&timeout=2h"),
        Some(serde_json::json!({"max_age_secs": 600})),
    )
    .await?;
    assert_eq!(got, 422, "{body}");
    assert_eq!(
        server
            .db
            .store
            .get_service(SERVICE)
            .await?
            .settings
            .max_age_secs,
        0,
        "nothing changed"
    );
    let (got, _) = api(
        &server,
        Role::Viewer,
        reqwest::Method::GET,
        "/services/nope/rollout",
        None,
    )
    .await?;
    assert_eq!(got, 404);
    Ok(())
}
