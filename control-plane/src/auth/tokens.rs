//! Issuing user and agent tokens: the claims each kind carries.

use super::{Claims, KeyError, Role, SigningKey, TokenKind};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// How long a login token lasts: a working day.
pub const USER_TOKEN_LIFETIME: Duration = Duration::hours(12);

/// A signed token and when it expires.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// Its `jti`.
    pub id: Uuid,
    /// Its expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Signs a user token for `email` with `role`, valid for [`USER_TOKEN_LIFETIME`].
pub fn issue_user_token(
    key: &SigningKey,
    email: &str,
    role: Role,
) -> Result<IssuedToken, KeyError> {
    let now = Utc::now();
    let expires_at = now + USER_TOKEN_LIFETIME;
    let id = Uuid::new_v4();
    let claims = Claims {
        sub: email.to_owned(),
        kind: TokenKind::User,
        role: Some(role),
        services: Vec::new(),
        jti: id.to_string(),
        iat: now.timestamp(),
        exp: Some(expires_at.timestamp()),
    };
    Ok(IssuedToken {
        token: key.sign(&claims)?,
        id,
        expires_at: Some(expires_at),
    })
}

/// Signs an agent token named `name` for `services`. The caller records `id`
/// in the `agent_tokens` table so the token can be listed and revoked.
pub fn issue_agent_token(
    key: &SigningKey,
    id: Uuid,
    name: &str,
    services: &[String],
    expires_at: Option<DateTime<Utc>>,
) -> Result<IssuedToken, KeyError> {
    let claims = Claims {
        sub: name.to_owned(),
        kind: TokenKind::Agent,
        role: None,
        services: services.to_vec(),
        jti: id.to_string(),
        iat: Utc::now().timestamp(),
        exp: expires_at.map(|t| t.timestamp()),
    };
    Ok(IssuedToken {
        token: key.sign(&claims)?,
        id,
        expires_at,
    })
}

/// Signs an API token for automation named `name`; its `jti` is `id`, a row
/// of `api_tokens` that holds its role and makes it revocable.
pub fn issue_api_token(
    key: &SigningKey,
    id: Uuid,
    name: &str,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
) -> Result<IssuedToken, KeyError> {
    let claims = Claims {
        sub: format!("token:{name}"),
        kind: TokenKind::Api,
        role: Some(role),
        services: Vec::new(),
        jti: id.to_string(),
        iat: Utc::now().timestamp(),
        exp: expires_at.map(|t| t.timestamp()),
    };
    Ok(IssuedToken {
        token: key.sign(&claims)?,
        id,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_token_round_trip() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let id = Uuid::new_v4();
        let issued =
            issue_agent_token(&key, id, "gw-1", &["payments-api".into()], None).expect("sign");
        let claims = key.verify(&issued.token, TokenKind::Agent).expect("verify");
        assert_eq!(claims.jti, id.to_string());
        assert_eq!(claims.services, vec!["payments-api".to_string()]);
        assert!(key.verify(&issued.token, TokenKind::User).is_err());
    }

    #[test]
    fn user_token_round_trip() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let issued = issue_user_token(&key, "a@example.com", Role::Approver).expect("sign");
        let claims = key.verify(&issued.token, TokenKind::User).expect("verify");
        assert_eq!(claims.role, Some(Role::Approver));
        assert!(claims.exp.is_some());
    }
}
