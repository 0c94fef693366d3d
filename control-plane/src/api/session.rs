//! `POST /login`: email and password for a user token.

use super::extract::Json;
use super::{AppState, Error};
use crate::auth::{Role, issue_user_token, password};
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/login", post(login))
}

/// Login request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user's email.
    pub email: String,
    /// The password.
    pub password: String,
}

/// Login response body.
#[derive(Debug, Serialize)]
pub struct LoginResponse {
    /// The bearer token for `Authorization: Bearer`.
    pub token: String,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// The user's role.
    pub role: Role,
}

async fn login(
    State(state): State<AppState>,
    Json(req): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, Error> {
    let refused = || Error::Unauthorized("wrong email or password".into());
    let found = state.store.user_credentials(&req.email).await?;
    // argon2 takes tens of milliseconds of CPU: keep it off the reactor.
    let (user, ok) = tokio::task::spawn_blocking(move || match found {
        Some(c) => {
            let ok = password::verify(&req.password, &c.password_hash);
            (Some(c.user), ok)
        }
        None => {
            password::verify_dummy(&req.password);
            (None, false)
        }
    })
    .await?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => return Err(refused()),
    };
    let issued = issue_user_token(&state.keys, &user.email, user.role)?;
    Ok(Json(LoginResponse {
        token: issued.token,
        expires_at: issued.expires_at,
        role: user.role,
    }))
}
