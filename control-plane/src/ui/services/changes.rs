//! Settings changes that wait for a second approver, as the service page
//! and the approvals queue show them, and their confirm / dismiss forms.

use super::detail::SettingsView;
use crate::auth::{Approver, CsrfForm, RequireRole};
use crate::service::settings_changes::PendingChange;
use crate::service::{self, Error};
use crate::state::AppState;
use crate::ui::approvals::{UI_ROLLOUT_WAIT, rollout_sentence};
use crate::ui::local_path;
use crate::ui::page::{UiResult, redirect_with_flash, when};
use axum::extract::{Path, State};
use serde::Deserialize;

/// One setting a change sets, from → to, as text.
pub struct Difference {
    pub(crate) field: &'static str,
    pub(crate) from: String,
    pub(crate) to: String,
}

/// A pending settings change, ready to show.
pub struct SettingsChangeRow {
    pub(crate) id: i64,
    pub(crate) service: String,
    pub(crate) requested_by: String,
    pub(crate) requested_at: String,
    /// Requested by the viewer (or the person behind their token): four
    /// eyes stop them confirming it.
    pub(crate) own: bool,
    /// Why it waits: what it widens, for people.
    pub(crate) widens: Vec<&'static str>,
    /// Every setting it changes.
    pub(crate) differences: Vec<Difference>,
    /// The service changed since: it can only be dismissed.
    pub(crate) stale: bool,
}

impl SettingsChangeRow {
    /// `p` as seen by `actor`, who is `person`.
    pub fn of(p: &PendingChange, actor: &str, person: &str) -> Self {
        let c = &p.change;
        let (from, to) = (
            SettingsView::of(&c.base_settings),
            SettingsView::of(&c.settings),
        );
        let mut differences = Vec::new();
        let mut differ = |field: &'static str, from: String, to: String| {
            if from != to {
                differences.push(Difference { field, from, to });
            }
        };
        let list = |s: &str| {
            if s.is_empty() {
                "(none)".to_owned()
            } else {
                s.to_owned()
            }
        };
        differ("mode", from.mode.clone(), to.mode.clone());
        differ(
            "allow_credentials",
            from.allow_credentials.to_string(),
            to.allow_credentials.to_string(),
        );
        differ(
            "allow_private_network",
            from.allow_private_network.to_string(),
            to.allow_private_network.to_string(),
        );
        differ(
            "allow_insecure_http",
            from.allow_insecure_http.to_string(),
            to.allow_insecure_http.to_string(),
        );
        differ("strict", from.strict.to_string(), to.strict.to_string());
        differ(
            "allow_methods",
            list(&from.allow_methods),
            list(&to.allow_methods),
        );
        differ(
            "allow_headers",
            list(&from.allow_headers),
            list(&to.allow_headers),
        );
        differ(
            "expose_headers",
            list(&from.expose_headers),
            list(&to.expose_headers),
        );
        differ("max_age_secs", from.max_age_secs, to.max_age_secs);
        if let Some(d) = &c.description {
            differ("description", c.base_description.clone(), d.clone());
        }
        SettingsChangeRow {
            id: c.id,
            service: c.service.clone(),
            requested_by: c.requested_by.clone(),
            requested_at: when(&c.created_at),
            own: service::settings_changes::is_own(c, actor, person),
            widens: p.widens.iter().map(|w| w.describe()).collect(),
            differences,
            stale: p.stale,
        }
    }
}

/// The confirm and dismiss forms: where to go back to.
#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    next: String,
}

pub(super) async fn confirm(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, i64)>,
    CsrfForm(form): CsrfForm<ChangeForm>,
) -> UiResult {
    let back = local_path(Some(&form.next), &format!("/services/{name}"));
    match service::settings_changes::confirm(&state, &name, id, &user.email, &user.person).await {
        Ok((after, _)) => {
            let mut message = format!(
                "Settings change #{id} confirmed and applied to {name}; agents receive revision {}.",
                after.revision
            );
            match service::rollout::wait_applied(
                &state,
                &name,
                Some(after.revision),
                UI_ROLLOUT_WAIT,
            )
            .await
            {
                Ok(wait) => {
                    message.push(' ');
                    message.push_str(&rollout_sentence(&wait.rollout));
                }
                // The change is made; only the evidence is missing.
                Err(error) => {
                    tracing::warn!(%error, service = %name, "cannot read the rollout after a settings change");
                }
            }
            Ok(redirect_with_flash(&back, "ok", &message))
        }
        Err(e) => refused(e, &back).await,
    }
}

pub(super) async fn dismiss(
    RequireRole { user, .. }: RequireRole<Approver>,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, i64)>,
    CsrfForm(form): CsrfForm<ChangeForm>,
) -> UiResult {
    let back = local_path(Some(&form.next), &format!("/services/{name}"));
    match service::settings_changes::dismiss(&state, &name, id, &user.email).await {
        Ok(_) => Ok(redirect_with_flash(
            &back,
            "ok",
            &format!("Settings change #{id} of {name} dismissed; nothing changed."),
        )),
        Err(e) => refused(e, &back).await,
    }
}

/// A refusal as a flash on the page the form came from; our own faults as
/// an error page. (async: the faces' handlers all return `UiResult` from
/// async fns.)
async fn refused(error: Error, back: &str) -> UiResult {
    match error {
        e @ (Error::Internal(_) | Error::Unavailable(_)) => Err(e.into()),
        e => Ok(redirect_with_flash(
            back,
            "error",
            &format!("Nothing changed: {e}."),
        )),
    }
}
