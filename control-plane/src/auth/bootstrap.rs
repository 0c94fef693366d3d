//! The first admin from a Secret (`serve --bootstrap-admin-email E
//! --bootstrap-admin-password-file F`): created at start-up only while no
//! user exists, so a fresh install can be logged into without a `kubectl
//! exec`, and a running one is never touched.

use super::password;
use crate::store::users::User;
use crate::store::{Store, StoreError};
use std::path::Path;

/// The actor recorded in the audit log for the bootstrap admin's creation.
pub const BOOTSTRAP_ACTOR: &str = "bootstrap";

/// Shortest password accepted, in characters (as for `user add`).
pub const MIN_PASSWORD_CHARS: usize = 8;

/// What [`bootstrap_admin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapOutcome {
    /// No user existed: this admin was created (one `user.create` audit row).
    Created(User),
    /// Users already exist: nothing was read or written.
    UsersExist,
}

/// Why the bootstrap admin could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The email is empty or not an address.
    #[error("--bootstrap-admin-email must be an email address, got {0:?}")]
    Email(String),
    /// The password file could not be read.
    #[error("reading --bootstrap-admin-password-file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The password is too short (or the file is empty).
    #[error(
        "the bootstrap admin password in {0} must have at least {MIN_PASSWORD_CHARS} characters"
    )]
    WeakPassword(String),
    /// Hashing failed.
    #[error("hashing the bootstrap admin password: {0}")]
    Hash(String),
    /// The database refused or did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates `email` as an admin with the password in `password_file` (its
/// first line; a trailing newline is ignored) if and only if no user exists.
///
/// Idempotent: once any user exists it returns
/// [`BootstrapOutcome::UsersExist`] without reading the file, so the Secret
/// may be deleted after the first login. Safe when several replicas start at
/// once (see [`Store::create_first_admin`]).
pub async fn bootstrap_admin(
    store: &Store,
    email: &str,
    password_file: &Path,
) -> Result<BootstrapOutcome, BootstrapError> {
    let email = email.trim();
    if email.is_empty() || !email.contains('@') {
        return Err(BootstrapError::Email(email.to_owned()));
    }
    if store.has_users().await? {
        return Ok(BootstrapOutcome::UsersExist);
    }
    let shown = password_file.display().to_string();
    let text =
        std::fs::read_to_string(password_file).map_err(|source| BootstrapError::PasswordFile {
            path: shown.clone(),
            source,
        })?;
    let password = text.lines().next().unwrap_or_default().to_owned();
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(BootstrapError::WeakPassword(shown));
    }
    let hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| BootstrapError::Hash(e.to_string()))?
        .map_err(BootstrapError::Hash)?;
    Ok(
        match store
            .create_first_admin(email, &hash, BOOTSTRAP_ACTOR)
            .await?
        {
            Some(user) => BootstrapOutcome::Created(user),
            None => BootstrapOutcome::UsersExist,
        },
    )
}
