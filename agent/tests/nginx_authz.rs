//! nginx `auth_request` + `corsair-agent authz` give the same answers as
//! the sidecar proxy, on every row of the engine's conformance table.
//!
//! For each policy fixture of the table this starts, for real:
//! - the `corsair-agent authz` binary and the `corsair-agent proxy` binary
//!   (the sidecar), both enforcing the fixture from a last-known-good cache
//!   file written by the agent's own cache writer (their control plane is
//!   an address nobody listens on, so they keep the cached policy);
//! - Debian's nginx, configured with `deploy/nginx/corsair.conf` itself
//!   (only its three addresses replaced), in front of
//! - one upstream (in this test) that counts its calls and, like the
//!   table's, grants CORS itself and sets `Vary: Accept-Encoding`.
//!
//! Every row is sent through nginx and through the sidecar; the status, the
//! exact `Access-Control-*` headers, `Vary` and whether the upstream was
//! called must be equal, and equal to the table's row. Then the two agents'
//! `/metrics` decision counters must be equal (each request decided and
//! counted exactly once through nginx), and so must their blocked-request
//! telemetry, read from the batches each agent spills to disk on shutdown.
//!
//! One row cannot survive HTTP/1.1 parsing unchanged (see
//! [`WIRE_NORMALISED`]); it is checked against the answer the wire gives.
//! Two more tests: nginx fails closed when the agent is down, and nginx's
//! own error answers (a dead upstream's 502) carry the decision.
//!
//! Needs nginx (`apt-get install -y nginx`; `.ci/run` installs it). Without
//! it the test fails, because a skipped test that passes hides a broken
//! set-up; `CORSAIR_SKIP_NGINX_TESTS=1` skips it on purpose (and says so).

mod conformance;
mod gateway_support;

use conformance::{Row, expand, rows, spec};
use gateway_support::{
    Answer, TestResult, decision_metrics, free_port, nginx_wanted, send, start_agent, start_nginx,
    telemetry, upstream,
};
use std::net::SocketAddr;

/// Rows whose request an HTTP/1.1 parser changes on the way in, with the
/// row (same policy) whose answer the wire gives instead. A field value's
/// trailing whitespace is not part of the value (RFC 9110 §5.5), so nginx
/// and the sidecar's hyper both hand the engine the trimmed, allowed origin;
/// the in-process table keeps the raw bytes.
const WIRE_NORMALISED: [(&str, &str); 1] = [("GET origin with trailing space", "GET allowed")];

/// The row whose answer `row` gets over HTTP/1.1 (itself, mostly).
fn on_the_wire<'a>(row: &'a Row, rows: &'a [Row]) -> &'a Row {
    WIRE_NORMALISED
        .iter()
        .find(|(name, _)| *name == row.name)
        .and_then(|(_, instead)| {
            rows.iter()
                .find(|r| r.name == *instead && r.policy == row.policy)
        })
        .unwrap_or(row)
}

