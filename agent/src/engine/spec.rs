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

/// Declares the policy settings once and builds from that one list both
/// [`PolicySpec`] (the settings with the origins, what
/// [`Policy::compile`](super::Policy::compile) takes) and [`PolicySettings`]
/// (the settings alone, what the control plane stores and edits), with the
/// conversions between them. A macro rather than a nested struct because
/// `PolicySpec`'s flat fields are what every struct literal in agents,
/// gateways and tests is written against.
macro_rules! policy_settings {
    ($( $(#[$doc:meta])* $field:ident: $ty:ty, )*) => {
        /// One service's CORS policy as configured: plain strings, not yet validated.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(default)]
        pub struct PolicySpec {
            /// Approved origin patterns: `https://app.example.com`,
            /// `http://localhost:3000`, `https://*.example.com`, or `*` (any origin).
            /// Empty means no origin is allowed (fail closed).
            pub origins: Vec<String>,
            $( $(#[$doc])* pub $field: $ty, )*
        }

        /// One service's policy settings: every field of [`PolicySpec`] but
        /// the origins, with the same JSON names. The control plane stores,
        /// edits (REST, UI) and validates this shape; the engine judges it
        /// as [`PolicySettings::with_origins`].
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(default)]
        pub struct PolicySettings {
            $( $(#[$doc])* pub $field: $ty, )*
        }

        impl PolicySettings {
            /// The full spec: these settings with `origins`.
            pub fn with_origins(&self, origins: Vec<String>) -> PolicySpec {
                PolicySpec {
                    origins,
                    $( $field: self.$field.clone(), )*
                }
            }
        }

        impl PolicySpec {
            /// Every setting but the origins.
            pub fn settings(&self) -> PolicySettings {
                PolicySettings {
                    $( $field: self.$field.clone(), )*
                }
            }
        }
    };
}

policy_settings! {
    /// Methods allowed on preflight, beyond the CORS-safelisted ones.
    allow_methods: Vec<String>,
    /// Request headers allowed on preflight (case-insensitive); `*` allows
    /// any except `Authorization`.
    allow_headers: Vec<String>,
    /// Response headers exposed to scripts.
    expose_headers: Vec<String>,
    /// Emit `Access-Control-Allow-Credentials: true`.
    allow_credentials: bool,
    /// Preflight cache lifetime in seconds (0..=86400; 0 omits the header).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 86400))]
    max_age_secs: i64,
    /// Answer Private Network Access preflights.
    allow_private_network: bool,
    /// Enforce, or report only.
    mode: Mode,
    /// Reject actual requests from disallowed origins with 403 before the upstream.
    strict: bool,
    /// Explicit opt-in: allow plain-`http` non-loopback origins together with credentials.
    allow_insecure_http: bool,
}

impl PolicySpec {
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
