use super::*;
use crate::engine::PolicySpec;

fn snapshot(service: &str) -> Snapshot {
    Snapshot {
        service: service.into(),
        revision: 42,
        spec: Some(PolicySpec {
            origins: vec!["https://app.example.com".into()],
            allow_methods: vec!["PUT".into()],
            allow_credentials: true,
            max_age_secs: 600,
            ..PolicySpec::default()
        }),
    }
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(
        read_snapshot(dir.path(), "payments")
            .expect("read")
            .is_none()
    );
    write_snapshot(dir.path(), &snapshot("payments")).expect("write");
    assert_eq!(
        read_snapshot(dir.path(), "payments").expect("read"),
        Some(snapshot("payments"))
    );
    // Absent services round-trip too.
    let absent = Snapshot {
        service: "gone".into(),
        revision: 0,
        spec: None,
    };
    write_snapshot(dir.path(), &absent).expect("write");
    assert_eq!(
        read_snapshot(dir.path(), "gone").expect("read"),
        Some(absent)
    );
    // No temp files left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn corrupt_files_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_snapshot(dir.path(), &snapshot("svc")).expect("write");
    let path = snapshot_path(dir.path(), "svc");
    let good = fs::read(&path).expect("read");

    // One flipped byte in the body.
    let mut flipped = good.clone();
    let last = flipped.len() - 2;
    flipped[last] ^= 0x01;
    fs::write(&path, &flipped).expect("write");
    assert!(matches!(
        read_snapshot(dir.path(), "svc"),
        Err(CacheError::Corrupt { .. })
    ));

    // Truncated.
    fs::write(&path, &good[..good.len() / 2]).expect("write");
    assert!(matches!(
        read_snapshot(dir.path(), "svc"),
        Err(CacheError::Corrupt { .. })
    ));

    // Garbage without a header.
    fs::write(&path, b"garbage").expect("write");
    assert!(matches!(
        read_snapshot(dir.path(), "svc"),
        Err(CacheError::Corrupt { .. })
    ));

    // A valid file renamed to another service's name.
    write_snapshot(dir.path(), &snapshot("other")).expect("write");
    fs::copy(snapshot_path(dir.path(), "other"), &path).expect("copy");
    assert!(matches!(
        read_snapshot(dir.path(), "svc"),
        Err(CacheError::Corrupt { .. })
    ));
}

#[test]
fn odd_service_names_stay_in_the_directory() {
    let dir = Path::new("/cache");
    assert_eq!(
        snapshot_path(dir, "payments-api"),
        Path::new("/cache/policy-payments-api.snapshot")
    );
    let odd = snapshot_path(dir, "../etc/passwd");
    assert_eq!(odd.parent(), Some(dir));
}

#[test]
fn agent_id_is_stable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = agent_id(dir.path()).expect("id");
    assert_eq!(agent_id(dir.path()).expect("id"), first);
    assert!(uuid::Uuid::parse_str(&first).is_ok());
}
