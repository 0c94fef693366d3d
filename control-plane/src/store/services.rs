//! Services and their policy settings.

use super::audit::{self, AuditRecord, snapshot};
use super::{Store, StoreError, unique_violation};
use chrono::{DateTime, Utc};
use corsair_agent::engine::{Mode, PolicySpec};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// A service's policy settings: every field that changes what agents enforce
/// apart from the origins themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceSettings {
    /// Methods allowed on preflight beyond the CORS-safelisted ones.
    pub allow_methods: Vec<String>,
    /// Request headers allowed on preflight.
    pub allow_headers: Vec<String>,
    /// Response headers exposed to scripts.
    pub expose_headers: Vec<String>,
    /// Emit `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// Preflight cache lifetime in seconds (0..=86400).
    #[schema(minimum = 0, maximum = 86400)]
    pub max_age_secs: i32,
    /// Answer Private Network Access preflights.
    pub allow_private_network: bool,
    /// Enforce, or report only.
    pub mode: Mode,
    /// Refuse disallowed actual requests before the upstream.
    pub strict: bool,
    /// Opt-in: plain-`http` non-loopback origins together with credentials.
    pub allow_insecure_http: bool,
}

impl Default for ServiceSettings {
    /// The column defaults of `services`.
    fn default() -> Self {
        Self {
            allow_methods: Vec::new(),
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            allow_credentials: false,
            max_age_secs: 0,
            allow_private_network: false,
            mode: Mode::Enforce,
            strict: false,
            allow_insecure_http: false,
        }
    }
}

impl ServiceSettings {
    /// The engine's view of these settings with `origins`, for validation.
    pub fn to_spec(&self, origins: Vec<String>) -> PolicySpec {
        PolicySpec {
            origins,
            allow_methods: self.allow_methods.clone(),
            allow_headers: self.allow_headers.clone(),
            expose_headers: self.expose_headers.clone(),
            allow_credentials: self.allow_credentials,
            max_age_secs: i64::from(self.max_age_secs),
            allow_private_network: self.allow_private_network,
            mode: self.mode,
            strict: self.strict,
            allow_insecure_http: self.allow_insecure_http,
        }
    }
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

impl From<ServiceRow> for Service {
    fn from(r: ServiceRow) -> Self {
        Service {
            id: r.id,
            name: r.name,
            description: r.description,
            settings: ServiceSettings {
                allow_methods: r.allow_methods,
                allow_headers: r.allow_headers,
                expose_headers: r.expose_headers,
                allow_credentials: r.allow_credentials,
                max_age_secs: r.max_age_secs,
                allow_private_network: r.allow_private_network,
                // The CHECK constraint admits only the two spellings.
                mode: Mode::parse(&r.mode).unwrap_or(Mode::Enforce),
                strict: r.strict,
                allow_insecure_http: r.allow_insecure_http,
            },
            revision: r.revision,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl Store {
    /// All services, by name.
    pub async fn list_services(&self) -> Result<Vec<Service>, StoreError> {
        let rows = sqlx::query_as!(ServiceRow, "SELECT * FROM services ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Service::from).collect())
    }

    /// One service by name.
    pub async fn get_service(&self, name: &str) -> Result<Service, StoreError> {
        sqlx::query_as!(ServiceRow, "SELECT * FROM services WHERE name = $1", name)
            .fetch_optional(&self.pool)
            .await?
            .map(Service::from)
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
            s.max_age_secs,
            s.allow_private_network,
            s.mode.as_str(),
            s.strict,
            s.allow_insecure_http,
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, || format!("service {name:?} already exists")))?;
        let service = Service::from(row);
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
        let policy_changed = before.settings != settings;
        if !policy_changed && before.description == description {
            return Ok(Ok(before));
        }
        let s = &settings;
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
            s.max_age_secs,
            s.allow_private_network,
            s.mode.as_str(),
            s.strict,
            s.allow_insecure_http,
            policy_changed,
        )
        .fetch_one(&mut *tx)
        .await?;
        let after = Service::from(row);
        let target = format!("service:{name}");
        audit::append(
            &mut tx,
            AuditRecord {
                actor,
                action: "service.update",
                service: Some(name),
                target: &target,
                before: Some(&snapshot(&before)),
                after: Some(&snapshot(&after)),
            },
        )
        .await?;
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
        .map(Service::from)
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
    Ok(row.map(Service::from))
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
