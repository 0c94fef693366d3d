//! Transport security end to end: the real `corsair-control-plane serve`
//! and `corsair-agent proxy` binaries over real sockets, real Postgres,
//! certificates generated here. TLS and mTLS work; a wrong CA, a missing or
//! foreign client certificate and expired certificates are refused with a
//! clear error on both sides; a renewed server certificate reaches new
//! connections while an open agent stream carries on; a rotated token file
//! is used without a restart. See `tls_support` for how the agent binary is
//! found.

mod grpc_support;
mod tls_support;

use grpc_support::TestResult;
use tls_support::{
    Agent, AgentTls, Ca, ControlPlane, ServeTls, agent_binary, https_client, last_error,
    presented_certificate, replace_file, revision, tls_secret,
};

fn trusting(ca: &Ca) -> AgentTls {
    AgentTls {
        ca_pem: Some(ca.pem()),
        client: None,
    }
}

#[tokio::test]
async fn agent_syncs_over_tls_and_rest_answers_over_https() -> TestResult {
    let ca = Ca::new("corsair test CA")?;
    let cp = ControlPlane::start(ServeTls {
        server: &ca.server()?,
        client_ca: None,
    })
    .await?;
    let rev = cp
        .db
        .create_service("payments", &["https://app.example.com"])
        .await?;
    let token = cp.db.token(&["payments"]).await?;
    let mut agent = Agent::start(&cp, "payments", &token, trusting(&ca)).await?;

    let status = agent
        .wait_status("payments synced over https", |s| {
            revision(s, "payments") == Some(rev)
        })
        .await?;
    assert_eq!(status["connected"], true, "{status}");
    let id = agent.agent_id().ok_or("no agent id")?;
    cp.db.wait_applied(&id, "payments", rev).await?;

    // The HTTP listener (API, UI, metrics) is TLS too.
    let client = https_client(&ca)?;
    let openapi = client.get(cp.https("/api/v1/openapi.json")).send().await?;
    assert_eq!(openapi.status(), 200);
    assert!(openapi.text().await?.contains("openapi"));
    let metrics = client.get(cp.https("/metrics")).send().await?;
    assert_eq!(metrics.status(), 200);
    // ... and only TLS: plain HTTP on that port gets no answer.
    let plain = reqwest::get(format!("http://{}/api/v1/openapi.json", cp.http)).await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    Ok(())
}

#[tokio::test]
async fn mtls_accepts_only_agents_with_a_certificate_from_the_client_ca() -> TestResult {
    let ca = Ca::new("corsair server CA")?;
    let agents_ca = Ca::new("corsair agents CA")?;
    let mut cp = ControlPlane::start(ServeTls {
        server: &ca.server()?,
        client_ca: Some(&agents_ca),
    })
    .await?;
    let rev = cp
        .db
        .create_service("orders", &["https://shop.example.com"])
        .await?;
    let token = cp.db.token(&["orders"]).await?;

    let mut good = Agent::start(
        &cp,
        "orders",
        &token,
        AgentTls {
            ca_pem: Some(ca.pem()),
            client: Some(agents_ca.client("gateway-1")?),
        },
    )
    .await?;
    good.wait_status("the agent with a client certificate synced", |s| {
        revision(s, "orders") == Some(rev)
    })
    .await?;

    // No client certificate: the control plane ends the handshake.
    let mut bare = Agent::start(&cp, "orders", &token, trusting(&ca)).await?;
    let status = bare
        .wait_status("the agent without a certificate refused", |s| {
            last_error(s).contains("certificate")
        })
        .await?;
    assert_eq!(status["connected"], false, "{status}");
    assert!(
        last_error(&status).contains("client certificate"),
        "the agent should say a client certificate is required: {status}"
    );
    cp.process.wait_log("peer sent no certificates").await?;

    // A certificate from another CA, and an expired one from the right CA.
    let rogue_ca = Ca::new("someone else's CA")?;
    let mut rogue = Agent::start(
        &cp,
        "orders",
        &token,
        AgentTls {
            ca_pem: Some(ca.pem()),
            client: Some(rogue_ca.client("intruder")?),
        },
    )
    .await?;
    let mut expired = Agent::start(
        &cp,
        "orders",
        &token,
        AgentTls {
            ca_pem: Some(ca.pem()),
            client: Some(agents_ca.expired_client("old-gateway")?),
        },
    )
    .await?;
    for (agent, what) in [(&mut rogue, "foreign"), (&mut expired, "expired")] {
        let status = agent
            .wait_status(
                &format!("the agent with a {what} certificate refused"),
                |s| last_error(s).contains("client certificate"),
            )
            .await?;
        assert_eq!(status["connected"], false, "{what}: {status}");
        assert!(
            agent
                .sync_status()
                .await
                .is_some_and(|s| s["services"]["orders"]["revision"].is_null()),
            "{what}: no policy may reach a refused agent"
        );
    }
    cp.process.wait_log("UnknownIssuer").await?;
    cp.process.wait_log("expired").await?;

    // None of the refused agents ever reached the stream.
    for agent in [&bare, &rogue, &expired] {
        if let Some(id) = agent.agent_id() {
            assert!(
                !cp.db.agent_connected(&id).await?,
                "refused agent {id} connected"
            );
        }
    }
    // The HTTP listener asks browsers for no certificate.
    let ui = https_client(&ca)?
        .get(cp.https("/api/v1/openapi.json"))
        .send()
        .await?;
    assert_eq!(ui.status(), 200);
    Ok(())
}

