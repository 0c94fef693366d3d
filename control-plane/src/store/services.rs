//! Services and their policy settings.

use super::audit::{self, AuditRecord, snapshot};
use super::{Store, StoreError, unique_violation};
use chrono::{DateTime, Utc};
use corsair_agent::engine::{Mode, PolicySettings};
use serde::Serialize;
use sqlx::PgConnection;

/// A service's policy settings: the engine's one declaration of them.
pub type ServiceSettings = PolicySettings;

/// The `max_age_secs` column (`INTEGER`) for `secs`. The engine refuses
/// anything over a day long before a write, so a value that does not fit
/// is our bug: a 500, never a truncation.
fn max_age_column(secs: i64) -> Result<i32, StoreError> {
    i32::try_from(secs).map_err(|e| StoreError::Database(sqlx::Error::Encode(Box::new(e))))
}

/// A service as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Service {
    /// Database id.
    #[serde(skip)]
    pub id: i64,
    /// The slug agents subscribe with, e.g. `payments-api`.
    #[schema(example = "payments-api")]
    pub name: String,
    /// Free text for people.
    pub description: String,
    /// Policy settings.
    #[serde(flatten)]
    pub settings: ServiceSettings,
    /// The current policy revision (from the global sequence).
    pub revision: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The row as Postgres returns it; `mode` is still text.
struct ServiceRow {
    id: i64,
    name: String,
    description: String,
    allow_methods: Vec<String>,
    allow_headers: Vec<String>,
    expose_headers: Vec<String>,
    allow_credentials: bool,
    max_age_secs: i32,
    allow_private_network: bool,
    mode: String,
    strict: bool,
    allow_insecure_http: bool,
    revision: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Reads a `mode` column strictly: a spelling the engine does not know is a
/// decode error, never a silent `enforce`.
pub(super) fn decode_mode(text: &str) -> Result<Mode, StoreError> {
    Mode::parse(text).ok_or_else(|| {
        StoreError::Database(sqlx::Error::Decode(
            format!("unknown policy mode {text:?} in the services table").into(),
        ))
    })
}

impl TryFrom<ServiceRow> for Service {
    type Error = StoreError;

