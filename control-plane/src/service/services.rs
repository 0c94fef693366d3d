//! Services and their policy settings: create, edit (settings and
//! description), delete. Settings are the engine's [`PolicySettings`] and
//! the engine judges them, together with the origins approved at the moment
//! of the write (the service row is locked meanwhile). An edit that widens
//! what browsers are granted waits for a second approver
//! ([`super::settings_changes`]).

use super::settings_changes::{PendingChange, widenings};
use super::{Error, validate};
use crate::domain::Detail;
use crate::state::AppState;
use crate::store::services::Service;
use crate::store::settings_changes::{Edit, Edited};
use corsair_agent::engine::{Mode, PolicySettings};

/// Creates service `name` (a DNS-label-like slug) as `actor`.
///
/// A new service starts in `enforce` mode: `report_only` grants every
/// origin at once, so it only ever comes through a settings change that a
/// second person confirms ([`super::settings_changes`]); creating with it
/// would let one admin grant every origin alone (or delete a service and
/// recreate it so). The other widening settings (credentials, private
/// network, plain-http origins, strict off) may be set at creation: they
/// grant nothing until an origin is approved, which takes four eyes.
///
/// Errors: [`Error::Unprocessable`] (a bad name or description, settings
/// the engine refuses, `mode: report_only`), [`Error::Conflict`] (the name
/// is taken).
pub async fn create(
    state: &AppState,
    name: &str,
    description: &str,
    settings: &PolicySettings,
    actor: &str,
) -> Result<Service, Error> {
    validate::service_name(name)?;
    validate::text("description", description, false)?;
    let checked = validate::policy(settings, Vec::new());
    if settings.mode == Mode::ReportOnly {
        // Listed with the engine's problems, if any, so one answer says
        // everything to fix.
        let why = "a new service starts in enforce mode: report_only grants every origin, \
            so it is a settings change a second approver confirms; create the service, then \
            set mode to report_only (PATCH /services/{name} or the service page), which \
            another approver confirms (or you, under --single-operator)";
        let mode = Detail {
            field: "mode".to_owned(),
            value: "report_only".to_owned(),
            message: why.to_owned(),
        };
        return Err(match checked {
            Err(Error::Unprocessable {
                message,
                mut details,
            }) => {
                details.push(mode);
                Error::Unprocessable {
                    message: format!("{message}; mode \"report_only\": {why}"),
                    details,
                }
            }
            Err(other) => other,
            Ok(()) => Error::Unprocessable {
                message: why.to_owned(),
                details: vec![mode],
            },
        });
    }
    checked?;
    let service = state
        .store
        .create_service(name, description.trim(), settings, actor)
        .await?;
    tracing::info!(service = %name, actor = %actor, revision = service.revision, "service created");
    Ok(service)
}

/// What an edit changes; `None` keeps the current value.
#[derive(Debug, Default)]
pub struct Change {
    /// The new description.
    pub description: Option<String>,
    /// The new settings.
    pub settings: Option<PolicySettings>,
}

/// What [`update`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updated {
    /// Applied at once (the change narrows or is neutral): the service now.
    Applied(Service),
    /// Held for a second approver (it widens what browsers are granted, see
    /// [`settings_changes`](super::settings_changes)): nothing changed yet.
    Held(Box<PendingChange>),
}

/// Edits service `name` as `actor` (`person`: the human behind it, who may
/// not confirm a held change): `edit` computes the [`Change`] from the
/// service as it is, with its row locked, so the new settings are judged
/// together with every origin approved at that moment. A change that
/// widens what browsers are granted ([`widenings`]) is held, whole
/// (description included), as a pending settings change; anything else is
/// applied at once, the revision bumped only when the settings change.
///
/// Errors: [`Error::NotFound`], [`Error::Unprocessable`] (a bad
/// description, settings the engine refuses, or `edit`'s own refusal).
pub async fn update<F>(
    state: &AppState,
    name: &str,
    actor: &str,
    person: &str,
    edit: F,
) -> Result<Updated, Error>
where
    F: FnOnce(&Service) -> Result<Change, Error>,
{
    let edited = state
        .store
        .edit_service_with(name, actor, person, |current, approved| {
            let change = edit(current)?;
            let description = match change.description {
                Some(d) => {
                    validate::text("description", &d, false)?;
                    d.trim().to_owned()
                }
                None => current.description.clone(),
            };
            let settings = change.settings.unwrap_or_else(|| current.settings.clone());
            validate::policy(&settings, approved)?;
            if widenings(&current.settings, &settings).is_empty() {
                return Ok::<_, Error>(Edit::Apply {
                    description,
                    settings,
                });
            }
            Ok(Edit::Hold {
                description: (description != current.description).then_some(description),
                settings,
            })
        })
        .await?;
    Ok(match edited {
        Edited::Applied(service) => {
            tracing::info!(service = %name, actor = %actor, revision = service.revision, "service updated");
            Updated::Applied(service)
        }
        Edited::Held(change) => {
            let widens = widenings(&change.base_settings, &change.settings);
            tracing::info!(service = %name, actor = %actor, id = change.id, ?widens, "settings change held for a second approver");
            Updated::Held(Box::new(PendingChange {
                change,
                widens,
                stale: false,
            }))
        }
    })
}

/// Deletes service `name` and its origins as `actor`; agents learn that it
/// is gone. Errors: [`Error::NotFound`].
pub async fn delete(state: &AppState, name: &str, actor: &str) -> Result<(), Error> {
    state.store.delete_service(name, actor).await?;
    tracing::info!(service = %name, actor = %actor, "service deleted");
    Ok(())
}
