//! `POST /login`: email and password for a user token.

use super::extract::Json;
use super::{AppState, Error};
use crate::auth::login::LoginError;
use crate::auth::{self, Role};
use axum::Router;
use axum::extract::FromRequest;
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
    request: axum::extract::Request,
) -> Result<Json<LoginResponse>, Error> {
    let client = auth::login::client_ip(request.extensions());
    let Json(req) = Json::<LoginRequest>::from_request(request, &state).await?;
    let (user, issued) = match auth::login::login(
        &state.store,
        &state.keys,
        &req.email,
        &req.password,
        client,
    )
    .await
    {
        Ok(ok) => ok,
        Err(LoginError::Internal(e)) => return Err(Error::Internal(e)),
        Err(LoginError::Invalid(m)) => return Err(Error::unprocessable(m)),
        Err(e) => return Err(Error::Unauthorized(e.to_string())),
    };
    Ok(Json(LoginResponse {
        token: issued.token,
        expires_at: issued.expires_at,
        role: user.role,
    }))
}
