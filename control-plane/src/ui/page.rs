//! What every page shares: the layout context (who is signed in, their
//! CSRF token, the navigation), flash messages carried across a redirect
//! in a short-lived cookie, and error pages.

use crate::auth::session::set_cookie;
use crate::auth::{CurrentUser, RequireRole, Role, Viewer};
use crate::service::Error;
use crate::state::AppState;
use askama::Template;
use axum::extract::FromRequestParts;
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::StatusCode;
use http::header::SET_COOKIE;
use http::request::Parts;

const FLASH_COOKIE: &str = "corsair_flash";

/// A one-off message shown on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// `ok` or `error`: the message's colour.
    pub kind: &'static str,
    /// The text.
    pub message: String,
}

/// The layout context: every page template has one as `page`.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The page title (also the `<h1>`).
    pub title: String,
    /// Which navigation entry is current.
    pub nav: &'static str,
    /// Who is signed in.
    pub email: String,
    /// Their role.
    pub role: &'static str,
    /// The CSRF token for this session's forms.
    pub csrf: String,
    /// A message from the previous action.
    pub flash: Option<Flash>,
    /// May request origins and edit descriptions.
    pub can_request: bool,
    /// May approve, reject, revoke and edit policy settings.
    pub can_approve: bool,
    /// May manage users, tokens and services.
    pub is_admin: bool,
}

impl Layout {
    fn for_user(user: &CurrentUser, flash: Option<Flash>) -> Self {
        Layout {
            title: String::new(),
            nav: "",
            email: user.email.clone(),
            role: user.role.as_str(),
            csrf: user
                .session
                .as_ref()
                .map(|s| s.csrf.clone())
                .unwrap_or_default(),
            flash,
            can_request: user.role >= Role::Requester,
            can_approve: user.role >= Role::Approver,
            is_admin: user.role >= Role::Admin,
        }
    }
}

/// The signed-in viewer (or better) with the layout context; extracting it
/// consumes the flash cookie.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The caller.
    pub user: CurrentUser,
    flash: Option<Flash>,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = crate::auth::AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let RequireRole { user, .. } =
            RequireRole::<Viewer>::from_request_parts(parts, state).await?;
        let flash = crate::auth::session::cookie(&parts.headers, FLASH_COOKIE)
            .and_then(|v| decode_flash(&v));
        Ok(Ctx { user, flash })
    }
}

impl Ctx {
    /// `error` as an error page that keeps this user's navigation.
    pub fn error(&self, error: impl Into<Error>) -> UiError {
        UiError {
            error: error.into(),
            user: Some(self.user.clone()),
        }
    }

    /// The layout for a page titled `title` under navigation entry `nav`.
    pub fn layout(&self, title: impl Into<String>, nav: &'static str) -> Layout {
        let mut layout = Layout::for_user(&self.user, self.flash.clone());
        layout.title = title.into();
        layout.nav = nav;
        layout
    }

    /// Renders `template` with `status`, clearing a consumed flash.
    pub fn render<T: Template>(&self, status: StatusCode, template: &T) -> Response {
        let mut response = render(status, template);
        if self.flash.is_some() {
            clear_flash(&mut response);
        }
        response
    }
}

/// Renders a template to an HTML response (a render failure is logged and
/// answered with a plain 500).
pub fn render<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the cause is in the control plane's log",
            )
                .into_response()
        }
    }
}

fn clear_flash(response: &mut Response) {
    append_cookie(response, &set_cookie(FLASH_COOKIE, "", "/", 0, false));
}

fn append_cookie(response: &mut Response, set_cookie: &str) {
    if let Ok(v) = http::HeaderValue::from_str(set_cookie) {
        response.headers_mut().append(SET_COOKIE, v);
    }
}

/// The flash cookie's value: `kind:message` (the `cookie` crate
/// percent-encodes it in `Set-Cookie` and decodes it when read).
fn encode_flash(kind: &str, message: &str) -> String {
    format!("{kind}:{message}")
}

fn decode_flash(value: &str) -> Option<Flash> {
    let (kind, message) = value.split_once(':')?;
    let kind = match kind {
        "ok" => "ok",
        _ => "error",
    };
    Some(Flash {
        kind,
        message: message.to_owned(),
    })
}

/// A 303 redirect to `to` that shows `message` there (`ok` or `error`).
pub fn redirect_with_flash(to: &str, kind: &str, message: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    // Keep the cookie small: long messages are cut (at a char boundary).
    let short: String = message.chars().take(600).collect();
    append_cookie(
        &mut response,
        &set_cookie(FLASH_COOKIE, &encode_flash(kind, &short), "/", 60, false),
    );
    response
}

/// The message a person sees for an error (internal causes stay in the log).
pub fn message_of(error: &Error) -> String {
    match error {
        Error::Internal(cause) => {
            tracing::error!(error = ?cause, "internal error serving a page");
            "Something went wrong on our side; the cause is in the control plane's log.".to_owned()
        }
        other => other.to_string(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: Layout,
    status: u16,
    message: String,
}

/// An error page for `error` (the layout shows `user`'s navigation when known).
pub fn error_page(user: Option<&CurrentUser>, error: &Error) -> Response {
    let status = error.status();
    let heading = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::SERVICE_UNAVAILABLE => "Temporarily unavailable",
        s if s.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    let mut page = match user {
        Some(u) => Layout::for_user(u, None),
        None => Layout {
            title: String::new(),
            nav: "",
            email: String::new(),
            role: "",
            csrf: String::new(),
            flash: None,
            can_request: false,
            can_approve: false,
            is_admin: false,
        },
    };
    page.title = heading.to_owned();
    let mut response = render(
        status,
        &ErrorPage {
            page,
            status: status.as_u16(),
            message: message_of(error),
        },
    );
    if let Error::Unavailable(_) = error {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(crate::service::RETRY_AFTER_SECS),
        );
    }
    response
}

/// Renders an auth extractor's refusal for a person: a redirect to the login
/// page (coming back afterwards) when not signed in, else an error page.
pub async fn render_refusal(mut response: Response) -> Response {
    match crate::auth::take_refusal(&mut response) {
        Some(refusal) => match refusal.error {
            Error::Unauthorized(_) => {
                let query = super::query(&[("next", &refusal.path)]);
                Redirect::to(&format!("/login?{query}")).into_response()
            }
            other => error_page(refusal.user.as_ref(), &other),
        },
        None => response,
    }
}

/// The 403 page.
pub fn forbidden_page(user: Option<&CurrentUser>, message: &str) -> Response {
    error_page(user, &Error::Forbidden(message.to_owned()))
}

/// Handler errors on UI routes: rendered as an error page.
#[derive(Debug)]
pub struct UiError {
    /// The error.
    pub error: Error,
    /// Who hit it.
    pub user: Option<CurrentUser>,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        error_page(self.user.as_ref(), &self.error)
    }
}

impl<E: Into<Error>> From<E> for UiError {
    fn from(e: E) -> Self {
        UiError {
            error: e.into(),
            user: None,
        }
    }
}

/// `Result` for UI handlers.
pub type UiResult = Result<Response, UiError>;

/// Shows a timestamp compactly in UTC.
pub fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An optional timestamp, or an em dash.
pub fn when_opt(t: &Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.as_ref().map_or_else(|| "—".to_owned(), when)
}
