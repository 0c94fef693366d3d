//! `/login`, `/login/oidc` (sign-in through the OpenID Connect provider),
//! `/login/oidc/callback` and `/logout`.
//!
//! The login form carries its own CSRF token (there is no session yet): a
//! random value set in a short-lived `SameSite=Strict` cookie and echoed in
//! the form, so another site cannot log a browser in to an account of its
//! choosing. The provider's sign-in is protected the same way by its
//! `state`, kept with the nonce and PKCE verifier in an encrypted cookie
//! (`auth::oidc::pending`).

use super::local_path;
use super::page::{Layout, redirect_with_flash, render};
use crate::auth::login::client_ip;
use crate::auth::login::{LocalLogin, LoginError, login};
use crate::auth::oidc::pending::{PENDING_COOKIE, PendingSignIn};
use crate::auth::session::{clear_session_cookie, cookie, session_cookie, set_cookie};
use crate::auth::{CsrfForm, CurrentUser};
use crate::service::users::{OidcCallback, SignInRefusal, oidc_sign_in};
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
        .route("/login/oidc", get(oidc_begin))
        .route("/login/oidc/callback", get(oidc_callback))
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
    /// Offer "Sign in with your identity provider".
    oidc: bool,
    /// Its link (`/login/oidc?next=…`).
    oidc_href: String,
    /// Show the password form open (else folded as the break-glass form,
    /// or absent when no account may use it).
    password_form: PasswordForm,
}

#[derive(PartialEq, Eq)]
enum PasswordForm {
    Open,
    BreakGlass,
    Hidden,
}

#[derive(Template)]
#[template(path = "signed_in.html")]
struct SignedInPage {
    next: String,
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
    state: &AppState,
    status: StatusCode,
    email: String,
    next: String,
    error: String,
) -> Response {
    let secure = state.secure_cookies;
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes[..]);
    let token = hex::encode(bytes);
    let mut response = render(
        status,
        &LoginPage {
            page: anonymous_layout(),
            email,
            next: next.clone(),
            error,
            login_csrf: token.clone(),
            oidc: state.sign_in.oidc.is_some(),
            oidc_href: format!("/login/oidc?{}", super::query(&[("next", next.as_str())])),
            password_form: match &state.sign_in.local_login {
                LocalLogin::Enabled => PasswordForm::Open,
                LocalLogin::BreakGlassOnly(Some(_)) => PasswordForm::BreakGlass,
                LocalLogin::BreakGlassOnly(None) => PasswordForm::Hidden,
            },
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
    login_page(&state, StatusCode::OK, String::new(), next, String::new())
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
                &state,
                StatusCode::BAD_REQUEST,
                String::new(),
                "/services".into(),
                "The form could not be read; please try again.".into(),
            );
        }
    };
    let next = local_path(Some(&form.next), "/services");
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || expected != form.login_csrf {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            form.email,
            next,
            "This sign-in form expired or came from another site; please sign in again.".into(),
        );
    }
    if form.email.trim().is_empty() || form.password.is_empty() {
        return login_page(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            form.email,
            next,
            "Enter your email and password.".into(),
        );
    }
    match login(
        &state.store,
        &state.keys,
        &state.sign_in.local_login,
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
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                form.email,
                next,
                format!("Signing in is not possible right now: {message}."),
            ),
            e => {
                tracing::error!(error = ?e, "login failed");
                login_page(
                    &state,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    form.email,
                    next,
                    "Signing in failed on our side; try again.".into(),
                )
            }
        },
        Err(e @ LoginError::Locked) => login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            form.email,
            next,
            format!("{e}."),
        ),
        Err(LoginError::Invalid(m)) => login_page(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            form.email,
            next,
            format!("{m}."),
        ),
        Err(LoginError::Refused) => login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            form.email,
            next,
            "Wrong email or password.".into(),
        ),
        Err(LoginError::LocalLoginDisabled) => login_page(
            &state,
            StatusCode::FORBIDDEN,
            form.email,
            next,
            "Password sign-in is turned off; sign in with your identity provider.".into(),
        ),
    }
}

/// Query of `GET /login/oidc`.
#[derive(Debug, Deserialize)]
pub struct OidcBeginQuery {
    next: Option<String>,
}

/// Starts a sign-in at the provider: keeps its state in the encrypted
/// cookie and sends the browser to the provider's authorization endpoint.
async fn oidc_begin(State(state): State<AppState>, Query(q): Query<OidcBeginQuery>) -> Response {
    let next = local_path(q.next.as_deref(), "/services");
    let Some(oidc) = &state.sign_in.oidc else {
        return login_page(
            &state,
            StatusCode::NOT_FOUND,
            String::new(),
            next,
            "Sign-in with an identity provider is not set up here.".into(),
        );
    };
    let (url, pending) = oidc.begin(&next);
    let mut response = Redirect::to(&url).into_response();
    if let Ok(v) =
        http::HeaderValue::from_str(&pending.set_cookie(&state.keys, state.secure_cookies))
    {
        response.headers_mut().append(SET_COOKIE, v);
    }
    response
}

/// Query of `GET /login/oidc/callback` (the provider's redirect back).
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Finishes a sign-in: the service layer checks it all and records it; a
/// refusal is the sign-in page saying why.
async fn oidc_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let client = client_ip(request.extensions());
    let query = Query::<CallbackQuery>::try_from_uri(request.uri())
        .map(|Query(q)| q)
        .unwrap_or(CallbackQuery {
            code: None,
            state: None,
            error: Some("invalid_request".into()),
            error_description: Some("the callback's query could not be read".into()),
        });
    let pending = cookie(&headers, PENDING_COOKIE)
        .and_then(|sealed| PendingSignIn::open(&state.keys, &sealed));
    let callback = OidcCallback {
        code: query.code,
        state: query.state,
        error: query.error,
        error_description: query.error_description,
    };
    let next = pending
        .as_ref()
        .map(|p| local_path(Some(&p.next), "/services"))
        .unwrap_or_else(|| "/services".into());
    let outcome = oidc_sign_in(&state, pending.as_ref(), &callback, client).await;
    let mut response = match outcome {
        Ok((user, issued)) => {
            tracing::info!(actor = %user.email, "signed in to the UI");
            let expires = issued.expires_at.unwrap_or_else(chrono::Utc::now);
            // A page, not a redirect: the session cookie is SameSite=Strict,
            // and a browser does not send it on a redirect chain that began
            // at the provider's site; this page's own navigation is same-site.
            let mut response = render(StatusCode::OK, &SignedInPage { next });
            if let Ok(v) = http::HeaderValue::from_str(&session_cookie(
                &issued.token,
                expires,
                state.secure_cookies,
            )) {
                response.headers_mut().append(SET_COOKIE, v);
            }
            response
        }
        Err(refusal) => {
            let status = match &refusal {
                SignInRefusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                SignInRefusal::NotConfigured => StatusCode::NOT_FOUND,
                SignInRefusal::Oidc(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::FORBIDDEN,
            };
            let message = refusal.to_string();
            let mut first = message.chars();
            let message = first
                .next()
                .map(|c| c.to_uppercase().chain(first).collect::<String>())
                .unwrap_or_default();
            login_page(&state, status, String::new(), next, format!("{message}."))
        }
    };
    if let Ok(v) = http::HeaderValue::from_str(&PendingSignIn::clear_cookie(state.secure_cookies)) {
        response.headers_mut().append(SET_COOKIE, v);
    }
    response
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
