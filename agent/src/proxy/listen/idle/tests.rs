use super::*;

const LIMIT: Duration = Duration::from_secs(1);

/// Whether `idle` has run out, polled once now.
async fn expired(idle: &mut Idle) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(idle.poll_expired(cx).is_ready())).await
}

#[tokio::test(start_paused = true)]
async fn a_connection_without_requests_expires_a_limit_after_it_started() {
    let mut idle = Idle::new(LIMIT);
    tokio::time::advance(LIMIT - Duration::from_millis(1)).await;
    assert!(!expired(&mut idle).await);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(expired(&mut idle).await);
}

#[tokio::test(start_paused = true)]
async fn it_expires_a_limit_after_the_last_request_ends() {
    let mut idle = Idle::new(LIMIT);
    let activity = idle.activity();
    let first = activity.start();
    let second = activity.start();
    tokio::time::advance(LIMIT * 3).await;
    assert!(!expired(&mut idle).await, "two requests in flight");
    drop(first);
    tokio::time::advance(LIMIT * 2).await;
    assert!(!expired(&mut idle).await, "one request still in flight");
    drop(second);
    tokio::time::advance(LIMIT / 2).await;
    assert!(!expired(&mut idle).await, "idle for half the limit");
    tokio::time::advance(LIMIT / 2).await;
    assert!(expired(&mut idle).await, "idle for the limit");
}

#[tokio::test(start_paused = true)]
async fn a_request_that_starts_and_ends_between_checks_counts() {
    let mut idle = Idle::new(LIMIT);
    let activity = idle.activity();
    tokio::time::advance(LIMIT / 2).await;
    drop(activity.start());
    tokio::time::advance(LIMIT * 3 / 4).await;
    assert!(
        !expired(&mut idle).await,
        "a request ended a quarter limit ago"
    );
    tokio::time::advance(LIMIT / 4).await;
    assert!(expired(&mut idle).await);
}

/// A drain already under way when a connection is handed to hyper (the
/// request's bytes read, as `sniff` or the fast path hand them over) still
/// answers that request, then closes, instead of cancelling the connection
/// before hyper has read anything.
#[tokio::test]
async fn a_request_handed_over_during_a_drain_is_answered() -> Result<(), Box<dyn std::error::Error>>
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client, server) = tokio::io::duplex(4096);
    client
        .write_all(b"POST /items HTTP/1.1\r\nhost: api.test\r\ncontent-length: 2\r\n\r\n{}")
        .await?;
    let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
        Ok::<_, std::convert::Infallible>(Response::new(
            http_body_util::Empty::<bytes::Bytes>::new(),
        ))
    });
    let builder = super::super::builder(LIMIT);
    let conn = builder
        .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(server), service)
        .into_owned();
    // The drain has started: `stop` is ready at the first poll.
    let served = Served::new(conn, std::future::ready(()), None);
    tokio::time::timeout(Duration::from_secs(5), served)
        .await?
        .map_err(|e| format!("connection failed: {e}"))?;
    let mut answer = String::new();
    client.read_to_string(&mut answer).await?;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    Ok(())
}
