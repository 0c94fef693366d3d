//! Settings changes held for a second approver: a service edit that the
//! service layer judges to widen what browsers are granted is stored here
//! instead of applied; another approver confirms it (then it is applied like
//! any edit: revision bump, `NOTIFY`, `service.update` audit row) or anyone
//! approver dismisses it. Each step is one transaction with its audit row.

use super::audit::{self, AuditRecord, snapshot};
use super::services::{Service, ServiceSettings, apply_edit, approved_patterns, locked_service};
use super::{Store, StoreError};
use crate::domain::SettingsChangeStatus;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use sqlx::types::Json;

/// A settings change that needs (or needed) a second approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SettingsChange {
    /// Id, used in `/services/{name}/settings-changes/{id}/confirm`.
    pub id: i64,
    /// The service's name.
    pub service: String,
    /// `pending` until an approver confirms (applied) or dismisses it.
    pub status: SettingsChangeStatus,
    /// Every setting as it will be once confirmed (not only the changed ones).
    pub settings: ServiceSettings,
    /// The new description, when the change also sets one; `null`: unchanged.
    pub description: Option<String>,
    /// The service's settings when the change was requested. Confirming
    /// refuses (409) once the service's settings differ from these, so a
    /// stale change never reverts another one applied in between.
    pub base_settings: ServiceSettings,
    /// The service's description when the change was requested.
    pub base_description: String,
    /// Who asked: a user's email, or `token:<name>` for an API token.
    pub requested_by: String,
    /// The person behind `requested_by` (an API token's creator): who may
    /// not confirm it (four eyes).
    pub requested_by_person: String,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// Who confirmed or dismissed it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
}

/// The row as Postgres returns it; the settings are still JSON.
struct SettingsChangeRow {
    id: i64,
    service: String,
    status: SettingsChangeStatus,
    settings: Json<ServiceSettings>,
    description: Option<String>,
    base_settings: Json<ServiceSettings>,
    base_description: String,
    requested_by: String,
    requested_by_person: String,
    created_at: DateTime<Utc>,
    decided_by: Option<String>,
    decided_at: Option<DateTime<Utc>>,
}

impl From<SettingsChangeRow> for SettingsChange {
    fn from(r: SettingsChangeRow) -> Self {
        SettingsChange {
            id: r.id,
            service: r.service,
            status: r.status,
            settings: r.settings.0,
            description: r.description,
            base_settings: r.base_settings.0,
            base_description: r.base_description,
            requested_by: r.requested_by,
            requested_by_person: r.requested_by_person,
            created_at: r.created_at,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
        }
    }
}

/// What an edit of a service does, decided while its row is locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Apply at once.
    Apply {
        /// The new description (the current one when unchanged).
        description: String,
        /// The new settings.
        settings: ServiceSettings,
    },
    /// Hold for a second approver; nothing changes yet.
    Hold {
        /// The new description, if the change sets one.
        description: Option<String>,
        /// The new settings, all of them.
        settings: ServiceSettings,
    },
}

/// What an edit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edited {
    /// Applied (or there was nothing to change): the service as it is now.
    Applied(Service),
    /// Held: the pending change.
    Held(SettingsChange),
}

/// A settings change as JSON for its JSONB column.
fn json_column(settings: &ServiceSettings) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(settings).map_err(|e| StoreError::Database(sqlx::Error::Encode(e.into())))
}

impl Store {
    /// Edits service `name` as `actor` (on behalf of `person`, the human
    /// behind it): `edit` sees the service and its approved origin patterns
    /// with the service row locked and says whether to apply the change now
    /// ([`Edit::Apply`], as [`Store::update_service_with`]) or hold it for a
    /// second approver ([`Edit::Hold`], a pending [`SettingsChange`] and its
    /// audit row), or refuses with its own error.
    pub async fn edit_service_with<E, F>(
        &self,
        name: &str,
        actor: &str,
        person: &str,
        edit: F,
    ) -> Result<Edited, E>
    where
        E: From<StoreError>,
        F: FnOnce(&Service, Vec<String>) -> Result<Edit, E>,
    {
        match self.edit_service_locked(name, actor, person, edit).await {
            Ok(result) => result,
            Err(e) => Err(E::from(e)),
        }
    }

