//! The transient state of one sign-in between the redirect to the provider
//! and its callback (`state`, `nonce`, PKCE verifier, where to go next),
//! kept in the browser in a cookie the `cookie` crate encrypts and
//! authenticates (its private jar: AES-256-GCM under a key derived from the
//! signing key).
//!
//! Why a cookie and not a table: nothing is written for a sign-in that is
//! merely started (anyone can start one), no clean-up job is needed, and
//! every replica sharing the signing key can finish what another began. Why
//! private and not only signed: the nonce and the PKCE verifier are secrets
//! until the code is redeemed; encryption keeps them out of anything that
//! sees the cookie (logs, proxies, extensions).

use super::super::SigningKey;
use chrono::{DateTime, Duration, Utc};
use cookie::{Cookie, CookieJar, Key, SameSite};
use serde::{Deserialize, Serialize};

/// The cookie's name.
pub const PENDING_COOKIE: &str = "corsair_oidc_pending";
/// Its path: only the sign-in routes see it.
pub const PENDING_PATH: &str = "/login/oidc";
/// How long a started sign-in may take at the provider.
pub const PENDING_LIFETIME: Duration = Duration::minutes(10);

/// One started sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingSignIn {
    /// The `state` sent to the provider (CSRF token of the redirect).
    pub state: String,
    /// The `nonce` sent to the provider, expected in the ID token.
    pub nonce: String,
    /// The PKCE code verifier (its S256 challenge went to the provider).
    pub pkce_verifier: String,
    /// The local path to land on after signing in.
    pub next: String,
    /// When the sign-in was started; refused after [`PENDING_LIFETIME`].
    pub started_at: DateTime<Utc>,
}

fn cookie_key(keys: &SigningKey) -> Option<Key> {
    // A key of its own, derived from the signing key: every replica that
    // shares the key file can open the cookie. The jar takes 64 bytes.
    let mut bytes = keys
        .derive_key("corsair oidc pending sign-in cookie, part 1")
        .to_vec();
    bytes.extend_from_slice(&keys.derive_key("corsair oidc pending sign-in cookie, part 2"));
    Key::try_from(bytes.as_slice()).ok()
}

impl PendingSignIn {
    /// `Set-Cookie` holding this sign-in, encrypted. `SameSite=Lax`, not
    /// `Strict`: the callback is a top-level navigation from the provider's
    /// site, on which a `Strict` cookie would not be sent.
    pub fn set_cookie(&self, keys: &SigningKey, secure: bool) -> String {
        // Serialising a struct of strings and a timestamp cannot fail.
        let value = serde_json::to_string(self).unwrap_or_default();
        let cookie = Cookie::build((PENDING_COOKIE, value))
            .path(PENDING_PATH)
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(secure)
            .max_age(cookie::time::Duration::seconds(
                PENDING_LIFETIME.num_seconds(),
            ));
        let Some(key) = cookie_key(keys) else {
            return String::new();
        };
        let mut jar = CookieJar::new();
        jar.private_mut(&key).add(cookie);
        jar.delta()
            .next()
            .map(|c| c.encoded().to_string())
            .unwrap_or_default()
    }

    /// `Set-Cookie` that removes the cookie (after the callback, whatever
    /// its outcome: a sign-in is finished at most once).
    pub fn clear_cookie(secure: bool) -> String {
        Cookie::build((PENDING_COOKIE, ""))
            .path(PENDING_PATH)
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(secure)
            .removal()
            .build()
            .encoded()
            .to_string()
    }

    /// The sign-in in cookie value `sealed` (as sent by the browser), if it
    /// decrypts under `keys`, parses and is younger than [`PENDING_LIFETIME`].
    pub fn open(keys: &SigningKey, sealed: &str) -> Option<Self> {
        let mut jar = CookieJar::new();
        jar.add_original(Cookie::new(PENDING_COOKIE, sealed.to_owned()));
        let cookie = jar.private(&cookie_key(keys)?).get(PENDING_COOKIE)?;
        let pending: PendingSignIn = serde_json::from_str(cookie.value()).ok()?;
        let age = Utc::now() - pending.started_at;
        (age >= Duration::zero() && age <= PENDING_LIFETIME).then_some(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(started_at: DateTime<Utc>) -> PendingSignIn {
        PendingSignIn {
            state: "s".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            next: "/services".into(),
            started_at,
        }
    }

    fn value(set_cookie: &str) -> String {
        let c = Cookie::parse_encoded(set_cookie.to_owned()).unwrap();
        c.value().to_owned()
    }

    #[test]
    fn opens_under_the_same_key_only_and_hides_the_secrets() {
        let keys = SigningKey::from_bytes(b"0123456789abcdef0123456789abcdef");
        let set = pending(Utc::now()).set_cookie(&keys, false);
        assert!(
            set.contains("SameSite=Lax") && set.contains("HttpOnly"),
            "{set}"
        );
        let sealed = value(&set);
        assert!(!sealed.contains("pkce") && !sealed.contains("/services"));
        let opened = PendingSignIn::open(&keys, &sealed).unwrap();
        assert_eq!(opened.pkce_verifier, "v");
        let other = SigningKey::from_bytes(b"another key, 32 bytes or longer!");
        assert!(PendingSignIn::open(&other, &sealed).is_none());
        let mut tampered = sealed.clone().into_bytes();
        tampered[10] ^= 1;
        assert!(PendingSignIn::open(&keys, &String::from_utf8_lossy(&tampered)).is_none());
    }

    #[test]
    fn an_old_sign_in_is_refused() {
        let keys = SigningKey::from_bytes(b"0123456789abcdef0123456789abcdef");
        let old = pending(Utc::now() - PENDING_LIFETIME - Duration::seconds(1));
        assert!(PendingSignIn::open(&keys, &value(&old.set_cookie(&keys, false))).is_none());
    }
}
