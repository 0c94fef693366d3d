use super::*;

fn config(url: &str, token: TokenSource, tls: ClientTls) -> ControlPlaneConfig {
    ControlPlaneConfig {
        url: url.into(),
        token,
        tls,
    }
}

const TIMEOUT: Duration = Duration::from_secs(1);

#[test]
fn token_file_is_read_at_every_use_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "first\n").unwrap();
    let cp = ControlPlane::new(
        config(
            "http://cp:50051",
            TokenSource::File(path.clone()),
            ClientTls::default(),
        ),
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(cp.authorization().unwrap(), "Bearer first");
    std::fs::write(&path, "  second  ").unwrap();
    assert_eq!(cp.authorization().unwrap(), "Bearer second");
    std::fs::write(&path, "\n").unwrap();
    let error = cp.authorization().unwrap_err().to_string();
    assert!(
        error.contains("empty") && error.contains("token"),
        "{error}"
    );
    std::fs::remove_file(&path).unwrap();
    let error = cp.authorization().unwrap_err();
    assert!(error.to_string().contains(&path.display().to_string()));
    // At run time a vanished file is retried, not fatal.
    assert_eq!(
        tonic::Status::from(error).code(),
        tonic::Code::FailedPrecondition
    );
}

#[test]
fn start_up_checks_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello").unwrap();
    let inline = || TokenSource::Inline("t".into());
    let cases: Vec<(ControlPlaneConfig, String)> = vec![
        (
            config(
                "http://cp:1",
                TokenSource::File(missing.clone()),
                ClientTls::default(),
            ),
            missing.display().to_string(),
        ),
        (
            config(
                "http://cp:1",
                inline(),
                ClientTls {
                    ca_file: Some(garbage.clone()),
                    ..ClientTls::default()
                },
            ),
            "need an https://".into(),
        ),
        (
            config(
                "https://cp:1",
                inline(),
                ClientTls {
                    ca_file: Some(garbage.clone()),
                    ..ClientTls::default()
                },
            ),
            format!("{}: no CERTIFICATE", garbage.display()),
        ),
        (
            config(
                "https://cp:1",
                inline(),
                ClientTls {
                    ca_file: Some(missing.clone()),
                    ..ClientTls::default()
                },
            ),
            missing.display().to_string(),
        ),
        (
            config(
                "https://cp:1",
                inline(),
                ClientTls {
                    client_cert_file: Some(garbage.clone()),
                    ..ClientTls::default()
                },
            ),
            "go together".into(),
        ),
        (
            config("ftp://cp:1", inline(), ClientTls::default()),
            "http:// or https://".into(),
        ),
        (
            config(
                "http://cp:1",
                TokenSource::Inline("bad\ntoken".into()),
                ClientTls::default(),
            ),
            "not allowed in a header".into(),
        ),
    ];
    for (config, expected) in cases {
        let error = ControlPlane::new(config.clone(), TIMEOUT)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&expected),
            "{config:?}: {error:?} lacks {expected:?}"
        );
    }
}

#[test]
fn inline_tokens_never_show_in_debug_output() {
    let shown = format!("{:?}", ControlPlaneConfig::new("http://cp:1", "s3cret"));
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[test]
fn tls_failures_come_with_what_to_do() {
    let hint = |e: &str| tls::hint(e).unwrap_or_default();
    assert!(hint("received fatal alert: CertificateRequired").contains("--client-cert-file"));
    assert!(hint("invalid peer certificate: UnknownIssuer").contains("--ca-file"));
    assert!(
        hint("h2 protocol error: http2 error: connection error detected: frame with invalid size")
            .contains("https://")
    );
    assert!(hint("received fatal alert: UnknownCA").contains("client CA"));
    assert!(tls::hint("connection refused").is_none());
}