    async fn edit_service_locked<E, F>(
        &self,
        name: &str,
        actor: &str,
        person: &str,
        edit: F,
    ) -> Result<Result<Edited, E>, StoreError>
    where
        F: FnOnce(&Service, Vec<String>) -> Result<Edit, E>,
    {
        let mut tx = self.pool.begin().await?;
        let before = locked_service(&mut tx, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("service {name:?}")))?;
        let approved = approved_patterns(&mut tx, before.id).await?;
        let edited = match edit(&before, approved) {
            Err(e) => return Ok(Err(e)),
            Ok(Edit::Apply {
                description,
                settings,
            }) => {
                Edited::Applied(apply_edit(&mut tx, &before, &description, &settings, actor).await?)
            }
            Ok(Edit::Hold {
                description,
                settings,
            }) => Edited::Held(
                hold(
                    &mut tx,
                    &before,
                    description.as_deref(),
                    &settings,
                    actor,
                    person,
                )
                .await?,
            ),
        };
        tx.commit().await?;
        Ok(Ok(edited))
    }

    /// The pending settings changes of service `service` (all services
    /// when `None`), oldest first.
    pub async fn pending_settings_changes(
        &self,
        service: Option<&str>,
    ) -> Result<Vec<SettingsChange>, StoreError> {
        let rows = sqlx::query_as!(
            SettingsChangeRow,
            r#"
            SELECT c.id, s.name AS service, c.status AS "status: SettingsChangeStatus",
                   c.settings AS "settings: Json<ServiceSettings>", c.description,
                   c.base_settings AS "base_settings: Json<ServiceSettings>", c.base_description,
                   c.requested_by, c.requested_by_person, c.created_at, c.decided_by, c.decided_at
              FROM settings_changes c JOIN services s ON s.id = c.service_id
             WHERE c.status = 'pending' AND ($1::text IS NULL OR s.name = $1)
             ORDER BY c.created_at, c.id
            "#,
            service,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(SettingsChange::from).collect())
    }

    /// Settings change `id` of service `service`, in any state.
    /// [`StoreError::NotFound`] when there is none by that id on that
    /// service.
    pub async fn get_settings_change(
        &self,
        service: &str,
        id: i64,
    ) -> Result<SettingsChange, StoreError> {
        let mut conn = self.pool.acquire().await?;
        find(&mut conn, service, id, false).await
    }

    /// Confirms pending settings change `id` of service `service` as
    /// `actor`: `check` sees the change, the service as it is now and its
    /// approved origin patterns, with the service row and the change locked,
    /// and may refuse with its own error (four eyes, a stale change, settings
    /// that no longer fit the origins). Then the change is applied like any
    /// edit (revision bump, `service.update` audit row by `actor`) and marked
    /// confirmed (`service.settings_change.confirm` audit row), in one
    /// transaction. The service afterwards, and the change.
    ///
    /// [`StoreError::NotFound`] (no such service, or no such change on it),
    /// [`StoreError::InvalidState`] (not pending).
    pub async fn confirm_settings_change_with<E, F>(
        &self,
        service: &str,
        id: i64,
        actor: &str,
        check: F,
    ) -> Result<(Service, SettingsChange), E>
    where
        E: From<StoreError>,
        F: FnOnce(&SettingsChange, &Service, Vec<String>) -> Result<(), E>,
    {
        match self.confirm_locked(service, id, actor, check).await {
            Ok(result) => result,
            Err(e) => Err(E::from(e)),
        }
    }

    async fn confirm_locked<E, F>(
        &self,
        name: &str,
        id: i64,
        actor: &str,
        check: F,
    ) -> Result<Result<(Service, SettingsChange), E>, StoreError>
    where
        F: FnOnce(&SettingsChange, &Service, Vec<String>) -> Result<(), E>,
    {
        let mut tx = self.pool.begin().await?;
        // The service first, as every edit does, then the change.
        let service = locked_service(&mut tx, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("service {name:?}")))?;
        let before = find(&mut tx, name, id, true).await?;
        ensure_pending(&before, "confirm")?;
        let approved = approved_patterns(&mut tx, service.id).await?;
        if let Err(e) = check(&before, &service, approved) {
            return Ok(Err(e));
        }
        let description = before
            .description
            .clone()
            .unwrap_or_else(|| service.description.clone());
        let after_service =
            apply_edit(&mut tx, &service, &description, &before.settings, actor).await?;
        let after = decide(&mut tx, &before, SettingsChangeStatus::Confirmed, actor).await?;
        tx.commit().await?;
        Ok(Ok((after_service, after)))
    }

    /// Dismisses pending settings change `id` of service `service` as
    /// `actor`; nothing is applied (`service.settings_change.dismiss` audit
    /// row). [`StoreError::NotFound`], [`StoreError::InvalidState`] (not
    /// pending).
    pub async fn dismiss_settings_change(
        &self,
        service: &str,
        id: i64,
        actor: &str,
    ) -> Result<SettingsChange, StoreError> {
        let mut tx = self.pool.begin().await?;
        let before = find(&mut tx, service, id, true).await?;
        ensure_pending(&before, "dismiss")?;
        let after = decide(&mut tx, &before, SettingsChangeStatus::Dismissed, actor).await?;
        tx.commit().await?;
        Ok(after)
    }
}

