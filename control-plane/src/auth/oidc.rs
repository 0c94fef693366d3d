//! OpenID Connect sign-in, face-neutral: discovery at start-up, the
//! authorization request (authorization code flow with PKCE S256, `state`
//! and `nonce`), and the callback's checks (state, code exchange, ID-token
//! signature, issuer, audience, expiry and nonce), all by the maintained
//! `openidconnect` crate. The ID token's signing keys are fetched again when
//! a token names a key id the cached set lacks (the provider rotated keys).
//!
//! - [`http`]: the crate's HTTP client trait over the workspace's reqwest.
//! - [`pending`]: the sign-in's transient state, in an encrypted cookie.
//!
//! What the identity *may do* (the role rule, the user row, the audit log)
//! is the service layer's (`service::users::oidc_sign_in`).

pub mod http;
pub mod pending;

use self::http::ProviderHttp;
use self::pending::PendingSignIn;
use chrono::Utc;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields,
    IdTokenVerifier, IssuerUrl, JsonWebKeySet, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, SignatureVerificationError, StandardErrorResponse, StandardTokenResponse,
    TokenResponse,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The path of the callback route; `--oidc-redirect-url` must end with it.
pub const CALLBACK_PATH: &str = "/login/oidc/callback";

/// Scopes always requested (besides `openid`): the email is the user's name.
pub const BASE_SCOPES: [&str; 2] = ["email", "profile"];

/// Shortest time between two key-set fetches caused by unknown key ids.
const JWKS_REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// What `serve --oidc-*` configures.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The provider's issuer URL (`--oidc-issuer-url`); discovery reads
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer_url: String,
    /// This client's id at the provider (`--oidc-client-id`); the audience
    /// every accepted ID token must name.
    pub client_id: String,
    /// The client secret (first line of `--oidc-client-secret-file`); `None`
    /// for a public client (PKCE only).
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back (`--oidc-redirect-url`):
    /// this control plane's public URL + [`CALLBACK_PATH`].
    pub redirect_url: String,
    /// The ID-token claim listing the user's groups (`--oidc-role-claim`).
    pub role_claim: String,
    /// Scopes requested besides `openid` and [`BASE_SCOPES`] (`--oidc-scope`),
    /// e.g. `groups` where the provider releases groups only under a scope.
    pub extra_scopes: Vec<String>,
}

/// Claims beyond the standard ones: all of them, by name, so the role claim
/// can be any (`--oidc-role-claim`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    claims: HashMap<String, serde_json::Value>,
}

impl AdditionalClaims for OtherClaims {}

type IdFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type ProviderTokenResponse = StandardTokenResponse<IdFields, CoreTokenType>;
type ProviderClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    ProviderTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why the client could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A URL flag is not a URL, or the redirect URL has the wrong path.
    #[error("{0}")]
    Config(String),
    /// Discovery (or the key set it points to) failed.
    #[error("OpenID Connect discovery at {issuer} failed: {cause}")]
    Discovery {
        /// `--oidc-issuer-url`.
        issuer: String,
        /// What went wrong, with its causes.
        cause: String,
    },
}

/// Why a callback was refused. Each says what happened; none is the user's
/// input error to fix but the sign-in to start again (or an admin's matter).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// No (or an expired, or undecryptable) sign-in cookie: the sign-in was
    /// not started in this browser, or took longer than 10 minutes.
    #[error("no sign-in was started in this browser, or it took more than 10 minutes")]
    NoPendingSignIn,
    /// The `state` returned is not the one sent: a forged or replayed callback.
    #[error(
        "the sign-in response does not match the sign-in this browser started (state mismatch)"
    )]
    StateMismatch,
    /// The provider answered with an error (e.g. the user declined).
    #[error("the identity provider refused the sign-in: {0}")]
    Provider(String),
    /// The callback has no `code`.
    #[error("the identity provider's response has no authorization code")]
    NoCode,
    /// The token endpoint refused the code or could not be reached.
    #[error("redeeming the authorization code failed: {0}")]
    TokenExchange(String),
    /// The token response has no ID token.
    #[error("the identity provider returned no ID token")]
    NoIdToken,
    /// The ID token failed verification (signature, issuer, audience,
    /// expiry, nonce…).
    #[error("the ID token was refused: {0}")]
    IdToken(String),
    /// The ID token has no `email`, or one the provider marks unverified.
    #[error("the identity provider sent no verified email address for subject {subject}")]
    NoVerifiedEmail {
        /// The ID token's `sub`.
        subject: String,
    },
}

