//! The forms of the service detail page: settings (approver), description
//! (requester), and requesting an origin (requester). Bad input re-renders
//! the page with the message beside its field and changes nothing.

use super::detail::{FieldErrors, RequestView, SettingsView, render_detail};
use crate::auth::{Approver, CsrfForm, Requester, RequireRole};
use crate::service::services::{Change, Updated};
use crate::service::{self, Error, validate};
use crate::state::AppState;
use crate::ui::page::{Ctx, UiResult, redirect_with_flash};
use axum::extract::{Path, State};
use chrono::{DateTime, NaiveDateTime, Utc};
use corsair_agent::engine::{MAX_AGE_LIMIT, Mode, PolicySettings};
use http::StatusCode;
use serde::Deserialize;

/// The settings form.
#[derive(Debug, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    allow_methods: String,
    #[serde(default)]
    allow_headers: String,
    #[serde(default)]
    expose_headers: String,
    #[serde(default)]
    allow_credentials: Option<String>,
    #[serde(default)]
    max_age_secs: String,
    #[serde(default)]
    allow_private_network: Option<String>,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    strict: Option<String>,
    #[serde(default)]
    allow_insecure_http: Option<String>,
}

fn list_field(text: &str) -> Vec<String> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Puts each engine problem beside the field it concerns.
fn place(errors: &mut FieldErrors, error: &Error) {
    match error {
        Error::Unprocessable { details, message } => {
            for d in details {
                let base = d.field.split('[').next().unwrap_or_default();
                let text = if d.value.is_empty() {
                    d.message.clone()
                } else {
                    format!("{:?}: {}", d.value, d.message)
                };
                let slot = match base {
                    "allow_methods" => &mut errors.allow_methods,
                    "allow_headers" => &mut errors.allow_headers,
                    "expose_headers" => &mut errors.expose_headers,
                    "max_age_secs" => &mut errors.max_age_secs,
                    "allow_credentials" => &mut errors.allow_credentials,
                    "pattern" => &mut errors.pattern,
                    _ => &mut errors.other,
                };
                if !slot.is_empty() {
                    slot.push_str("; ");
                }
                slot.push_str(&text);
            }
            if errors.pattern.is_empty() && errors.other.is_empty() && !has_field_error(errors) {
                errors.other = message.clone();
            }
        }
        other => errors.other = crate::ui::page::message_of(other),
    }
}

