//! The agent's sync client against a scripted in-process PolicySync server
//! (real gRPC over 127.0.0.1:0; no control plane, no database).

use corsair_agent::handle::PolicyHandle;
use corsair_agent::sync::{SyncClient, SyncConfig, SyncError, SyncStatus, cache};
use corsair_proto::v1::policy_sync_server::{PolicySync, PolicySyncServer};
use corsair_proto::v1::{
    AgentMessage, ControlMessage, Hello, Mode, PolicySnapshot, agent_message, control_message,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

type AnyError = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), AnyError>;
const DEADLINE: Duration = Duration::from_secs(20);

/// What the scripted server does with each stream.
#[derive(Clone)]
enum Script {
    Refuse(Code),
    Send(Vec<PolicySnapshot>),
}

#[derive(Clone)]
struct Fake {
    script: Script,
    hellos: Arc<Mutex<Vec<Hello>>>,
    replies: mpsc::UnboundedSender<agent_message::Msg>,
}

#[tonic::async_trait]
impl PolicySync for Fake {
    type SyncStream = ReceiverStream<Result<ControlMessage, Status>>;

    async fn sync(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        let mut inbound = request.into_inner();
        let Some(AgentMessage {
            msg: Some(agent_message::Msg::Hello(hello)),
        }) = inbound.message().await?
        else {
            return Err(Status::invalid_argument("hello first"));
        };
        if let Ok(mut hellos) = self.hellos.lock() {
            hellos.push(hello);
        }
        let snapshots = match &self.script {
            Script::Refuse(code) => return Err(Status::new(*code, "scripted refusal")),
            Script::Send(snapshots) => snapshots.clone(),
        };
        let (tx, rx) = mpsc::channel(16);
        let replies = self.replies.clone();
        tokio::spawn(async move {
            for snapshot in snapshots {
                let msg = ControlMessage {
                    msg: Some(control_message::Msg::Snapshot(snapshot)),
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
            while let Ok(Some(AgentMessage { msg: Some(msg) })) = inbound.message().await {
                let _ = replies.send(msg);
            }
            drop(tx);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct Server {
    addr: SocketAddr,
    hellos: Arc<Mutex<Vec<Hello>>>,
    replies: mpsc::UnboundedReceiver<agent_message::Msg>,
    _stop: oneshot::Sender<()>,
}

async fn serve(script: Script) -> Result<Server, AnyError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (replies_tx, replies) = mpsc::unbounded_channel();
    let hellos = Arc::new(Mutex::new(Vec::new()));
    let fake = Fake {
        script,
        hellos: hellos.clone(),
        replies: replies_tx,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PolicySyncServer::new(fake))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    Ok(Server {
        addr,
        hellos,
        replies,
        _stop: stop,
    })
}

fn snapshot(revision: i64, origins: &[&str]) -> PolicySnapshot {
    PolicySnapshot {
        service: "svc".into(),
        revision,
        origins: origins.iter().map(|o| o.to_string()).collect(),
        mode: Mode::Enforce as i32,
        ..PolicySnapshot::default()
    }
}

fn cached(revision: i64, origins: &[&str]) -> corsair_agent::sync::Snapshot {
    corsair_agent::sync::Snapshot {
        service: "svc".into(),
        revision,
        spec: Some(corsair_agent::engine::PolicySpec {
            origins: origins.iter().map(|o| o.to_string()).collect(),
            ..Default::default()
        }),
    }
}

fn client(addr: SocketAddr, cache_dir: &Path) -> Result<(SyncClient, PolicyHandle), SyncError> {
    let mut config = SyncConfig::new(
        format!("http://{addr}"),
        "token",
        "test",
        ["svc"],
        cache_dir,
    );
    config.retry_base = Duration::from_millis(20);
    config.retry_max = Duration::from_millis(200);
    config.refused_base = Duration::from_millis(50);
    config.refused_max = Duration::from_millis(200);
    let handle = PolicyHandle::new();
    let client = SyncClient::new(config, HashMap::from([("svc".to_string(), handle.clone())]))?;
    Ok((client, handle))
}

async fn next_reply(server: &mut Server) -> Result<agent_message::Msg, AnyError> {
    Ok(tokio::time::timeout(DEADLINE, server.replies.recv())
        .await?
        .ok_or("no reply")?)
}

async fn wait_status(
    status: &mut watch::Receiver<SyncStatus>,
    what: &str,
    f: impl FnMut(&SyncStatus) -> bool,
) {
    let result = tokio::time::timeout(DEADLINE, status.wait_for(f)).await;
    assert!(matches!(result, Ok(Ok(_))), "timed out waiting for {what}");
}

#[tokio::test]
async fn bad_snapshots_are_nacked_and_the_good_one_stays() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut server = serve(Script::Send(vec![
        snapshot(5, &["https://good.example.com"]),
        PolicySnapshot {
            mode: 0,
            ..snapshot(6, &["https://x.example.com"])
        },
        snapshot(7, &["https://*.com"]),
    ]))
    .await?;
    let (client, handle) = client(server.addr, dir.path())?;
    let mut status = client.status();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(client.run(async {
        let _ = stopped.await;
    }));

    match next_reply(&mut server).await? {
        agent_message::Msg::Ack(ack) => {
            assert_eq!((ack.service.as_str(), ack.revision), ("svc", 5))
        }
        other => panic!("expected ACK 5, got {other:?}"),
    }
    for revision in [6, 7] {
        match next_reply(&mut server).await? {
            agent_message::Msg::Nack(nack) => {
                assert_eq!(nack.revision, revision);
                assert!(!nack.error.is_empty());
            }
            other => panic!("expected NACK {revision}, got {other:?}"),
        }
    }
    wait_status(&mut status, "NACK 7 in status", |s| {
        s.services["svc"]
            .last_nack
            .as_ref()
            .is_some_and(|n| n.0 == 7)
    })
    .await;
    assert_eq!(
        handle.load().map(|p| p.revision),
        Some(5),
        "the refused snapshots changed nothing"
    );
    let cached = cache::read_snapshot(dir.path(), "svc")?.ok_or("cached")?;
    assert_eq!(cached.revision, 5, "only applied snapshots are cached");

    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, task).await???;
    Ok(())
}

#[tokio::test]
async fn unimplemented_is_fatal_but_the_policy_stays() -> TestResult {
    let dir = tempfile::tempdir()?;
    cache::write_snapshot(dir.path(), &cached(3, &["https://a.example.com"]))?;
    let server = serve(Script::Refuse(Code::Unimplemented)).await?;
    let (client, handle) = client(server.addr, dir.path())?;
    let status = client.status();
    let result = tokio::time::timeout(DEADLINE, client.run(std::future::pending())).await?;
    assert!(
        matches!(result, Err(SyncError::Fatal(ref s)) if s.code() == Code::Unimplemented),
        "{result:?}"
    );
    assert!(status.borrow().stopped);
    assert_eq!(handle.load().map(|p| p.revision), Some(3));
    Ok(())
}

#[tokio::test]
async fn refused_token_keeps_retrying_with_the_cached_policy() -> TestResult {
    let dir = tempfile::tempdir()?;
    cache::write_snapshot(dir.path(), &cached(9, &[]))?;
    let server = serve(Script::Refuse(Code::Unauthenticated)).await?;
    let (client, handle) = client(server.addr, dir.path())?;
    let mut status = client.status();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(client.run(async {
        let _ = stopped.await;
    }));
    wait_status(&mut status, "several refused attempts", |s| {
        s.reconnects >= 2
    })
    .await;
    let s = status.borrow().clone();
    assert!(!s.connected && !s.stopped && s.ready(), "{s:?}");
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("Unauthenticated")),
        "{s:?}"
    );
    assert_eq!(handle.load().map(|p| p.revision), Some(9));
    // The Hello reported the cached revision.
    let hello = server
        .hellos
        .lock()
        .map_err(|_| "poisoned")?
        .first()
        .cloned()
        .ok_or("no hello")?;
    assert_eq!(hello.revisions.get("svc"), Some(&9));
    assert_eq!(hello.services, vec!["svc".to_string()]);
    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, task).await???;
    Ok(())
}

#[tokio::test]
async fn corrupt_cache_is_ignored_at_start_up() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        cache::snapshot_path(dir.path(), "svc"),
        b"corsair-snapshot v1 sha256=00\n{}",
    )?;
    let (client, handle) = client("127.0.0.1:9".parse()?, dir.path())?;
    assert!(handle.load().is_none(), "fails closed");
    assert!(!client.status().borrow().ready());
    Ok(())
}
