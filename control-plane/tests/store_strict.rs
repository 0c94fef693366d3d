//! Closed sets are decoded strictly: a row holding a role, origin status or
//! policy mode the code does not know is an error, never a silent default
//! (a `Viewer`, an `enforce`). The CHECK constraints normally keep such rows
//! out; the test drops them to plant one.

use corsair_control_plane::auth::Role;
use corsair_control_plane::store::services::ServiceSettings;
use corsair_control_plane::testing::TestDb;

/// Drops every CHECK constraint on `users`, `origins` and `services`.
const DROP_CHECKS: &str = r#"
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT conname, conrelid::regclass AS t FROM pg_constraint
              WHERE contype = 'c'
                AND conrelid IN ('users'::regclass, 'origins'::regclass, 'services'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname);
    END LOOP;
END $$;
"#;

#[tokio::test]
async fn unknown_role_status_and_mode_are_errors() {
    let db = TestDb::new().await.expect("test database");
    let store = &db.store;
    store
        .create_user("odd@example.com", "x", Role::Viewer, "test")
        .await
        .expect("user");
    store
        .create_service("web", "", &ServiceSettings::default(), "test")
        .await
        .expect("service");
    let origin = store
        .request_origin("web", "https://a.example.com", "r", None, "test")
        .await
        .expect("origin");
    // Before: all three read back fine.
    assert_eq!(
        store.list_users().await.expect("users")[0].role,
        Role::Viewer
    );
    assert!(store.get_service("web").await.is_ok());
    assert!(store.get_origin(origin.id).await.is_ok());

    sqlx::raw_sql(DROP_CHECKS)
        .execute(store.pool())
        .await
        .expect("drop checks");
    sqlx::raw_sql(
        "UPDATE users SET role = 'superuser'; \
         UPDATE origins SET status = 'archived'; \
         UPDATE services SET mode = 'audit';",
    )
    .execute(store.pool())
    .await
    .expect("plant unknown values");

    let users = store.list_users().await;
    assert!(users.is_err(), "unknown role decoded as {users:?}");
    let role = store.active_user_role("odd@example.com").await;
    assert!(role.is_err(), "unknown role decoded as {role:?}");
    let origin = store.get_origin(origin.id).await;
    assert!(origin.is_err(), "unknown status decoded as {origin:?}");
    let service = store.get_service("web").await;
    assert!(service.is_err(), "unknown mode decoded as {service:?}");
    let policy = store.effective_policy("web").await;
    assert!(policy.is_err(), "unknown mode decoded as {policy:?}");
}

#[tokio::test]
async fn unknown_settings_change_status_is_an_error() {
    use corsair_control_plane::store::settings_changes::{Edit, Edited};
    let db = TestDb::new().await.expect("test database");
    let store = &db.store;
    store
        .create_service("web", "", &ServiceSettings::default(), "test")
        .await
        .expect("service");
    let edited = store
        .edit_service_with("web", "test", "test", |current, _| {
            Ok::<_, corsair_control_plane::store::StoreError>(Edit::Hold {
                description: None,
                settings: ServiceSettings {
                    allow_credentials: true,
                    ..current.settings.clone()
                },
            })
        })
        .await
        .expect("held");
    let Edited::Held(change) = edited else {
        panic!("not held: {edited:?}")
    };
    assert!(store.get_settings_change("web", change.id).await.is_ok());
    sqlx::raw_sql(
        "ALTER TABLE settings_changes DROP CONSTRAINT settings_changes_status_check; \
         ALTER TABLE settings_changes DROP CONSTRAINT settings_changes_check; \
         UPDATE settings_changes SET status = 'archived';",
    )
    .execute(store.pool())
    .await
    .expect("plant an unknown status");
    let read = store.get_settings_change("web", change.id).await;
    assert!(read.is_err(), "unknown status decoded as {read:?}");
}