#[tokio::test]
async fn wrong_ca_and_expired_server_certificate_are_refused() -> TestResult {
    let ca = Ca::new("corsair test CA")?;
    let other_ca = Ca::new("not the control plane's CA")?;

    let mut cp = ControlPlane::start(ServeTls {
        server: &ca.server()?,
        client_ca: None,
    })
    .await?;
    cp.db.create_service("search", &[]).await?;
    let token = cp.db.token(&["search"]).await?;
    let mut wrong_ca = Agent::start(&cp, "search", &token, trusting(&other_ca)).await?;
    let status = wrong_ca
        .wait_status("the agent trusting another CA refused", |s| {
            !last_error(s).is_empty()
        })
        .await?;
    assert_eq!(status["connected"], false, "{status}");
    let error = last_error(&status);
    assert!(
        error.contains("invalid peer certificate") && error.contains("unknownissuer"),
        "the agent should say the certificate's issuer is unknown: {status}"
    );
    wrong_ca
        .process
        .wait_log("policy stream down; reconnecting")
        .await?;
    cp.process.wait_log("TLS handshake failed").await?;

    let mut expired_cp = ControlPlane::start(ServeTls {
        server: &ca.expired_server()?,
        client_ca: None,
    })
    .await?;
    expired_cp.db.create_service("search", &[]).await?;
    let token = expired_cp.db.token(&["search"]).await?;
    let mut agent = Agent::start(&expired_cp, "search", &token, trusting(&ca)).await?;
    let status = agent
        .wait_status("the agent refusing an expired certificate", |s| {
            !last_error(s).is_empty()
        })
        .await?;
    assert_eq!(status["connected"], false, "{status}");
    assert!(
        last_error(&status).contains("expired"),
        "the agent should say the certificate expired: {status}"
    );
    expired_cp.process.wait_log("TLS handshake failed").await?;
    for (cp, agent) in [(&cp, &wrong_ca), (&expired_cp, &agent)] {
        if let Some(id) = agent.agent_id() {
            assert!(!cp.db.agent_connected(&id).await?);
        }
    }
    Ok(())
}

#[tokio::test]
async fn renewed_certificate_reaches_new_connections_while_the_open_stream_stays() -> TestResult {
    let ca = Ca::new("corsair test CA")?;
    let first = ca.server()?;
    let mut cp = ControlPlane::start(ServeTls {
        server: &first,
        client_ca: None,
    })
    .await?;
    let rev1 = cp
        .db
        .create_service("billing", &["https://a.example.com"])
        .await?;
    let token = cp.db.token(&["billing"]).await?;
    let mut agent = Agent::start(&cp, "billing", &token, trusting(&ca)).await?;
    let before = agent
        .wait_status("first revision", |s| revision(s, "billing") == Some(rev1))
        .await?;
    assert_eq!(presented_certificate(cp.grpc, &ca).await?, first.der);
    assert_eq!(presented_certificate(cp.http, &ca).await?, first.der);

    // cert-manager renews: kubelet swaps the Secret's `..data` symlink.
    let renewed = ca.server()?;
    cp.secret.update(&tls_secret(&renewed))?;
    cp.process.wait_log("TLS certificate reloaded").await?;
    assert_eq!(presented_certificate(cp.grpc, &ca).await?, renewed.der);
    assert_eq!(presented_certificate(cp.http, &ca).await?, renewed.der);

    // The stream opened with the old certificate still delivers.
    let rev2 = cp
        .db
        .approve_origin("billing", "https://b.example.com")
        .await?;
    let after = agent
        .wait_status("second revision on the same stream", |s| {
            revision(s, "billing") == Some(rev2)
        })
        .await?;
    assert_eq!(after["connected"], true, "{after}");
    assert_eq!(
        after["reconnects"], before["reconnects"],
        "the agent reconnected: {after}"
    );

    // A broken renewal is refused and the good certificate stays.
    cp.secret.update(&[
        ("tls.crt", "-----BEGIN CERTIFICATE-----\nnot base64\n"),
        ("tls.key", &renewed.key_pem),
    ])?;
    cp.process
        .wait_log("TLS files changed but are unusable; keeping the certificate in use")
        .await?;
    assert_eq!(presented_certificate(cp.grpc, &ca).await?, renewed.der);
    let rev3 = cp.db.bump("billing").await?;
    let last = agent
        .wait_status("third revision", |s| revision(s, "billing") == Some(rev3))
        .await?;
    assert_eq!(last["reconnects"], before["reconnects"], "{last}");
    Ok(())
}

