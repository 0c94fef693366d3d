//! Four eyes on settings changes that widen what browsers are granted.
//!
//! [`widenings`] is the one judge of whether an edit widens access; an edit
//! that does is held as a pending [`SettingsChange`] (by
//! [`super::services::update`]) until a different person, an approver,
//! confirms it here (then it is applied exactly like a direct edit) or
//! anyone approver dismisses it. Every step is audited.
//!
//! Widening, and so held:
//! - `mode` enforce → report_only: every origin is granted (with
//!   credentials, if allowed);
//! - `allow_credentials` false → true: approved origins may read responses
//!   to credentialed requests (cookies, client certificates);
//! - `allow_private_network` false → true: public sites may reach a
//!   private-network service (Private Network Access preflights);
//! - `allow_insecure_http` false → true: plain-`http` origins may be used
//!   together with credentials;
//! - `strict` true → false: requests from refused origins reach the
//!   upstream again instead of a local 403.
//!
//! Everything else applies at once: the opposite directions (they narrow),
//! `max_age_secs`, `expose_headers`, and the `allow_methods` /
//! `allow_headers` lists, which shape what approved origins may send but
//! never which origins are granted or whether credentials go with it.

use super::origins::check_four_eyes_on;
use super::{Error, validate};
use crate::state::AppState;
use crate::store::services::{Service, ServiceSettings};
use crate::store::settings_changes::SettingsChange;
use corsair_agent::engine::Mode;
use serde::Serialize;

/// One way a settings change widens what browsers are granted; serialized
/// as the name of the setting it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum Widening {
    /// `mode`: enforce → report_only.
    #[serde(rename = "mode")]
    ReportOnly,
    /// `allow_credentials`: false → true.
    #[serde(rename = "allow_credentials")]
    Credentials,
    /// `allow_private_network`: false → true.
    #[serde(rename = "allow_private_network")]
    PrivateNetwork,
    /// `allow_insecure_http`: false → true.
    #[serde(rename = "allow_insecure_http")]
    InsecureHttp,
    /// `strict`: true → false.
    #[serde(rename = "strict")]
    NotStrict,
}

impl Widening {
    /// What it does, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Widening::ReportOnly => {
                "mode enforce → report only: every origin is granted (with credentials, if allowed)"
            }
            Widening::Credentials => {
                "credentials on: approved origins may read responses to requests with cookies"
            }
            Widening::PrivateNetwork => {
                "private network on: public sites may reach this service on a private network"
            }
            Widening::InsecureHttp => {
                "plain-http origins with credentials allowed (readable and forgeable on the network path)"
            }
            Widening::NotStrict => {
                "strict off: requests from refused origins reach the upstream again"
            }
        }
    }
}

/// Every way going from `before` to `after` widens what browsers are
/// granted (empty: the change narrows or is neutral and applies at once).
pub fn widenings(before: &ServiceSettings, after: &ServiceSettings) -> Vec<Widening> {
    let mut out = Vec::new();
    if before.mode == Mode::Enforce && after.mode == Mode::ReportOnly {
        out.push(Widening::ReportOnly);
    }
    if !before.allow_credentials && after.allow_credentials {
        out.push(Widening::Credentials);
    }
    if !before.allow_private_network && after.allow_private_network {
        out.push(Widening::PrivateNetwork);
    }
    if !before.allow_insecure_http && after.allow_insecure_http {
        out.push(Widening::InsecureHttp);
    }
    if before.strict && !after.strict {
        out.push(Widening::NotStrict);
    }
    out
}

/// A settings change with what it widens and whether it went stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PendingChange {
    /// The change.
    #[serde(flatten)]
    pub change: SettingsChange,
    /// Each setting whose change widens access (why it waits for a second
    /// approver), e.g. `["mode"]`.
    pub widens: Vec<Widening>,
    /// The service's settings (or, for a change that sets the description,
    /// its description) changed since the change was requested: confirming
    /// it is refused (409); dismiss it and request it again.
    pub stale: bool,
}

impl PendingChange {
    /// `change` as seen against `current`, the service as it is now.
    pub fn of(change: SettingsChange, current: &Service) -> Self {
        PendingChange {
            widens: widenings(&change.base_settings, &change.settings),
            stale: is_stale(&change, current),
            change,
        }
    }
}

/// Whether `current` changed since `change` was requested in a way that
/// confirming `change` would silently revert.
fn is_stale(change: &SettingsChange, current: &Service) -> bool {
    current.settings != change.base_settings
        || (change.description.is_some() && current.description != change.base_description)
}

/// Whether `change` was requested by `actor` or the person behind it
/// (four eyes would stop them confirming it), for faces that mark such rows.
pub fn is_own(change: &SettingsChange, actor: &str, person: &str) -> bool {
    change.requested_by.eq_ignore_ascii_case(actor)
        || change.requested_by_person.eq_ignore_ascii_case(person)
}

