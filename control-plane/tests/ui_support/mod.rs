//! Shared by the `ui_*` tests: a control plane serving the API and the UI on
//! a loopback port over a fresh database, users of every role, and a small
//! cookie-keeping HTTP client that fills in forms like a browser does.
#![allow(dead_code)]

pub mod blocked;
pub mod browser;

use anyhow::{Context, Result, bail};
use corsair_control_plane::auth::Role;
use corsair_control_plane::store::services::ServiceSettings;
use corsair_control_plane::testing::{self, ControlPlane, Options};
#[allow(unused_imports)] // each test binary uses its own subset
pub use corsair_control_plane::testing::{PASSWORD, ROLES, email};
use std::collections::HashMap;
use std::ops::Deref;

/// The control-plane fixture (API + UI over HTTP, PolicySync over gRPC on
/// loopback ports, a user per role) with a service `payments-api`.
pub struct Server {
    /// `http://<http addr>`.
    pub base: String,
    /// `http://<grpc addr>`.
    pub grpc_url: String,
    cp: ControlPlane,
}

impl Deref for Server {
    type Target = ControlPlane;
    fn deref(&self) -> &ControlPlane {
        &self.cp
    }
}

impl Server {
    /// Starts one with a user per role and a service `payments-api`.
    pub async fn start(single_operator: bool) -> Result<Self> {
        let cp = testing::ControlPlane::start(Options {
            single_operator,
            ..Options::default()
        })
        .await?;
        cp.db
            .store
            .create_service(
                "payments-api",
                "Payments",
                &ServiceSettings::default(),
                "test",
            )
            .await?;
        Ok(Self {
            base: cp.url(""),
            grpc_url: cp.grpc_url(),
            cp,
        })
    }

    /// A browser-like client, not signed in.
    pub fn client(&self) -> Result<Browser> {
        Ok(Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            base: self.base.clone(),
            cookies: HashMap::new(),
        })
    }

    /// A client signed in through the login form as the user with `role`.
    pub async fn signed_in(&self, role: Role) -> Result<Browser> {
        let mut b = self.client()?;
        let r = b.login(&email(role), PASSWORD).await?;
        if r.status != 303 {
            bail!("login as {role:?} answered {}: {}", r.status, r.body);
        }
        Ok(b)
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: String,
    pub body: String,
}

impl Page {
    /// The value of the first `<input ... name="NAME" value="...">` on the page.
    pub fn input(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let at = self.body.find(&marker)? + marker.len();
        Some(self.body[at..].split('"').next()?.to_string())
    }
}

/// A cookie-keeping client that does not follow redirects.
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub cookies: HashMap<String, String>,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn read(&mut self, r: reqwest::Response) -> Result<Page> {
        for v in r.headers().get_all("set-cookie") {
            let text = v.to_str()?;
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((k, val)) = pair.split_once('=') {
                if val.is_empty() || text.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), val.to_string());
                }
            }
        }
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok(Page {
            status,
            location,
            body: r.text().await?,
        })
    }

    /// GET `path`.
    pub async fn get(&mut self, path: &str) -> Result<Page> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await?;
        self.read(r).await
    }

    /// POSTs a form exactly as given (no CSRF token added).
    pub async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Result<Page> {
        let body = serde_urlencoded::to_string(fields)?;
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        self.read(r).await
    }

    /// The CSRF token of this session, read from a page like a browser would.
    pub async fn csrf(&mut self) -> Result<String> {
        let page = self.get("/services").await?;
        page.input("csrf").context("no CSRF field on /services")
    }

    /// POSTs a form with this session's CSRF token.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Result<Page> {
        let csrf = self.csrf().await?;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Signs in through the login form.
    pub async fn login(&mut self, email: &str, password: &str) -> Result<Page> {
        let form = self.get("/login").await?;
        let token = form
            .input("login_csrf")
            .context("no login_csrf on /login")?;
        self.post_raw(
            "/login",
            &[
                ("login_csrf", &token),
                ("next", "/services"),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }

    /// Follows a redirect's flash message: GETs the location.
    pub async fn follow(&mut self, page: &Page) -> Result<Page> {
        if page.location.is_empty() {
            bail!("not a redirect: {} {}", page.status, page.body);
        }
        self.get(&page.location.clone()).await
    }
}
