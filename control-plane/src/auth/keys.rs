//! The signing key and the JWTs it signs (user sessions and agent tokens).

use super::Role;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::io::Write;
use std::path::Path;

/// Length of a freshly generated HMAC key, in bytes.
const KEY_LEN: usize = 64;
/// Shortest key accepted from a file, in bytes.
const MIN_KEY_LEN: usize = 32;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A person (or automation acting with a user role) calling the API/UI.
    User,
    /// An agent presenting itself on the gRPC stream.
    Agent,
    /// An API token for automation: its `jti` is a row of `api_tokens`,
    /// which holds its role and whether it still works.
    Api,
}

/// The claims Corsair puts in every token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User email, or the agent token's name.
    pub sub: String,
    /// User or agent token.
    pub kind: TokenKind,
    /// The user's role (user tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The services an agent token may subscribe to (agent tokens only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Token id: a UUID, used for revocation.
    pub jti: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expiry (seconds since the epoch); agent tokens may have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

/// Errors loading the key or checking a token.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or created.
    #[error("signing key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file's contents are not a usable key.
    #[error("signing key file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The token is malformed, badly signed, expired or of the wrong kind.
    #[error("invalid token: {0}")]
    Token(String),
}

/// The HMAC key that signs and verifies every Corsair token. Every replica
/// must read the same file.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// HMAC-SHA256 keyed with the same secret, for CSRF tokens (cloned
    /// per use: the key schedule is computed once).
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// A key from raw bytes (tests, or a key held elsewhere).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            // HMAC takes a key of any length (longer ones are hashed first),
            // so this cannot fail.
            mac: <Hmac<Sha256> as KeyInit>::new_from_slice(bytes)
                .expect("HMAC accepts keys of any length"),
        }
    }

    /// HMAC-SHA256 of `message` under this key, as 64 lowercase hex
    /// digits: CSRF tokens bound to a session id, which nobody without the
    /// key can compute.
    pub fn mac_hex(&self, message: &str) -> String {
        hex::encode(
            self.mac
                .clone()
                .chain_update(message)
                .finalize()
                .into_bytes(),
        )
    }

    /// 32 bytes derived from this key for `purpose` (HMAC-SHA256 of the
    /// purpose string): a key of its own for another use, e.g. encrypting
    /// the OpenID Connect sign-in cookie, that reveals nothing of this one.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        self.mac
            .clone()
            .chain_update(purpose)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `given` is [`SigningKey::mac_hex`] of `message`, compared in
    /// constant time (`hmac`'s `verify_slice`). Not hex, the wrong length or
    /// the wrong value: `false`.
    pub fn verify_mac_hex(&self, message: &str, given: &str) -> bool {
        let Ok(tag) = hex::decode(given) else {
            return false;
        };
        self.mac
            .clone()
            .chain_update(message)
            .verify_slice(&tag)
            .is_ok()
    }

    /// Loads the hex-encoded key in `path`, creating the file (mode 0600) with
    /// a fresh random key when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let io = |source| KeyError::Io {
            path: shown.clone(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(text.trim()).map_err(|message| KeyError::Invalid {
                path: shown.clone(),
                message,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; KEY_LEN];
                rand::fill(&mut bytes[..]);
                let hex = hex::encode(bytes);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(path) {
                    Ok(mut file) => {
                        file.write_all(hex.as_bytes()).map_err(io)?;
                        file.write_all(b"\n").map_err(io)?;
                        file.sync_all().map_err(io)?;
                        Ok(Self::from_bytes(&bytes))
                    }
                    // Another replica created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text).map_err(|_| "expected the key as hex digits".to_owned())?;
        if bytes.len() < MIN_KEY_LEN {
            return Err(format!(
                "key is {} bytes, need at least {MIN_KEY_LEN}",
                bytes.len()
            ));
        }
        Ok(Self::from_bytes(&bytes))
    }

    /// Signs `claims` (HS256).
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| KeyError::Token(e.to_string()))
    }

    /// Verifies signature and expiry and that the token is of `kind`.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, KeyError> {
        let claims = self.verify_any(token)?;
        if claims.kind != kind {
            return Err(KeyError::Token(format!("expected a {kind:?} token")));
        }
        Ok(claims)
    }

    /// Verifies signature and expiry, whatever the token's kind.
    pub fn verify_any(&self, token: &str) -> Result<Claims, KeyError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` is optional (agent tokens may be long-lived); checked below.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| KeyError::Token(e.to_string()))?;
        let claims = data.claims;
        if let Some(exp) = claims.exp
            && exp <= chrono::Utc::now().timestamp()
        {
            return Err(KeyError::Token("token has expired".into()));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests;