/// The pending settings changes of service `service`, oldest first.
/// Errors: [`Error::NotFound`] (no such service).
pub async fn pending(state: &AppState, service: &str) -> Result<Vec<PendingChange>, Error> {
    let current = state.store.get_service(service).await?;
    let changes = state.store.pending_settings_changes(Some(service)).await?;
    Ok(changes
        .into_iter()
        .map(|c| PendingChange::of(c, &current))
        .collect())
}

/// Every pending settings change, across services, oldest first.
pub async fn all_pending(state: &AppState) -> Result<Vec<PendingChange>, Error> {
    let changes = state.store.pending_settings_changes(None).await?;
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let services = state.store.list_services().await?;
    Ok(changes
        .into_iter()
        .filter_map(|c| {
            // A service deleted meanwhile took its changes with it.
            let current = services.iter().find(|s| s.name == c.service)?;
            Some(PendingChange::of(c, current))
        })
        .collect())
}

/// Confirms pending settings change `id` of service `service` as `actor`
/// (`person`: the human behind it): it is applied exactly as a direct edit
/// (revision bump, agents notified, audited). Four eyes: whoever requested
/// it (or the person behind their token) cannot confirm it, unless the
/// control plane runs with `--single-operator`. A change whose service
/// changed since it was requested is refused rather than applied over the
/// other change; the settings are judged again with the origins approved
/// now.
///
/// Errors: [`Error::NotFound`] (no such service or change),
/// [`Error::InvalidState`] (not pending), [`Error::Forbidden`] (four
/// eyes), [`Error::Conflict`] (stale), [`Error::Unprocessable`] (the
/// settings no longer fit the approved origins).
pub async fn confirm(
    state: &AppState,
    service: &str,
    id: i64,
    actor: &str,
    person: &str,
) -> Result<(Service, SettingsChange), Error> {
    let (after, change) = state
        .store
        .confirm_settings_change_with(service, id, actor, |change, current, approved| {
            check_four_eyes_on(
                state,
                &[&change.requested_by, &change.requested_by_person],
                &format!("settings change {id} of service {service}"),
                "requested",
                "confirm",
                actor,
                person,
            )?;
            if is_stale(change, current) {
                return Err(Error::Conflict(format!(
                    "settings change {id} is stale: service {service} changed since {} requested it, \
                     and confirming it would revert that later change; dismiss it and request the \
                     change again against the current settings",
                    change.requested_by
                )));
            }
            validate::policy(&change.settings, approved)
        })
        .await?;
    tracing::info!(service = %service, id, actor = %actor, revision = after.revision, "settings change confirmed");
    Ok((after, change))
}

/// Dismisses pending settings change `id` of service `service` as `actor`
/// (any approver, the requester included); nothing is applied.
///
/// Errors: [`Error::NotFound`], [`Error::InvalidState`] (not pending).
pub async fn dismiss(
    state: &AppState,
    service: &str,
    id: i64,
    actor: &str,
) -> Result<SettingsChange, Error> {
    let change = state
        .store
        .dismiss_settings_change(service, id, actor)
        .await?;
    tracing::info!(service = %service, id, actor = %actor, "settings change dismissed");
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_widening_directions_are_held() {
        let base = ServiceSettings::default();
        let strict = ServiceSettings {
            strict: true,
            ..ServiceSettings::default()
        };
        let cases: Vec<(&ServiceSettings, ServiceSettings, Vec<Widening>)> = vec![
            (
                &base,
                ServiceSettings {
                    mode: Mode::ReportOnly,
                    ..base.clone()
                },
                vec![Widening::ReportOnly],
            ),
            (
                &base,
                ServiceSettings {
                    allow_credentials: true,
                    allow_private_network: true,
                    allow_insecure_http: true,
                    ..base.clone()
                },
                vec![
                    Widening::Credentials,
                    Widening::PrivateNetwork,
                    Widening::InsecureHttp,
                ],
            ),
            (&strict, base.clone(), vec![Widening::NotStrict]),
            // Narrowing and neutral changes apply at once.
            (&base, strict.clone(), vec![]),
            (
                &base,
                ServiceSettings {
                    allow_methods: vec!["PUT".into(), "*".into()],
                    allow_headers: vec!["*".into()],
                    expose_headers: vec!["X-Total".into()],
                    max_age_secs: 600,
                    ..base.clone()
                },
                vec![],
            ),
        ];
        for (before, after, expected) in cases {
            assert_eq!(
                widenings(before, &after),
                expected,
                "{before:?} -> {after:?}"
            );
            // The way back never widens what the way there widened.
            for w in widenings(&after, before) {
                assert!(!expected.contains(&w), "{w:?} both ways");
            }
        }
        let report_only = ServiceSettings {
            mode: Mode::ReportOnly,
            allow_credentials: true,
            ..base.clone()
        };
        assert_eq!(widenings(&report_only, &base), vec![]);
    }
}