/// The answer the table gives `row`.
fn expected(row: &Row) -> Answer {
    let mut cors: Vec<(String, String)> = row
        .cors
        .iter()
        .map(|(k, v)| (expand(k).to_owned(), (*v).to_owned()))
        .collect();
    cors.sort();
    Answer {
        status: row.status,
        cors,
        vary: row.vary.to_owned(),
        forwarded: row.forwarded,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_answers_like_the_sidecar() -> TestResult {
    if !nginx_wanted()? {
        return Ok(());
    }
    let upstream = upstream().await?;
    let rows = rows();
    assert!(rows.len() >= 150, "only {} rows", rows.len());
    for (name, instead) in WIRE_NORMALISED {
        assert!(
            rows.iter().any(|r| r.name == name) && rows.iter().any(|r| r.name == instead),
            "WIRE_NORMALISED names a row the table no longer has: {name} / {instead}"
        );
    }
    let mut policies: Vec<&str> = Vec::new();
    for row in &rows {
        if !policies.contains(&row.policy) {
            policies.push(row.policy);
        }
    }
    let mut failures = Vec::new();
    for policy in policies {
        let fixture = spec(policy);
        let authz = start_agent("authz", &["authz".into()], fixture.as_ref()).await?;
        let proxy_args = [
            "proxy".to_string(),
            "--upstream".into(),
            format!("http://{}", upstream.addr),
        ];
        let sidecar = start_agent("sidecar", &proxy_args, fixture.as_ref()).await?;
        let mut nginx = start_nginx(authz.listen, upstream.addr).await?;

        let mut refusals = 0;
        for row in rows.iter().filter(|r| r.policy == policy) {
            let via_nginx = send(nginx.addr, row, &upstream).await?;
            let via_sidecar = send(sidecar.listen, row, &upstream).await?;
            let wire = on_the_wire(row, &rows);
            let expected = expected(wire);
            if via_nginx != via_sidecar {
                failures.push(format!(
                    "[{policy}] {}: nginx {via_nginx:?} != sidecar {via_sidecar:?}",
                    row.name
                ));
            } else if via_nginx != expected {
                failures.push(format!(
                    "[{policy}] {}: both answered {via_nginx:?}, the table says {expected:?}",
                    row.name
                ));
            }
            refusals += usize::from(wire.reason.is_some());
        }

        // Each request through nginx was decided and counted exactly once,
        // like the sidecar's.
        let (m_authz, m_sidecar) = (
            decision_metrics(authz.admin).await?,
            decision_metrics(sidecar.admin).await?,
        );
        let blocked = m_authz
            .get("corsair_agent_blocked_total{service=\"svc\"}")
            .cloned();
        if m_authz != m_sidecar {
            failures.push(format!(
                "[{policy}] /metrics differ:\n  authz   {m_authz:?}\n  sidecar {m_sidecar:?}"
            ));
        } else if blocked != (refusals > 0).then(|| refusals.to_string()) {
            failures.push(format!(
                "[{policy}] {refusals} refusals in the table, blocked counter {blocked:?}"
            ));
        }

        // Blocked-request telemetry: the batches each agent queued for upload.
        if !nginx.process.stop().await?.success() {
            failures.push(format!("[{policy}] nginx did not exit cleanly"));
        }
        let (mut authz, mut sidecar) = (authz, sidecar);
        for agent in [&mut authz, &mut sidecar] {
            if !agent.process.stop().await?.success() {
                failures.push(format!(
                    "[{policy}] {} did not exit cleanly on SIGTERM",
                    agent.process.name
                ));
            }
        }
        let (t_authz, t_sidecar) = (
            telemetry(authz.cache.path())?,
            telemetry(sidecar.cache.path())?,
        );
        let events: u64 = t_authz.values().sum();
        if t_authz != t_sidecar {
            failures.push(format!(
                "[{policy}] telemetry differs:\n  authz   {t_authz:?}\n  sidecar {t_sidecar:?}"
            ));
        } else if events != refusals as u64 {
            failures.push(format!(
                "[{policy}] {refusals} refusals in the table, {events} in telemetry"
            ));
        }
        drop(nginx.prefix);
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_fails_closed_when_the_agent_is_down() -> TestResult {
    if !nginx_wanted()? {
        return Ok(());
    }
    let upstream = upstream().await?;
    // Nobody listens on the agent's address.
    let agent: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let mut nginx = start_nginx(agent, upstream.addr).await?;
    let rows = rows();
    for name in ["GET allowed", "pf put + header"] {
        let row = rows
            .iter()
            .find(|r| r.name == name && r.policy == "basic")
            .ok_or("row missing")?;
        let answer = send(nginx.addr, row, &upstream).await?;
        assert_eq!(answer.status, 500, "{name}: {answer:?}");
        assert!(!answer.forwarded, "{name}: the upstream was called");
        assert!(answer.cors.is_empty(), "{name}: {answer:?}");
    }
    assert!(
        nginx.process.stop().await?.success(),
        "nginx did not exit cleanly"
    );
    Ok(())
}

/// nginx's own error answers carry the decision too (`add_header ...
/// always`), as the sidecar's own answers do: a dead upstream gives the
/// allowed origin a readable 502, not a CORS failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_own_errors_carry_the_decision() -> TestResult {
    if !nginx_wanted()? {
        return Ok(());
    }
    // Counts nothing: nginx never reaches it.
    let unused = upstream().await?;
    let mut agent = start_agent("authz", &["authz".into()], spec("basic").as_ref()).await?;
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let mut nginx = start_nginx(agent.listen, dead).await?;
    let rows = rows();
    let find = |name: &str| {
        rows.iter()
            .find(|r| r.name == name && r.policy == "basic")
            .ok_or("row missing")
    };
    let allowed = send(nginx.addr, find("GET allowed")?, &unused).await?;
    assert_eq!(allowed.status, 502, "{allowed:?}");
    assert_eq!(
        allowed.cors,
        [
            (
                "access-control-allow-origin".to_owned(),
                conformance::APP.to_owned()
            ),
            (
                "access-control-expose-headers".to_owned(),
                "x-request-id".to_owned()
            ),
        ],
        "{allowed:?}"
    );
    assert_eq!(allowed.vary, "Origin");
    let refused = send(nginx.addr, find("GET disallowed origin")?, &unused).await?;
    assert_eq!(refused.status, 502, "{refused:?}");
    assert!(refused.cors.is_empty(), "{refused:?}");
    assert_eq!(refused.vary, "Origin");
    // A preflight never needs the upstream.
    let preflight = send(nginx.addr, find("pf put + header")?, &unused).await?;
    assert_eq!(preflight.status, 204, "{preflight:?}");
    assert!(
        nginx.process.stop().await?.success(),
        "nginx did not exit cleanly"
    );
    assert!(
        agent.process.stop().await?.success(),
        "the agent did not exit cleanly"
    );
    Ok(())
}