/// Who the provider says signed in, from a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// The issuer (`iss`), as discovered.
    pub issuer: String,
    /// The subject (`sub`), stable at the provider.
    pub subject: String,
    /// The verified email address: the user's name in Corsair.
    pub email: String,
    /// The values of the role claim (a list of strings, or one string);
    /// empty when the claim is absent.
    pub groups: Vec<String>,
}

/// The OpenID Connect client: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct OidcClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: OidcConfig,
    http: ProviderHttp,
    client: ProviderClient,
    metadata: CoreProviderMetadata,
    jwks: RwLock<CoreJsonWebKeySet>,
    last_jwks_fetch: Mutex<Instant>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("issuer", &self.inner.config.issuer_url)
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

/// An error and its causes on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl OidcClient {
    /// Discovers the provider at `config.issuer_url` (metadata and keys).
    /// Run at start-up: `serve` stops with this error when it fails.
    pub async fn discover(config: OidcConfig) -> Result<Self, SetupError> {
        let issuer = IssuerUrl::new(config.issuer_url.clone()).map_err(|e| {
            SetupError::Config(format!("--oidc-issuer-url {:?}: {e}", config.issuer_url))
        })?;
        let redirect = RedirectUrl::new(config.redirect_url.clone()).map_err(|e| {
            SetupError::Config(format!(
                "--oidc-redirect-url {:?}: {e}",
                config.redirect_url
            ))
        })?;
        if redirect.url().path() != CALLBACK_PATH {
            return Err(SetupError::Config(format!(
                "--oidc-redirect-url {:?} must end with {CALLBACK_PATH} (the control plane's \
                 public URL followed by that path, registered at the provider)",
                config.redirect_url
            )));
        }
        let http = ProviderHttp::new().map_err(|e| SetupError::Discovery {
            issuer: config.issuer_url.clone(),
            cause: chain(&e),
        })?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| SetupError::Discovery {
                issuer: config.issuer_url.clone(),
                cause: chain(&e),
            })?;
        if metadata.token_endpoint().is_none() {
            return Err(SetupError::Discovery {
                issuer: config.issuer_url.clone(),
                cause: "the provider's metadata has no token_endpoint".into(),
            });
        }
        let client = ProviderClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(config.client_id.clone()),
            config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect);
        let jwks = metadata.jwks().clone();
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                http,
                client,
                metadata,
                jwks: RwLock::new(jwks),
                last_jwks_fetch: Mutex::new(Instant::now()),
            }),
        })
    }

    /// The issuer URL as the provider states it.
    pub fn issuer(&self) -> &str {
        self.inner.metadata.issuer().as_str()
    }

    /// Starts a sign-in: the provider URL to send the browser to, and the
    /// state to keep (in [`PendingSignIn::set_cookie`]) until the callback.
    /// `next` is the local path to land on afterwards.
    pub fn begin(&self, next: &str) -> (String, PendingSignIn) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self.inner.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in BASE_SCOPES
            .iter()
            .map(|s| s.to_string())
            .chain(self.inner.config.extra_scopes.iter().cloned())
        {
            request = request.add_scope(Scope::new(scope));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let pending = PendingSignIn {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            next: next.to_owned(),
            started_at: Utc::now(),
        };
        (url.to_string(), pending)
    }

    /// Finishes a sign-in: checks `state` against `pending`, redeems `code`
    /// with the PKCE verifier, and verifies the ID token (signature against
    /// the provider's keys, issuer, audience = this client, expiry, nonce).
    pub async fn finish(
        &self,
        pending: &PendingSignIn,
        code: &str,
        state: &str,
    ) -> Result<VerifiedIdentity, OidcError> {
        // Compared as digests: equal-length values, no early exit on content.
        if Sha256::digest(pending.state.as_bytes()) != Sha256::digest(state.as_bytes()) {
            return Err(OidcError::StateMismatch);
        }
        if code.is_empty() {
            return Err(OidcError::NoCode);
        }
        let response = self
            .inner
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::TokenExchange(chain(&e)))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.inner.http)
            .await
            .map_err(|e| OidcError::TokenExchange(chain(&e)))?;
        let id_token = response.id_token().ok_or(OidcError::NoIdToken)?;
        let nonce = Nonce::new(pending.nonce.clone());
        let mut verified = id_token.claims(&self.verifier(), &nonce).cloned();
        let unknown_key = matches!(
            verified,
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey
            ))
        );
        if unknown_key && self.refresh_jwks().await {
            verified = id_token.claims(&self.verifier(), &nonce).cloned();
        }
        let claims = verified.map_err(|e| OidcError::IdToken(chain(&e)))?;
        let subject = claims.subject().as_str().to_owned();
        let email = match (claims.email(), claims.email_verified()) {
            (Some(email), Some(true) | None) if !email.as_str().trim().is_empty() => {
                email.as_str().trim().to_owned()
            }
            _ => return Err(OidcError::NoVerifiedEmail { subject }),
        };
        let groups = match claims
            .additional_claims()
            .claims
            .get(&self.inner.config.role_claim)
        {
            Some(serde_json::Value::Array(values)) => values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(VerifiedIdentity {
            issuer: claims.issuer().as_str().to_owned(),
            subject,
            email,
            groups,
        })
    }

    /// The ID-token verifier over the current key set: this client as the
    /// audience (no other audience trusted), the discovered issuer, the
    /// provider's advertised signing algorithms.
    fn verifier(&self) -> IdTokenVerifier<'static, CoreJsonWebKey> {
        let jwks = self
            .inner
            .jwks
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        let client_id = ClientId::new(self.inner.config.client_id.clone());
        let issuer = self.inner.metadata.issuer().clone();
        let verifier = match &self.inner.config.client_secret {
            Some(secret) => IdTokenVerifier::new_confidential_client(
                client_id,
                ClientSecret::new(secret.clone()),
                issuer,
                jwks,
            ),
            None => IdTokenVerifier::new_public_client(client_id, issuer, jwks),
        };
        verifier.set_allowed_algs(
            self.inner
                .metadata
                .id_token_signing_alg_values_supported()
                .iter()
                .filter(|alg| **alg != CoreJwsSigningAlgorithm::None)
                .cloned(),
        )
    }

    /// Fetches the provider's key set again (a token named a key id we do
    /// not have: the provider rotated its keys). At most once per
    /// [`JWKS_REFRESH_MIN_INTERVAL`]; `true` when a new set was stored.
    async fn refresh_jwks(&self) -> bool {
        {
            let Ok(mut last) = self.inner.last_jwks_fetch.lock() else {
                return false;
            };
            if last.elapsed() < JWKS_REFRESH_MIN_INTERVAL {
                return false;
            }
            *last = Instant::now();
        }
        match JsonWebKeySet::fetch_async(self.inner.metadata.jwks_uri(), &self.inner.http).await {
            Ok(jwks) => {
                tracing::info!(
                    keys = jwks.keys().len(),
                    "OpenID provider keys fetched again (unknown key id)"
                );
                if let Ok(mut current) = self.inner.jwks.write() {
                    *current = jwks;
                    return true;
                }
                false
            }
            Err(e) => {
                tracing::warn!(
                    error = chain(&e),
                    "fetching the OpenID provider's keys failed"
                );
                false
            }
        }
    }
}
