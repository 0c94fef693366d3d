//! `POST /login`: email and password for a user token.

use super::extract::Json;
use super::{AppState, Error};
use crate::auth::login::LoginError;
use crate::auth::{self, Role};
use axum::extract::FromRequest;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, with their OpenAPI entries.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login))
}

/// Login request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user's email.
    #[schema(pattern = "^[^\\u0000]*$", example = "alice@example.com")]
    pub email: String,
    /// The password.
    #[schema(pattern = "^[^\\u0000]*$")]
    pub password: String,
}

/// Login response body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// The bearer token for `Authorization: Bearer`.
    pub token: String,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// The user's role.
    pub role: Role,
}

/// Exchange email and password for a user token (12 h). Too many failures
/// for one account or client address lock it for 15 minutes (401).
#[utoipa::path(
    post,
    path = "/login",
    tag = "auth",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A bearer token", body = LoginResponse),
        (status = 401, description = "Wrong email or password, or locked out after too many failures"),
        (status = 422, description = "Not JSON of the documented shape, or NUL characters"),
    ),
)]
async fn login(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Result<Json<LoginResponse>, Error> {
    let client = auth::login::client_ip(request.extensions());
    let Json(req) = Json::<LoginRequest>::from_request(request, &state).await?;
    let (user, issued) = match auth::login::login(
        &state.store,
        &state.keys,
        &state.sign_in.local_login,
        &req.email,
        &req.password,
        client,
    )
    .await
    {
        Ok(ok) => ok,
        Err(LoginError::Internal(e)) => return Err(Error::from(e)),
        Err(LoginError::Invalid(m)) => return Err(Error::unprocessable(m)),
        Err(e) => return Err(Error::Unauthorized(e.to_string())),
    };
    Ok(Json(LoginResponse {
        token: issued.token,
        expires_at: issued.expires_at,
        role: user.role,
    }))
}
