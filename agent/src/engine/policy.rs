//! [`Policy`]: a validated, precomputed policy, and the per-request decision.

use super::decision::{Decision, DecisionKind, Grant, Reason};
use super::methods::{AllowedMethods, MethodVerdict};
use super::origin::{OriginMatch, OriginSet};
use super::request_headers::{AllowedHeaders, HeadersVerdict};
use super::request_lines::{AllLines, PreflightLines, RequestLine};
use super::vary::Vary;
use super::{
    Mode, PolicyError, PolicySpec, RequestParts, expose_headers, max_age, methods, request_headers,
};
use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN};
use http::{HeaderMap, HeaderValue, Method};
use std::sync::atomic::{AtomicU64, Ordering};

/// In report-only mode, the `Origin` to echo "as if allowed" for an origin
/// that is not on the list — except a literal `*`: no browser sends it, and
/// echoed it would be an any-origin grant, with credentials a `*` the engine
/// must never send. Such a request is refused as in enforce mode. Only
/// called for an unlisted origin, so its cost is off the allowed path.
#[inline]
fn report_echo(report_only: bool, sent: &HeaderValue) -> Option<&HeaderValue> {
    (report_only && sent.as_bytes().trim_ascii() != b"*").then_some(sent)
}

/// A compiled, validated policy: cheap to evaluate, immutable.
#[derive(Debug)]
pub struct Policy {
    spec: PolicySpec,
    origins: OriginSet,
    methods: AllowedMethods,
    headers: AllowedHeaders,
    expose: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    /// Granted requests per pattern since the last [`Policy::take_uses`],
    /// indexed like `spec.origins` (see [`Policy::count_use`]).
    uses: Box<[AtomicU64]>,
}

