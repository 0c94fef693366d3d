//! The uncompiled policy: what the control plane stores and streams, and what
//! [`Policy::compile`](super::Policy::compile) validates.

use serde::{Deserialize, Serialize};

/// Enforce the policy, or only report what it would have blocked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Blocked requests get no CORS grant (and preflights a 403).
    #[default]
    Enforce,
    /// Respond as if allowed; blocked decisions are marked "would block".
    ReportOnly,
}

impl Mode {
    /// The wire/database spelling: `enforce` or `report_only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::ReportOnly => "report_only",
        }
    }

    /// Parses the wire/database spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enforce" => Some(Mode::Enforce),
            "report_only" => Some(Mode::ReportOnly),
            _ => None,
        }
    }
}

/// One service's CORS policy as configured: plain strings, not yet validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct PolicySpec {
    /// Approved origin patterns: `https://app.example.com`,
    /// `http://localhost:3000`, `https://*.example.com`, or `*` (any origin).
    /// Empty means no origin is allowed (fail closed).
    pub origins: Vec<String>,
    /// Methods allowed on preflight, beyond the CORS-safelisted ones.
    pub allow_methods: Vec<String>,
    /// Request headers allowed on preflight (case-insensitive); `*` allows
    /// any except `Authorization`.
    pub allow_headers: Vec<String>,
    /// Response headers exposed to scripts.
    pub expose_headers: Vec<String>,
    /// Emit `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// Preflight cache lifetime in seconds (0..=86400; 0 omits the header).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 86400))]
    pub max_age_secs: i64,
    /// Answer Private Network Access preflights.
    pub allow_private_network: bool,
    /// Enforce, or report only.
    pub mode: Mode,
    /// Reject actual requests from disallowed origins with 403 before the upstream.
    pub strict: bool,
    /// Explicit opt-in: allow plain-`http` non-loopback origins together with credentials.
    pub allow_insecure_http: bool,
}

/// One service's policy settings: every field of [`PolicySpec`] but the
/// origins. This is the one declaration of the settings the control plane
/// stores, edits (REST, UI) and validates; it converts to a [`PolicySpec`]
/// with [`PolicySettings::with_origins`] so that
/// [`Policy::compile`](super::Policy::compile) judges it, and back with
/// [`PolicySpec::settings`]. JSON field names are the same as the spec's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct PolicySettings {
    /// See [`PolicySpec::allow_methods`].
    pub allow_methods: Vec<String>,
    /// See [`PolicySpec::allow_headers`].
    pub allow_headers: Vec<String>,
    /// See [`PolicySpec::expose_headers`].
    pub expose_headers: Vec<String>,
    /// See [`PolicySpec::allow_credentials`].
    pub allow_credentials: bool,
    /// See [`PolicySpec::max_age_secs`] (seconds; the engine accepts 0..=86400).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 86400))]
    pub max_age_secs: i64,
    /// See [`PolicySpec::allow_private_network`].
    pub allow_private_network: bool,
    /// See [`PolicySpec::mode`].
    pub mode: Mode,
    /// See [`PolicySpec::strict`].
    pub strict: bool,
    /// See [`PolicySpec::allow_insecure_http`].
    pub allow_insecure_http: bool,
}

impl Default for PolicySettings {
    /// The settings of `PolicySpec::default()`: nothing beyond the safelist.
    fn default() -> Self {
        PolicySpec::default().settings()
    }
}

impl PolicySettings {
    /// The full spec: these settings with `origins`.
    pub fn with_origins(&self, origins: Vec<String>) -> PolicySpec {
        let PolicySettings {
            allow_methods,
            allow_headers,
            expose_headers,
            allow_credentials,
            max_age_secs,
            allow_private_network,
            mode,
            strict,
            allow_insecure_http,
        } = self.clone();
        PolicySpec {
            origins,
            allow_methods,
            allow_headers,
            expose_headers,
            allow_credentials,
            max_age_secs,
            allow_private_network,
            mode,
            strict,
            allow_insecure_http,
        }
    }
}

impl PolicySpec {
    /// Every setting but the origins.
    pub fn settings(&self) -> PolicySettings {
        let PolicySpec {
            origins: _,
            allow_methods,
            allow_headers,
            expose_headers,
            allow_credentials,
            max_age_secs,
            allow_private_network,
            mode,
            strict,
            allow_insecure_http,
        } = self.clone();
        PolicySettings {
            allow_methods,
            allow_headers,
            expose_headers,
            allow_credentials,
            max_age_secs,
            allow_private_network,
            mode,
            strict,
            allow_insecure_http,
        }
    }

    /// Rules for a configuration a person wrote, beyond what
    /// [`Policy::compile`](super::Policy::compile) checks: today, "no origins
    /// and not any origin" (almost certainly a mistake when authored).
    ///
    /// `compile` deliberately accepts an empty list as deny-all, because the
    /// control plane's *effective* policy legitimately reaches zero origins
    /// when the last approved one is revoked or expires; refusing it there
    /// would make the agent NACK and keep enforcing the revoked origin.
    pub fn validate_authored(&self) -> Vec<super::Problem> {
        if self.origins.is_empty() {
            return vec![super::Problem::new(
                "origins",
                "",
                "no origins: add at least one origin, or `*` for any origin",
            )];
        }
        Vec::new()
    }
}
