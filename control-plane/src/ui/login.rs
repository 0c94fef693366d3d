//! `/login` and `/logout`.
//!
//! The login form carries its own CSRF token (there is no session yet): a
//! random value set in a short-lived `SameSite=Strict` cookie and echoed in
//! the form, so another site cannot log a browser in to an account of its
//! choosing.

use super::local_path;
use super::page::{Layout, redirect_with_flash, render};
use crate::auth::login::client_ip;
use crate::auth::login::{LoginError, login};
use crate::auth::session::{clear_session_cookie, cookie, session_cookie, set_cookie};
use crate::auth::{CsrfForm, CurrentUser};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use http::header::SET_COOKIE;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

const LOGIN_CSRF_COOKIE: &str = "corsair_login_csrf";

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(show).post(submit))
        .route("/logout", post(logout))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: Layout,
    email: String,
    next: String,
    error: String,
    login_csrf: String,
}

/// Query of `GET /login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

fn anonymous_layout() -> Layout {
    Layout {
        title: "Sign in".into(),
        nav: "login",
        email: String::new(),
        role: "",
        csrf: String::new(),
        flash: None,
        can_request: false,
        can_approve: false,
        is_admin: false,
    }
}

fn login_page(
    status: StatusCode,
    email: String,
    next: String,
    error: String,
    secure: bool,
) -> Response {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes[..]);
    let token = hex::encode(bytes);
    let mut response = render(
        status,
        &LoginPage {
            page: anonymous_layout(),
            email,
            next,
            error,
            login_csrf: token.clone(),
        },
    );
    if let Ok(v) = http::HeaderValue::from_str(&set_cookie(
        LOGIN_CSRF_COOKIE,
        &token,
        "/login",
        3600,
        secure,
    )) {
        response.headers_mut().append(SET_COOKIE, v);
    }
    response
}

async fn show(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let next = local_path(q.next.as_deref(), "/services");
    login_page(
        StatusCode::OK,
        String::new(),
        next,
        String::new(),
        state.secure_cookies,
    )
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    login_csrf: String,
}

async fn submit(State(state): State<AppState>, headers: HeaderMap, request: Request) -> Response {
    let client = client_ip(request.extensions());
    let form = match <Form<LoginForm> as axum::extract::FromRequest<AppState>>::from_request(
        request, &state,
    )
    .await
    {
        Ok(Form::<LoginForm>(f)) => f,
        Err(_) => {
            return login_page(
                StatusCode::BAD_REQUEST,
                String::new(),
                "/services".into(),
                "The form could not be read; please try again.".into(),
                state.secure_cookies,
            );
        }
    };
    let next = local_path(Some(&form.next), "/services");
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || expected != form.login_csrf {
        return login_page(
            StatusCode::FORBIDDEN,
            form.email,
            next,
            "This sign-in form expired or came from another site; please sign in again.".into(),
            state.secure_cookies,
        );
    }
    if form.email.trim().is_empty() || form.password.is_empty() {
        return login_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            form.email,
            next,
            "Enter your email and password.".into(),
            state.secure_cookies,
        );
    }
    match login(
        &state.store,
        &state.keys,
        &form.email,
        &form.password,
        client,
    )
    .await
    {
        Ok((user, issued)) => {
            tracing::info!(actor = %user.email, "signed in to the UI");
            let expires = issued.expires_at.unwrap_or_else(chrono::Utc::now);
            let mut response = Redirect::to(&next).into_response();
            for c in [
                session_cookie(&issued.token, expires, state.secure_cookies),
                set_cookie(LOGIN_CSRF_COOKIE, "", "/login", 0, state.secure_cookies),
            ] {
                if let Ok(v) = http::HeaderValue::from_str(&c) {
                    response.headers_mut().append(SET_COOKIE, v);
                }
            }
            response
        }
        Err(LoginError::Internal(e)) => match crate::service::Error::from(e) {
            crate::service::Error::Unavailable(message) => login_page(
                StatusCode::SERVICE_UNAVAILABLE,
                form.email,
                next,
                format!("Signing in is not possible right now: {message}."),
                state.secure_cookies,
            ),
            e => {
                tracing::error!(error = ?e, "login failed");
                login_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    form.email,
                    next,
                    "Signing in failed on our side; try again.".into(),
                    state.secure_cookies,
                )
            }
        },
        Err(e @ LoginError::Locked) => login_page(
            StatusCode::TOO_MANY_REQUESTS,
            form.email,
            next,
            format!("{e}."),
            state.secure_cookies,
        ),
        Err(LoginError::Invalid(m)) => login_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            form.email,
            next,
            format!("{m}."),
            state.secure_cookies,
        ),
        Err(LoginError::Refused) => login_page(
            StatusCode::UNAUTHORIZED,
            form.email,
            next,
            "Wrong email or password.".into(),
            state.secure_cookies,
        ),
    }
}

/// The logout form (just the CSRF token).
#[derive(Debug, Deserialize)]
pub struct Empty {}

async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
    CsrfForm(Empty {}): CsrfForm<Empty>,
) -> Response {
    if let Some(session) = &user.session
        && let Err(e) = state
            .store
            .revoke_session(session.id, session.expires_at)
            .await
    {
        tracing::error!(error = %e, "revoking a session failed");
        return redirect_with_flash(
            "/services",
            "error",
            "Signing out failed on our side; try again.",
        );
    }
    tracing::info!(actor = %user.email, "signed out of the UI");
    let mut response = Redirect::to("/login").into_response();
    if let Ok(v) = http::HeaderValue::from_str(&clear_session_cookie(state.secure_cookies)) {
        response.headers_mut().append(SET_COOKIE, v);
    }
    response
}
