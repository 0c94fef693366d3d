//! [`AppState`]: what every HTTP face (REST API, admin UI) and the service
//! layer can reach. It lives below the faces so none of them owns it.

use crate::auth::SigningKey;
use crate::auth::login::LocalLogin;
use crate::auth::oidc::OidcClient;
use crate::domain::RoleMap;
use crate::metrics::audit_figures::{AUDIT_READ_INTERVAL, AuditFigures};
use crate::service::rollout::RolloutEvents;
use crate::store::Store;
use axum::extract::FromRef;

/// What every handler can reach. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Signs and verifies user and agent tokens.
    pub keys: SigningKey,
    /// Let a user approve their own origin request, or confirm their own
    /// revocation request or widening settings change (`--single-operator`);
    /// otherwise four eyes are required.
    pub single_operator: bool,
    /// Mark the session cookie `Secure` (`--secure-cookies`, for TLS).
    pub secure_cookies: bool,
    /// How people sign in: password and/or the OpenID Connect provider.
    pub sign_in: SignIn,
    /// Relays rollout notifications to requests that wait for agents
    /// (`?wait=applied`).
    pub rollout_events: RolloutEvents,
    /// The audit log's figures for `/metrics`, read at most once per
    /// interval ([`AUDIT_READ_INTERVAL`] unless set otherwise).
    pub audit_figures: AuditFigures,
}

/// How people sign in (`serve --oidc-*`, `--disable-local-login`,
/// `--break-glass-admin`). The default: passwords only.
#[derive(Clone, Debug, Default)]
pub struct SignIn {
    /// Sign-in through the OpenID Connect provider, if set up (discovered).
    pub oidc: Option<OidcClient>,
    /// Which provider group grants which role (`--oidc-role-map`).
    pub role_map: RoleMap,
    /// Whether password sign-in is on.
    pub local_login: LocalLogin,
}

impl AppState {
    /// State from its parts: four-eyes approvals, cookies without `Secure`,
    /// audit figures reused for [`AUDIT_READ_INTERVAL`].
    pub fn new(store: Store, keys: SigningKey) -> Self {
        Self {
            rollout_events: RolloutEvents::new(store.clone()),
            audit_figures: AuditFigures::new(store.clone(), AUDIT_READ_INTERVAL),
            store,
            keys,
            single_operator: false,
            secure_cookies: false,
            sign_in: SignIn::default(),
        }
    }

    /// Sets how people sign in.
    pub fn with_sign_in(mut self, sign_in: SignIn) -> Self {
        self.sign_in = sign_in;
        self
    }

    /// Allows (or forbids) approving one's own request.
    pub fn with_single_operator(mut self, on: bool) -> Self {
        self.single_operator = on;
        self
    }

    /// Reuses each read of the audit figures for `interval` instead (tests
    /// that watch them change).
    pub fn with_audit_read_interval(mut self, interval: std::time::Duration) -> Self {
        self.audit_figures = AuditFigures::new(self.store.clone(), interval);
        self
    }

    /// Marks session cookies `Secure` (or not).
    pub fn with_secure_cookies(mut self, on: bool) -> Self {
        self.secure_cookies = on;
        self
    }
}

impl FromRef<AppState> for SigningKey {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}

impl FromRef<AppState> for Store {
    fn from_ref(state: &AppState) -> Self {
        state.store.clone()
    }
}
