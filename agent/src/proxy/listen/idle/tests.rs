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
