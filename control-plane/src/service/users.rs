//! Users (admin): create one with an initial password, change a role or
//! disable an account, with the rule that an admin cannot demote or
//! disable themselves (so there is always someone left to fix things).

use super::Error;
use crate::auth::password;
use crate::domain::Role;
use crate::state::AppState;
use crate::store::users::User;

/// Shortest initial password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Creates user `email` with `role` and `initial_password` as `actor`.
///
/// Errors: [`Error::Unprocessable`] (not an email address, a password
/// under [`MIN_PASSWORD_CHARS`]), [`Error::Conflict`] (the email is taken,
/// case-insensitively).
pub async fn create(
    state: &AppState,
    email: &str,
    role: Role,
    initial_password: String,
    actor: &str,
) -> Result<User, Error> {
    let email = email.trim();
    if email.is_empty() || !email.contains('@') || email.len() > 254 {
        return Err(Error::unprocessable("Enter the person's email address."));
    }
    if initial_password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::unprocessable(format!(
            "The initial password needs at least {MIN_PASSWORD_CHARS} characters."
        )));
    }
    // argon2 takes tens of milliseconds of CPU: keep it off the reactor.
    let hash = tokio::task::spawn_blocking(move || password::hash(&initial_password))
        .await?
        .map_err(|e| Error::Internal(anyhow::anyhow!(e)))?;
    let user = state.store.create_user(email, &hash, role, actor).await?;
    tracing::info!(user = %user.email, role = role.as_str(), actor = %actor, "user created");
    Ok(user)
}

/// Sets user `id`'s role and disabled flag as `actor`.
///
/// Errors: [`Error::NotFound`], [`Error::Forbidden`] (an admin demoting or
/// disabling themselves).
pub async fn update(
    state: &AppState,
    id: i64,
    role: Role,
    disabled: bool,
    actor: &str,
) -> Result<User, Error> {
    let target = state
        .store
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.id == id)
        .ok_or_else(|| Error::NotFound(format!("user {id} does not exist")))?;
    if target.email.eq_ignore_ascii_case(actor) && (disabled || role != Role::Admin) {
        return Err(Error::Forbidden(
            "you cannot demote or disable yourself; ask another admin".into(),
        ));
    }
    let user = state
        .store
        .update_user(id, Some(role), Some(disabled), actor)
        .await?;
    tracing::info!(user = %user.email, role = role.as_str(), disabled, actor = %actor, "user updated");
    Ok(user)
}