impl Policy {
    /// Validates `spec` and precomputes everything the request path needs.
    ///
    /// An empty `origins` list compiles to a deny-all policy: the control
    /// plane's effective policy reaches zero origins when the last one is
    /// revoked, and refusing it would keep the revoked origin allowed. Use
    /// [`Policy::compile_authored`] for configurations a person wrote.
    pub fn compile(spec: &PolicySpec) -> Result<Policy, PolicyError> {
        let mut problems = Vec::new();
        let origins = OriginSet::compile(spec, &mut problems);
        let methods = AllowedMethods::compile(&spec.allow_methods, &mut problems);
        let headers = AllowedHeaders::compile(&spec.allow_headers, &mut problems);
        let expose =
            expose_headers::compile(&spec.expose_headers, spec.allow_credentials, &mut problems);
        let max_age = max_age::compile(spec.max_age_secs, &mut problems);
        if !problems.is_empty() {
            return Err(PolicyError { problems });
        }
        Ok(Policy {
            spec: spec.clone(),
            origins,
            methods,
            headers,
            expose,
            max_age,
            uses: spec.origins.iter().map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// [`Policy::compile`] plus the rules for a human-authored configuration
    /// ([`PolicySpec::validate_authored`]), with all problems together.
    pub fn compile_authored(spec: &PolicySpec) -> Result<Policy, PolicyError> {
        let authored = spec.validate_authored();
        match Policy::compile(spec) {
            Ok(p) if authored.is_empty() => Ok(p),
            Ok(_) => Err(PolicyError { problems: authored }),
            Err(mut e) => {
                e.problems.splice(0..0, authored);
                Err(e)
            }
        }
    }

    /// The spec this policy was compiled from.
    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// Counts one use of the pattern that granted `decision` (nothing when
    /// it granted nothing; see [`Decision::granted_pattern`]): one relaxed
    /// atomic increment, no allocation, no lock. The counts are the
    /// policy's own; [`Policy::take_uses`] drains them.
    pub fn count_use(&self, decision: &Decision<'_>) {
        if let Some(count) = decision.granted_pattern().and_then(|i| self.uses.get(i)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drains the use counts: calls `f(pattern, count)` for every pattern
    /// (as written in the spec's `origins`) counted since the last call,
    /// and resets it. Exact under concurrent [`Policy::count_use`]: each
    /// count is swapped out atomically.
    pub fn take_uses(&self, mut f: impl FnMut(&str, u64)) {
        for (pattern, count) in self.spec.origins.iter().zip(self.uses.iter()) {
            let n = count.swap(0, Ordering::Relaxed);
            if n > 0 {
                f(pattern, n);
            }
        }
    }

    /// Whether any pattern has uses not yet drained by [`Policy::take_uses`].
    pub fn has_uses(&self) -> bool {
        self.uses.iter().any(|c| c.load(Ordering::Relaxed) > 0)
    }

    /// The `Vary` every response of this policy carries: none for an
    /// anonymous any-origin policy (its answer never depends on `Origin`).
    fn actual_vary(&self) -> Vary {
        if self.origins.is_any() {
            Vary::None
        } else {
            Vary::Origin
        }
    }

    /// Decides one request. Never allocates (but for the rare joined
    /// `Access-Control-Request-Headers` echo): the decision borrows the
    /// policy's values and the request's echoed ones, so it lives no longer
    /// than either. An actual request's path is inlined into each front
    /// (a lookup and a few stores); an `OPTIONS` request's is not.
    #[inline]
    pub fn evaluate<'a>(&'a self, req: &RequestParts<'a>) -> Decision<'a> {
        if req.method == Method::OPTIONS {
            return self.evaluate_options(req.headers);
        }
        // An actual request reads `Origin` alone.
        let origin = RequestLine::read(req.headers, &ORIGIN);
        let Some((sent, matched)) = self.match_origin(origin) else {
            return self.not_cors();
        };
        let report_only = self.spec.mode == Mode::ReportOnly;
        let mut decision = self.actual(matched.granted(sent), sent, report_only);
        decision.pattern = matched.pattern();
        decision
    }

    /// [`Self::evaluate`] for an `OPTIONS` request, a preflight when it has
    /// `Origin` and `Access-Control-Request-Method` (its four lines are
    /// read together).
    #[inline(never)]
    fn evaluate_options<'a>(&'a self, headers: &'a HeaderMap) -> Decision<'a> {
        let lines = PreflightLines::read(headers);
        let Some((sent, matched)) = self.match_origin(lines.origin) else {
            return self.not_cors();
        };
        let report_only = self.spec.mode == Mode::ReportOnly;
        let allow_origin = matched.granted(sent);
        // `Origin` is known to be present: a preflight only needs OPTIONS and
        // an `Access-Control-Request-Method`.
        let mut decision = if lines.method.first.is_some() {
            self.preflight(headers, &lines, allow_origin, sent, report_only)
        } else {
            self.actual(allow_origin, sent, report_only)
        };
        decision.pattern = matched.pattern();
        decision
    }

    /// The request's `Origin` and what it matched; `None` without one (not
    /// a CORS request). A repeated `Origin` is never sent by a browser: it
    /// matches nothing.
    #[inline]
    fn match_origin<'a>(
        &'a self,
        origin: RequestLine<'a>,
    ) -> Option<(&'a HeaderValue, OriginMatch<'a>)> {
        let sent = origin.first?;
        let matched = if origin.more {
            OriginMatch::None
        } else {
            self.origins.find(sent.as_bytes())
        };
        Some((sent, matched))
    }

    /// The decision for a request without `Origin`: forwarded untouched but
    /// for `Vary`.
    fn not_cors(&self) -> Decision<'_> {
        self.decision(
            DecisionKind::NotCors,
            None,
            Grant::default(),
            self.actual_vary(),
        )
    }

    /// An actual request. `sent` is the request's `Origin`, echoed only
    /// when report-only mode answers as if allowed. Inlined: on the
    /// forwarded path it is a few stores.
    #[inline]
    fn actual<'a>(
        &'a self,
        allow_origin: Option<&'a HeaderValue>,
        sent: &'a HeaderValue,
        report_only: bool,
    ) -> Decision<'a> {
        let vary = self.actual_vary();
        let (granted, reason) = match allow_origin {
            Some(v) => (v, None),
            None => match report_echo(report_only, sent) {
                Some(echo) => (echo, Some(Reason::OriginNotAllowed)),
                None => {
                    return self.decision(
                        DecisionKind::Blocked,
                        Some(Reason::OriginNotAllowed),
                        Grant::default(),
                        Vary::Origin,
                    );
                }
            },
        };
        let grant = Grant {
            allow_origin: Some(granted),
            credentials: self.spec.allow_credentials,
            expose: self.expose.as_ref(),
            ..Grant::default()
        };
        let vary = if reason.is_some() { Vary::Origin } else { vary };
        self.decision(DecisionKind::Allowed, reason, grant, vary)
    }

    /// A preflight: every check runs (report-only needs the full answer),
    /// and the first failure is the reason.
    fn preflight<'a>(
        &'a self,
        headers: &'a HeaderMap,
        lines: &PreflightLines<'a>,
        allow_origin: Option<&'a HeaderValue>,
        sent: &'a HeaderValue,
        report_only: bool,
    ) -> Decision<'a> {
        let vary = match (self.origins.is_any(), self.spec.allow_private_network) {
            (true, false) => Vary::PreflightAnyOrigin,
            (_, true) => Vary::PreflightPna,
            (false, false) => Vary::Preflight,
        };
        // Enforce mode stops at the first failure (no wasted work on a
        // request that is refused anyway); report-only runs every check to
        // build the answer "as if allowed" and keeps the first failure.
        let mut reason = None;
        let reject = |reason| {
            self.decision(
                DecisionKind::PreflightRejected,
                Some(reason),
                Grant::default(),
                vary,
            )
        };
        let origin = match allow_origin {
            Some(v) => v,
            None => match report_echo(report_only, sent) {
                Some(echo) => {
                    reason = Some(Reason::OriginNotAllowed);
                    echo
                }
                None => return reject(Reason::OriginNotAllowed),
            },
        };
        let allow_methods = match methods::check(lines.method, &self.methods) {
            MethodVerdict::Safelisted => None,
            MethodVerdict::Allowed(v) => Some(v),
            MethodVerdict::Denied(_) if !report_only => return reject(Reason::MethodNotAllowed),
            MethodVerdict::Denied(v) => {
                reason.get_or_insert(Reason::MethodNotAllowed);
                v
            }
        };
        // The one line a browser sends, or (rare) every line, looked up.
        let verdict = if lines.headers.more {
            request_headers::check(
                AllLines {
                    headers,
                    name: &ACCESS_CONTROL_REQUEST_HEADERS,
                },
                &self.headers,
            )
        } else {
            request_headers::check(lines.headers.first, &self.headers)
        };
        let allow_headers = match verdict {
            HeadersVerdict::Nothing => None,
            HeadersVerdict::Allowed(v) => Some(v),
            HeadersVerdict::Denied(_) if !report_only => return reject(Reason::HeaderNotAllowed),
            HeadersVerdict::Denied(v) => {
                reason.get_or_insert(Reason::HeaderNotAllowed);
                v
            }
        };
        let pna_asked = lines.private_network_asked();
        if pna_asked && !self.spec.allow_private_network {
            if !report_only {
                return reject(Reason::PrivateNetworkNotAllowed);
            }
            reason.get_or_insert(Reason::PrivateNetworkNotAllowed);
        }
        let grant = Grant {
            allow_origin: Some(origin),
            credentials: self.spec.allow_credentials,
            allow_methods,
            allow_headers,
            max_age: self.max_age.as_ref(),
            private_network: pna_asked,
            expose: None,
        };
        self.decision(DecisionKind::PreflightAllowed, reason, grant, vary)
    }

    fn decision<'a>(
        &'a self,
        kind: DecisionKind,
        reason: Option<Reason>,
        grant: Grant<'a>,
        vary: Vary,
    ) -> Decision<'a> {
        let report_only = self.spec.mode == Mode::ReportOnly;
        Decision {
            kind,
            reason,
            would_block: report_only && reason.is_some(),
            strict: self.spec.strict && !report_only,
            grant,
            vary,
            pattern: None,
        }
    }
}

#[cfg(test)]
mod tests;