    fn try_from(r: ServiceRow) -> Result<Self, StoreError> {
        Ok(Service {
            id: r.id,
            name: r.name,
            description: r.description,
            settings: ServiceSettings {
                allow_methods: r.allow_methods,
                allow_headers: r.allow_headers,
                expose_headers: r.expose_headers,
                allow_credentials: r.allow_credentials,
                max_age_secs: i64::from(r.max_age_secs),
                allow_private_network: r.allow_private_network,
                mode: decode_mode(&r.mode)?,
                strict: r.strict,
                allow_insecure_http: r.allow_insecure_http,
            },
            revision: r.revision,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl Store {
    /// All services, by name.
    pub async fn list_services(&self) -> Result<Vec<Service>, StoreError> {
        let rows = sqlx::query_as!(ServiceRow, "SELECT * FROM services ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Service::try_from).collect()
    }

    /// One service by name.
    pub async fn get_service(&self, name: &str) -> Result<Service, StoreError> {
        sqlx::query_as!(ServiceRow, "SELECT * FROM services WHERE name = $1", name)
            .fetch_optional(&self.pool)
            .await?
            .map(Service::try_from)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("service {name:?}")))
    }

    /// Creates a service (its first revision comes from the sequence).
    pub async fn create_service(
        &self,
        name: &str,
        description: &str,
        settings: &ServiceSettings,
        actor: &str,
    ) -> Result<Service, StoreError> {
        let mut tx = self.pool.begin().await?;
        let s = settings;
        let row = sqlx::query_as!(
            ServiceRow,
            r#"
            INSERT INTO services (name, description, allow_methods, allow_headers, expose_headers,
                                  allow_credentials, max_age_secs, allow_private_network, mode,
                                  strict, allow_insecure_http)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            RETURNING *
            "#,
            name,
            description,
            &s.allow_methods,
            &s.allow_headers,
            &s.expose_headers,
            s.allow_credentials,
            max_age_column(s.max_age_secs)?,
            s.allow_private_network,
            s.mode.as_str(),
            s.strict,
            s.allow_insecure_http,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, || format!("service {name:?} already exists")))?;
        let service = Service::try_from(row)?;
        let target = format!("service:{name}");
        audit::append(
            &mut tx,
            AuditRecord {
                actor,
                action: "service.create",
                service: Some(name),
                target: &target,
                before: None,
                after: Some(&snapshot(&service)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(service)
    }

    /// Replaces a service's description and settings. The revision is bumped
    /// only when the settings change (a description is not enforced); nothing
    /// is written when nothing changes.
    pub async fn update_service(
        &self,
        name: &str,
        description: &str,
        settings: &ServiceSettings,
        actor: &str,
    ) -> Result<Service, StoreError> {
        self.update_service_with(name, actor, |_, _| {
            Ok::<_, StoreError>((description.to_owned(), settings.clone()))
        })
        .await
    }

    /// Like [`Store::update_service`], but `edit` computes the new
    /// description and settings from the current service and its approved
    /// origins while the service row is locked, and may refuse with its own
    /// error. Validation done in `edit` cannot race with a concurrent
    /// approval, which locks the same row.
    pub async fn update_service_with<E, F>(
        &self,
        name: &str,
        actor: &str,
        edit: F,
    ) -> Result<Service, E>
    where
        E: From<StoreError>,
        F: FnOnce(&Service, Vec<String>) -> Result<(String, ServiceSettings), E>,
    {
        match self.update_service_locked(name, actor, edit).await {
            Ok(result) => result,
            Err(e) => Err(E::from(e)),
        }
    }

    async fn update_service_locked<E, F>(
        &self,
        name: &str,
        actor: &str,
        edit: F,
    ) -> Result<Result<Service, E>, StoreError>
    where
        F: FnOnce(&Service, Vec<String>) -> Result<(String, ServiceSettings), E>,
    {
        let mut tx = self.pool.begin().await?;
        let before = locked_service(&mut tx, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("service {name:?}")))?;
        let approved = approved_patterns(&mut tx, before.id).await?;
        let (description, settings) = match edit(&before, approved) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let after = apply_edit(&mut tx, &before, &description, &settings, actor).await?;
        tx.commit().await?;
        Ok(Ok(after))
    }

    /// Deletes a service and (by cascade) its origins. The delete trigger
    /// notifies, so agents learn that the service is gone.
    pub async fn delete_service(&self, name: &str, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let before: Service = sqlx::query_as!(
            ServiceRow,
            "DELETE FROM services WHERE name = $1 RETURNING *",
            name
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(Service::try_from)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("service {name:?}")))?;
        let target = format!("service:{name}");
        audit::append(
            &mut tx,
            AuditRecord {
                actor,
                action: "service.delete",
                service: Some(name),
                target: &target,
                before: Some(&snapshot(&before)),
                after: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Writes `description` and `settings` over service `before` (its row locked
/// on `conn`, an open transaction) as `actor`, with its `service.update`
/// audit row. The revision is bumped only when the settings change; nothing
/// is written when nothing changes. The service as it is afterwards.
pub(super) async fn apply_edit(
    conn: &mut PgConnection,
    before: &Service,
    description: &str,
    settings: &ServiceSettings,
    actor: &str,
) -> Result<Service, StoreError> {
    let policy_changed = before.settings != *settings;
    if !policy_changed && before.description == description {
        return Ok(before.clone());
    }
    let s = settings;
    let row = sqlx::query_as!(
        ServiceRow,
        r#"
        UPDATE services
           SET description = $2, allow_methods = $3, allow_headers = $4, expose_headers = $5,
               allow_credentials = $6, max_age_secs = $7, allow_private_network = $8,
               mode = $9, strict = $10, allow_insecure_http = $11,
               revision = CASE WHEN $12 THEN nextval('policy_revision_seq') ELSE revision END,
               updated_at = now()
         WHERE id = $1
        RETURNING *
        "#,
        before.id,
        description,
        &s.allow_methods,
        &s.allow_headers,
        &s.expose_headers,
        s.allow_credentials,
        max_age_column(s.max_age_secs)?,
        s.allow_private_network,
        s.mode.as_str(),
        s.strict,
        s.allow_insecure_http,
        policy_changed,
    )
    .fetch_one(&mut *conn)
    .await?;
    let after = Service::try_from(row)?;
    let target = format!("service:{}", before.name);
    audit::append(
        conn,
        AuditRecord {
            actor,
            action: "service.update",
            service: Some(&before.name),
            target: &target,
            before: Some(&snapshot(before)),
            after: Some(&snapshot(&after)),
        },
    )
    .await?;
    Ok(after)
}

/// Service `name`, locked `FOR UPDATE` until the transaction ends. Every
/// write that is validated against the whole policy takes this lock first.
pub(super) async fn locked_service(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<Service>, StoreError> {
    let row = sqlx::query_as!(
        ServiceRow,
        "SELECT * FROM services WHERE name = $1 FOR UPDATE",
        name
    )
    .fetch_optional(conn)
    .await?;
    row.map(Service::try_from).transpose()
}

/// The service named `name` read on `conn` (e.g. inside a snapshot), or `None`.
pub(super) async fn find_service(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<Service>, StoreError> {
    sqlx::query_as!(ServiceRow, "SELECT * FROM services WHERE name = $1", name)
        .fetch_optional(conn)
        .await?
        .map(Service::try_from)
        .transpose()
}

/// The approved origin patterns of service `service_id`.
pub(super) async fn approved_patterns(
    conn: &mut PgConnection,
    service_id: i64,
) -> Result<Vec<String>, StoreError> {
    let patterns = sqlx::query_scalar!(
        "SELECT pattern FROM origins WHERE service_id = $1 AND status = 'approved' ORDER BY pattern",
        service_id
    )
    .fetch_all(conn)
    .await?;
    Ok(patterns)
}
