//! `/users` (admin): accounts (create, change role, disable) and API tokens
//! for automation (named, role-scoped, optional expiry, revocable; the
//! secret is shown once).

use super::page::{Ctx, Layout, UiResult, redirect_with_flash, when, when_opt};
use crate::auth::{Admin, CsrfForm, RequireRole, Role};
use crate::service::tokens::MAX_API_TOKEN_DAYS;
use crate::service::{self, Error};
use crate::state::AppState;
use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", post(update))
        .route("/tokens", post(create_token))
        .route("/tokens/{id}/revoke", post(revoke_token))
}

/// One user, ready to show.
pub struct UserRow {
    id: i64,
    email: String,
    role: &'static str,
    disabled: bool,
    created: String,
    me: bool,
    /// `local` or `oidc`.
    source: &'static str,
    /// For an `oidc` user: `issuer · subject`.
    identity: String,
}

/// One API token, ready to show.
pub struct TokenRow {
    id: String,
    name: String,
    role: &'static str,
    created: String,
    expires: String,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    page: Layout,
    users: Vec<UserRow>,
    tokens: Vec<TokenRow>,
    roles: [&'static str; 4],
    new_email: String,
    new_role: String,
    user_error: String,
    token_name: String,
    token_role: String,
    token_days: String,
    token_error: String,
    secret: String,
    secret_name: String,
}

struct Forms {
    new_email: String,
    new_role: String,
    user_error: String,
    token_name: String,
    token_role: String,
    token_days: String,
    token_error: String,
    secret: String,
    secret_name: String,
}

impl Default for Forms {
    fn default() -> Self {
        Forms {
            new_email: String::new(),
            new_role: "viewer".into(),
            user_error: String::new(),
            token_name: String::new(),
            token_role: "viewer".into(),
            token_days: String::new(),
            token_error: String::new(),
            secret: String::new(),
            secret_name: String::new(),
        }
    }
}

async fn render(ctx: &Ctx, state: &AppState, forms: Forms, status: StatusCode) -> UiResult {
    let users = state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| UserRow {
            me: u.email.eq_ignore_ascii_case(&ctx.user.email),
            id: u.id,
            email: u.email,
            role: u.role.as_str(),
            disabled: u.disabled,
            created: when(&u.created_at),
            source: u.source.as_str(),
            identity: match (&u.oidc_issuer, &u.oidc_subject) {
                (Some(issuer), Some(subject)) => format!("{issuer} · {subject}"),
                _ => String::new(),
            },
        })
        .collect();
    let now = chrono::Utc::now();
    let tokens = state
        .store
        .list_api_tokens()
        .await?
        .into_iter()
        .map(|t| TokenRow {
            state: if t.revoked_at.is_some() {
                "revoked"
            } else if t.expires_at.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            },
            id: t.id.to_string(),
            name: t.name,
            role: t.role.as_str(),
            created: format!("{} by {}", when(&t.created_at), t.created_by),
            expires: when_opt(&t.expires_at),
        })
        .collect();
    let page = UsersPage {
        page: ctx.layout("Users and API tokens", "users"),
        users,
        tokens,
        roles: ["viewer", "requester", "approver", "admin"],
        new_email: forms.new_email,
        new_role: forms.new_role,
        user_error: forms.user_error,
        token_name: forms.token_name,
        token_role: forms.token_role,
        token_days: forms.token_days,
        token_error: forms.token_error,
        secret: forms.secret,
        secret_name: forms.secret_name,
    };
    Ok(ctx.render(status, &page))
}

async fn list(_: RequireRole<Admin>, ctx: Ctx, State(state): State<AppState>) -> UiResult {
    render(&ctx, &state, Forms::default(), StatusCode::OK).await
}