#[tokio::test]
async fn rotated_token_file_is_used_without_a_restart() -> TestResult {
    let ca = Ca::new("corsair test CA")?;
    let cp = ControlPlane::start(ServeTls {
        server: &ca.server()?,
        client_ca: None,
    })
    .await?;
    let rev = cp.db.create_service("profile", &[]).await?;
    // Signed with the right key, but not (or no longer) issued.
    let stale = cp.db.unlisted_token(&["profile"])?;
    let mut agent = Agent::start(&cp, "profile", &stale, trusting(&ca)).await?;
    let status = agent
        .wait_status("the stale token refused", |s| {
            last_error(s).contains("unauthenticated")
        })
        .await?;
    assert!(revision(&status, "profile").is_none());
    agent.process.wait_log("CONTROL PLANE REFUSED").await?;
    let pid = agent.process.child.id();

    // The Secret is updated; the refusal backoff (30 s and up) is cut short.
    replace_file(&agent.token_file, &cp.db.token(&["profile"]).await?)?;
    agent
        .wait_status("synced with the rotated token", |s| {
            revision(s, "profile") == Some(rev)
        })
        .await?;
    agent
        .process
        .wait_log("agent token file changed; reconnecting now")
        .await?;
    assert_eq!(agent.process.child.id(), pid, "the agent restarted");
    assert!(agent.process.child.try_wait()?.is_none());
    Ok(())
}

#[tokio::test]
async fn unusable_tls_settings_fail_at_start_naming_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n")?;
    let missing = dir.path().join("missing.pem");
    let serve = |cert: &std::path::Path, key: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_corsair-control-plane"))
            .arg("serve")
            // Never reached: the TLS files are checked first.
            .args(["--database-url", "postgres://nobody@127.0.0.1:1/none"])
            .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
            .arg("--signing-key-file")
            .arg(dir.path().join("key"))
            .arg("--tls-cert-file")
            .arg(cert)
            .arg("--tls-key-file")
            .arg(key)
            .output()
    };
    let out = serve(&missing, &garbage)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    let out = serve(&garbage, &garbage)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&garbage.display().to_string()) && stderr.contains("no CERTIFICATE"),
        "{stderr}"
    );

    // The agent: exactly one of --token / --token-file; TLS files need https.
    let agent = |extra: &[&str]| {
        std::process::Command::new(agent_binary()?)
            .args(["proxy", "--service", "s", "--listen", "127.0.0.1:0"])
            .args(["--upstream", "http://127.0.0.1:9", "--cache-dir"])
            .arg(dir.path().join("cache"))
            .args(extra)
            .env_remove("CORSAIR_TOKEN")
            .env_remove("CORSAIR_TOKEN_FILE")
            .output()
            .map_err(tls_support::AnyError::from)
    };
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "t\n")?;
    let token_file = token_file.display().to_string();
    let url = ["--control-plane", "https://127.0.0.1:1"];
    let both = agent(&[&url[..], &["--token", "t", "--token-file", &token_file]].concat())?;
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
    let neither = agent(&url)?;
    assert!(!neither.status.success());
    assert!(String::from_utf8_lossy(&neither.stderr).contains("--token"));
    let missing_ca = missing.display().to_string();
    let out = agent(
        &[
            &url[..],
            &["--token-file", &token_file, "--ca-file", &missing_ca],
        ]
        .concat(),
    )?;
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&missing_ca), "{text}");
    let plain = agent(&[
        "--control-plane",
        "http://127.0.0.1:1",
        "--token-file",
        &token_file,
        "--ca-file",
        &garbage.display().to_string(),
    ])?;
    assert!(!plain.status.success());
    let text = String::from_utf8_lossy(&plain.stdout).to_string()
        + &String::from_utf8_lossy(&plain.stderr);
    assert!(text.contains("need an https://"), "{text}");
    Ok(())
}