pub(super) async fn save_settings(
    RequireRole { user, .. }: RequireRole<Approver>,
    ctx: Ctx,
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm(form): CsrfForm<SettingsForm>,
) -> UiResult {
    let current = state
        .store
        .get_service(&name)
        .await
        .map_err(|e| ctx.error(e))?;
    let mode = Mode::parse(&form.mode);
    let mut view = SettingsView {
        allow_methods: form.allow_methods.clone(),
        allow_headers: form.allow_headers.clone(),
        expose_headers: form.expose_headers.clone(),
        allow_credentials: form.allow_credentials.is_some(),
        max_age_secs: form.max_age_secs.clone(),
        allow_private_network: form.allow_private_network.is_some(),
        mode: form.mode.clone(),
        strict: form.strict.is_some(),
        allow_insecure_http: form.allow_insecure_http.is_some(),
        errors: FieldErrors::default(),
    };
    // Only the form's own syntax is checked here; the engine judges the
    // values (the range of max-age included) in the service layer.
    let max_age = form.max_age_secs.trim().parse::<i64>().ok();
    if max_age.is_none() {
        view.errors.max_age_secs = format!(
            "{:?} is not a number of seconds between 0 and {MAX_AGE_LIMIT}",
            form.max_age_secs.trim()
        );
    }
    if mode.is_none() {
        view.errors.other = "Choose a mode: enforce or report only.".into();
    }
    let (Some(max_age), Some(mode)) = (max_age, mode) else {
        return render_detail(
            &ctx,
            &state,
            current,
            Some(view),
            RequestView::default(),
            FieldErrors::default(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let settings = PolicySettings {
        allow_methods: list_field(&form.allow_methods),
        allow_headers: list_field(&form.allow_headers),
        expose_headers: list_field(&form.expose_headers),
        allow_credentials: view.allow_credentials,
        max_age_secs: max_age,
        allow_private_network: view.allow_private_network,
        mode,
        strict: view.strict,
        allow_insecure_http: view.allow_insecure_http,
    };
    let result = service::services::update(&state, &name, &user.email, &user.person, |_| {
        Ok(Change {
            settings: Some(settings),
            ..Change::default()
        })
    })
    .await;
    match result {
        Ok(Updated::Applied(service)) => Ok(redirect_with_flash(
            &format!("/services/{name}"),
            "ok",
            &format!(
                "Settings saved; agents receive revision {}.",
                service.revision
            ),
        )),
        Ok(Updated::Held(pending)) => {
            let widens: Vec<&str> = pending.widens.iter().map(|w| w.describe()).collect();
            Ok(redirect_with_flash(
                &format!("/services/{name}"),
                "ok",
                &format!(
                    "Not applied yet: this change widens access ({}), so it awaits a second approver as settings change #{}. Another approver confirms it here or on the Approvals page; agents keep the current settings until then.",
                    widens.join("; "),
                    pending.change.id
                ),
            ))
        }
        Err(
            error @ (Error::Unprocessable { .. } | Error::Conflict(_) | Error::InvalidState(_)),
        ) => {
            place(&mut view.errors, &error);
            if view.errors.other.is_empty() && !has_field_error(&view.errors) {
                view.errors.other = error.to_string();
            }
            render_detail(
                &ctx,
                &state,
                current,
                Some(view),
                RequestView::default(),
                FieldErrors::default(),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => Err(ctx.error(e)),
    }
}

fn has_field_error(e: &FieldErrors) -> bool {
    !(e.allow_methods.is_empty()
        && e.allow_headers.is_empty()
        && e.expose_headers.is_empty()
        && e.max_age_secs.is_empty()
        && e.allow_credentials.is_empty())
}

/// The description form.
#[derive(Debug, Deserialize)]
pub struct DescriptionForm {
    #[serde(default)]
    description: String,
}

pub(super) async fn save_description(
    RequireRole { user, .. }: RequireRole<Requester>,
    ctx: Ctx,
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm(form): CsrfForm<DescriptionForm>,
) -> UiResult {
    let current = state
        .store
        .get_service(&name)
        .await
        .map_err(|e| ctx.error(e))?;
    // A description alone never widens access: it is always applied.
    match service::services::update(&state, &name, &user.email, &user.person, |_| {
        Ok(Change {
            description: Some(form.description.clone()),
            ..Change::default()
        })
    })
    .await
    {
        Ok(_) => {}
        Err(e @ Error::Unprocessable { .. }) => {
            let errors = FieldErrors {
                description: e.to_string(),
                ..FieldErrors::default()
            };
            return render_detail(
                &ctx,
                &state,
                current,
                None,
                RequestView::default(),
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Err(e) => return Err(ctx.error(e)),
    }
    Ok(redirect_with_flash(
        &format!("/services/{name}"),
        "ok",
        "Description saved.",
    ))
}

/// The request-an-origin form.
#[derive(Debug, Deserialize)]
pub struct RequestForm {
    #[serde(default)]
    pattern: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    expires_at: String,
}

/// Parses a `datetime-local` value (read as UTC) or an RFC 3339 time.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M")
                .ok()
                .map(|n| n.and_utc())
        })
        .or_else(|| {
            NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|n| n.and_utc())
        })
}

pub(super) async fn request_origin(
    RequireRole { user, .. }: RequireRole<Requester>,
    ctx: Ctx,
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm(form): CsrfForm<RequestForm>,
) -> UiResult {
    let service = state
        .store
        .get_service(&name)
        .await
        .map_err(|e| ctx.error(e))?;
    let view = RequestView {
        pattern: form.pattern.clone(),
        reason: form.reason.clone(),
        expires_at: form.expires_at.clone(),
    };
    let mut errors = FieldErrors::default();
    if form.pattern.trim().is_empty() {
        errors.pattern = "Enter an origin, e.g. https://app.example.com.".into();
    }
    if let Err(e) = validate::text("reason", &form.reason, true) {
        errors.reason = format!("{e}: say why this origin needs access.");
    }
    let mut expires_at = None;
    if !form.expires_at.trim().is_empty() {
        match parse_time(&form.expires_at) {
            Some(t) if service::origins::check_expiry(Some(t)).is_ok() => expires_at = Some(t),
            Some(_) => errors.expires_at = "The expiry is in the past.".into(),
            None => {
                errors.expires_at = "Use a date and time such as 2030-01-31T17:00 (UTC).".into()
            }
        }
    }
    if errors.pattern.is_empty()
        && let Err(e) = service::origins::check_pattern(&state, &name, form.pattern.trim()).await
    {
        place(&mut errors, &e);
    }
    if !(errors.pattern.is_empty()
        && errors.reason.is_empty()
        && errors.expires_at.is_empty()
        && errors.other.is_empty())
    {
        return render_detail(
            &ctx,
            &state,
            service,
            None,
            view,
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    match service::origins::request(
        &state,
        &name,
        form.pattern.trim(),
        &form.reason,
        expires_at,
        &user.email,
        &user.person,
    )
    .await
    {
        Ok(origin) => Ok(redirect_with_flash(
            &format!("/services/{name}"),
            "ok",
            &format!(
                "Requested {} (#{}); an approver will review it.",
                origin.pattern, origin.id
            ),
        )),
        Err(e @ (Error::Conflict(_) | Error::InvalidState(_) | Error::Unprocessable { .. })) => {
            let status = e.status();
            if status == StatusCode::CONFLICT {
                let pattern = service::origins::check_pattern(&state, &name, form.pattern.trim())
                    .await
                    .unwrap_or_else(|_| form.pattern.trim().to_owned());
                errors.pattern =
                    format!("{pattern} is already requested or approved for this service.");
            } else {
                place(&mut errors, &e);
            }
            render_detail(&ctx, &state, service, None, view, errors, status).await
        }
        Err(other) => Err(ctx.error(other)),
    }
}