/// The new-user form.
#[derive(Debug, Deserialize)]
pub struct NewUser {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

async fn create(
    RequireRole { user, .. }: RequireRole<Admin>,
    ctx: Ctx,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<NewUser>,
) -> UiResult {
    let email = form.email.trim().to_owned();
    let mut forms = Forms {
        new_email: email.clone(),
        new_role: form.role.clone(),
        ..Forms::default()
    };
    let Some(role) = Role::parse(&form.role) else {
        forms.user_error = "Choose a role: viewer, requester, approver or admin.".into();
        return render(&ctx, &state, forms, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    match service::users::create(&state, &email, role, form.password, &user.email).await {
        Ok(created) => Ok(redirect_with_flash(
            "/users",
            "ok",
            &format!("Created {} as {}.", created.email, role.as_str()),
        )),
        Err(e @ (Error::Unprocessable { .. } | Error::Conflict(_))) => {
            let status = e.status();
            forms.user_error = match e {
                Error::Conflict(m) => format!("{m}."),
                other => other.to_string(),
            };
            render(&ctx, &state, forms, status).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The per-user form: role and enabled/disabled.
#[derive(Debug, Deserialize)]
pub struct UpdateUser {
    #[serde(default)]
    role: String,
    #[serde(default)]
    disabled: Option<String>,
}

async fn update(
    RequireRole { user, .. }: RequireRole<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<UpdateUser>,
) -> UiResult {
    let Some(role) = Role::parse(&form.role) else {
        return Ok(redirect_with_flash(
            "/users",
            "error",
            "Nothing changed: choose a role.",
        ));
    };
    let disabled = form.disabled.is_some();
    match service::users::update(&state, id, role, disabled, &user.email).await {
        Ok(updated) => {
            let status = if updated.disabled {
                "disabled"
            } else {
                "enabled"
            };
            Ok(redirect_with_flash(
                "/users",
                "ok",
                &format!(
                    "{} is now {} ({status}).",
                    updated.email,
                    updated.role.as_str()
                ),
            ))
        }
        Err(e @ (Error::Internal(_) | Error::Unavailable(_))) => Err(e.into()),
        Err(e) => Ok(redirect_with_flash(
            "/users",
            "error",
            &format!("Nothing changed: {e}."),
        )),
    }
}

/// The new-token form.
#[derive(Debug, Deserialize)]
pub struct NewToken {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    days: String,
}

async fn create_token(
    RequireRole { user, .. }: RequireRole<Admin>,
    ctx: Ctx,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<NewToken>,
) -> UiResult {
    let name = form.name.trim().to_owned();
    let mut forms = Forms {
        token_name: name.clone(),
        token_role: form.role.clone(),
        token_days: form.days.clone(),
        ..Forms::default()
    };
    let days = form.days.trim();
    let days = if days.is_empty() {
        Ok(None)
    } else {
        days.parse::<i64>().map(Some).map_err(|_| {
            format!(
                "{days:?} is not a number of days between 1 and {MAX_API_TOKEN_DAYS} (leave empty for no expiry)."
            )
        })
    };
    let issued = match (Role::parse(&form.role), days) {
        (_, Err(message)) => Err(Error::unprocessable(message)),
        (None, _) => Err(Error::unprocessable("Choose the role the token acts with.")),
        (Some(role), Ok(days)) => {
            service::tokens::issue_api(&state, &name, role, days, &user.person).await
        }
    };
    let issued = match issued {
        Ok(issued) => issued,
        Err(e @ Error::Unprocessable { .. }) => {
            forms.token_error = e.to_string();
            return render(&ctx, &state, forms, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
        Err(e) => return Err(e.into()),
    };
    let forms = Forms {
        secret: issued.token,
        secret_name: name,
        ..Forms::default()
    };
    render(&ctx, &state, forms, StatusCode::CREATED).await
}

/// An empty form (the CSRF token only).
#[derive(Debug, Deserialize)]
pub struct Empty {}

async fn revoke_token(
    RequireRole { user, .. }: RequireRole<Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(Empty {}): CsrfForm<Empty>,
) -> UiResult {
    let Ok(id) = Uuid::parse_str(&id) else {
        return Ok(redirect_with_flash(
            "/users",
            "error",
            "Nothing changed: no such token.",
        ));
    };
    match service::tokens::revoke_api(&state, id, &user.email).await {
        Ok(()) => Ok(redirect_with_flash(
            "/users",
            "ok",
            "Token revoked; it no longer works.",
        )),
        Err(Error::NotFound(_)) => Ok(redirect_with_flash(
            "/users",
            "error",
            "Nothing changed: the token does not exist or is already revoked.",
        )),
        Err(e) => Err(e.into()),
    }
}