/// Records a pending change of `service` (locked on `conn`) to `settings`
/// (and `description`, if set), with its audit row.
async fn hold(
    conn: &mut PgConnection,
    service: &Service,
    description: Option<&str>,
    settings: &ServiceSettings,
    actor: &str,
    person: &str,
) -> Result<SettingsChange, StoreError> {
    let row = sqlx::query_as!(
        SettingsChangeRow,
        r#"
        INSERT INTO settings_changes (service_id, settings, description, base_settings,
                                      base_description, requested_by, requested_by_person)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        RETURNING id, $8 AS "service!", status AS "status: SettingsChangeStatus",
                  settings AS "settings: Json<ServiceSettings>", description,
                  base_settings AS "base_settings: Json<ServiceSettings>", base_description,
                  requested_by, requested_by_person, created_at, decided_by, decided_at
        "#,
        service.id,
        json_column(settings)?,
        description,
        json_column(&service.settings)?,
        service.description,
        actor,
        person,
        service.name,
    )
    .fetch_one(&mut *conn)
    .await?;
    let change = SettingsChange::from(row);
    append(
        conn,
        actor,
        "service.settings_change.request",
        None,
        &change,
    )
    .await?;
    Ok(change)
}

/// Change `id` of service `service`, locked `FOR UPDATE` when `lock`.
async fn find(
    conn: &mut PgConnection,
    service: &str,
    id: i64,
    lock: bool,
) -> Result<SettingsChange, StoreError> {
    let row = if lock {
        sqlx::query_as!(
            SettingsChangeRow,
            r#"
            SELECT c.id, s.name AS service, c.status AS "status: SettingsChangeStatus",
                   c.settings AS "settings: Json<ServiceSettings>", c.description,
                   c.base_settings AS "base_settings: Json<ServiceSettings>", c.base_description,
                   c.requested_by, c.requested_by_person, c.created_at, c.decided_by, c.decided_at
              FROM settings_changes c JOIN services s ON s.id = c.service_id
             WHERE c.id = $1 AND s.name = $2
               FOR UPDATE OF c
            "#,
            id,
            service,
        )
        .fetch_optional(&mut *conn)
        .await?
    } else {
        sqlx::query_as!(
            SettingsChangeRow,
            r#"
            SELECT c.id, s.name AS service, c.status AS "status: SettingsChangeStatus",
                   c.settings AS "settings: Json<ServiceSettings>", c.description,
                   c.base_settings AS "base_settings: Json<ServiceSettings>", c.base_description,
                   c.requested_by, c.requested_by_person, c.created_at, c.decided_by, c.decided_at
              FROM settings_changes c JOIN services s ON s.id = c.service_id
             WHERE c.id = $1 AND s.name = $2
            "#,
            id,
            service,
        )
        .fetch_optional(&mut *conn)
        .await?
    };
    row.map(SettingsChange::from)
        .ok_or_else(|| StoreError::NotFound(format!("settings change {id} of service {service:?}")))
}

fn ensure_pending(change: &SettingsChange, verb: &str) -> Result<(), StoreError> {
    if change.status != SettingsChangeStatus::Pending {
        return Err(StoreError::InvalidState(format!(
            "cannot {verb} settings change {}: it is {} ({}), and only pending changes can be decided",
            change.id,
            change.status,
            change
                .decided_by
                .as_deref()
                .map_or_else(String::new, |by| format!("by {by}")),
        )));
    }
    Ok(())
}

/// Marks `before` (locked, pending) `status` as decided by `actor`, with
/// its audit row.
async fn decide(
    conn: &mut PgConnection,
    before: &SettingsChange,
    status: SettingsChangeStatus,
    actor: &str,
) -> Result<SettingsChange, StoreError> {
    let row = sqlx::query_as!(
        SettingsChangeRow,
        r#"
        UPDATE settings_changes
           SET status = $2, decided_by = $3, decided_at = now()
         WHERE id = $1
        RETURNING id, $4 AS "service!", status AS "status: SettingsChangeStatus",
                  settings AS "settings: Json<ServiceSettings>", description,
                  base_settings AS "base_settings: Json<ServiceSettings>", base_description,
                  requested_by, requested_by_person, created_at, decided_by, decided_at
        "#,
        before.id,
        status.as_str(),
        actor,
        before.service,
    )
    .fetch_one(&mut *conn)
    .await?;
    let after = SettingsChange::from(row);
    let action = match status {
        SettingsChangeStatus::Confirmed => "service.settings_change.confirm",
        SettingsChangeStatus::Dismissed => "service.settings_change.dismiss",
        SettingsChangeStatus::Pending => "service.settings_change.request",
    };
    append(conn, actor, action, Some(before), &after).await?;
    Ok(after)
}

async fn append(
    conn: &mut PgConnection,
    actor: &str,
    action: &str,
    before: Option<&SettingsChange>,
    after: &SettingsChange,
) -> Result<(), StoreError> {
    let target = format!("settings_change:{}", after.id);
    let before = before.map(snapshot);
    audit::append(
        conn,
        AuditRecord {
            actor,
            action,
            service: Some(&after.service),
            target: &target,
            before: before.as_ref(),
            after: Some(&snapshot(after)),
        },
    )
    .await
}
