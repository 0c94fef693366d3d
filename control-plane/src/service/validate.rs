//! Input validation. Origin patterns and policy settings are checked with
//! the agent's own engine, so the API can never accept what agents refuse.

use super::Error;
use crate::domain::Detail;
use corsair_agent::engine::{Policy, PolicyError, PolicySettings, parse_origin_pattern};

/// Longest free-text field we store (reasons, notes, descriptions), in characters.
pub const MAX_TEXT_LEN: usize = 4096;

/// A service name must be a DNS-label-like slug (the database checks the same).
pub fn service_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::unprocessable(format!(
            "invalid service name {name:?}: use 1-63 lowercase letters, digits and '-', \
             not starting or ending with '-' (e.g. payments-api)"
        )))
    }
}

/// A bounded free-text field.
pub fn text(field: &str, value: &str, required: bool) -> Result<(), Error> {
    if required && value.trim().is_empty() {
        return Err(Error::unprocessable(format!("{field} must not be empty")));
    }
    if value.contains('\0') {
        return Err(Error::unprocessable(format!(
            "{field} must not contain NUL characters"
        )));
    }
    // Characters, not bytes: the limit the OpenAPI document states
    // (`maxLength` counts characters).
    if value.chars().count() > MAX_TEXT_LEN {
        return Err(Error::unprocessable(format!(
            "{field} is longer than {MAX_TEXT_LEN} characters"
        )));
    }
    Ok(())
}

fn policy_error(context: &str, e: PolicyError) -> Error {
    let details: Vec<Detail> = e
        .problems
        .into_iter()
        .map(|p| Detail {
            field: p.field,
            value: p.value,
            message: p.message,
        })
        .collect();
    let listed: Vec<String> = details
        .iter()
        .map(|d| format!("{} {:?}: {}", d.field, d.value, d.message))
        .collect();
    Error::Unprocessable {
        message: format!("{context}: {}", listed.join("; ")),
        details,
    }
}

/// Checks `settings` together with `origins` as agents would compile them:
/// the engine is the one judge (methods, headers, max-age, origins), and
/// [`Error::Unprocessable`] lists every problem it found, field by field.
pub fn policy(settings: &PolicySettings, origins: Vec<String>) -> Result<(), Error> {
    Policy::compile(&settings.with_origins(origins))
        .map(|_| ())
        .map_err(|e| policy_error("invalid policy", e))
}

/// Parses an origin pattern, returning its canonical form, and checks it in
/// the context of the service's settings (e.g. plain `http` with credentials)
/// and its already-approved origins.
pub fn origin(
    pattern: &str,
    settings: &PolicySettings,
    mut approved: Vec<String>,
) -> Result<String, Error> {
    let canonical = parse_origin_pattern(pattern).map_err(|message| Error::Unprocessable {
        message: format!("invalid origin pattern {pattern:?}: {message}"),
        details: vec![Detail {
            field: "pattern".into(),
            value: pattern.into(),
            message,
        }],
    })?;
    approved.retain(|p| *p != canonical);
    approved.push(canonical.clone());
    Policy::compile(&settings.with_origins(approved)).map_err(|e| {
        policy_error(
            &format!("origin {canonical} does not fit this service's policy"),
            e,
        )
    })?;
    Ok(canonical)
}
