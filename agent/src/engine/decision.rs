//! The engine's answer for one request, and how it is written into a
//! response's headers.

use super::RequestParts;
use super::vary::Vary;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ORIGIN,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::borrow::Cow;
use std::sync::OnceLock;

/// `Access-Control-Allow-Private-Network` (Private Network Access draft).
pub const ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");
/// `Access-Control-Request-Private-Network` (Private Network Access draft).
pub const ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");

/// Every response header the engine owns; [`Decision::apply`] removes the
/// upstream's copies so only the policy's answer reaches the client.
const OWNED: [HeaderName; 7] = [
    ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK,
];

const TRUE: HeaderValue = HeaderValue::from_static("true");

/// What kind of decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// No `Origin` header: not a CORS request; forward untouched.
    NotCors,
    /// A preflight that is granted: answered locally with 204.
    PreflightAllowed,
    /// A preflight that is refused: answered locally with 403, no CORS headers.
    PreflightRejected,
    /// An actual request from an allowed origin: forward, add CORS headers.
    Allowed,
    /// An actual request from a disallowed origin: forward without CORS
    /// grants (or, in strict mode, answered locally with 403).
    Blocked,
}

impl DecisionKind {
    /// Machine-readable name, e.g. `preflight_allowed` (telemetry, simulator).
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::NotCors => "not_cors",
            DecisionKind::PreflightAllowed => "preflight_allowed",
            DecisionKind::PreflightRejected => "preflight_rejected",
            DecisionKind::Allowed => "allowed",
            DecisionKind::Blocked => "blocked",
        }
    }
}

/// Why a request was (or, in report-only mode, would have been) blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The origin is not in the allowlist (or the `Origin` header is malformed
    /// or repeated).
    OriginNotAllowed,
    /// The preflight asked for a method the policy does not allow, or its
    /// `Access-Control-Request-Method` is malformed.
    MethodNotAllowed,
    /// The preflight asked for a header the policy does not allow, or its
    /// `Access-Control-Request-Headers` is malformed or over the size bounds.
    HeaderNotAllowed,
    /// The preflight asked for Private Network Access and the policy does not
    /// allow it.
    PrivateNetworkNotAllowed,
    /// The agent has no policy for the service: fail closed.
    NoPolicy,
}

impl Reason {
    /// Machine-readable name, e.g. `origin_not_allowed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::OriginNotAllowed => "origin_not_allowed",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::HeaderNotAllowed => "header_not_allowed",
            Reason::PrivateNetworkNotAllowed => "private_network_not_allowed",
            Reason::NoPolicy => "no_policy",
        }
    }
}

/// The CORS headers a decision grants, borrowed from the policy (its
/// precomputed values) or from the request (echoes): references, so a
/// decision is small to move and has nothing to drop but the rare joined
/// `Access-Control-Request-Headers` echo.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grant<'a> {
    pub(crate) allow_origin: Option<&'a HeaderValue>,
    pub(crate) credentials: bool,
    pub(crate) expose: Option<&'a HeaderValue>,
    pub(crate) allow_methods: Option<&'a HeaderValue>,
    /// Owned only when several request lines were joined.
    pub(crate) allow_headers: Option<Cow<'a, HeaderValue>>,
    pub(crate) max_age: Option<&'a HeaderValue>,
    pub(crate) private_network: bool,
}

/// The CORS headers of a forwarded request's decision, owned (see
/// [`Decision::forward_headers`]); a `HeaderValue` clone shares its bytes.
#[derive(Debug, Clone)]
pub struct ForwardHeaders {
    allow_origin: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    credentials: bool,
    vary: Vary,
}

impl ForwardHeaders {
    /// Writes them into the upstream's response exactly as
    /// [`Decision::apply`] would, moving its values in (no clones).
    /// Inlined: a refused request's answer into a response without headers
    /// is the prebuilt `Vary` line alone (see `Lines::write`), a clone
    /// without building the lines; the rest is [`Self::write`].
    #[inline]
    pub fn apply(self, headers: &mut HeaderMap) {
        if self.allow_origin.is_none() && headers.capacity() == 0 {
            if let Some(template) = template(self.vary.index()) {
                *headers = template.clone();
            }
            return;
        }
        self.write(headers);
    }

    /// [`Self::apply`] for a granted request or a response with headers.
    fn write(self, headers: &mut HeaderMap) {
        Lines {
            allow_origin: self.allow_origin.map(Cow::Owned),
            credentials: self.credentials,
            allow_methods: None,
            allow_headers: None,
            max_age: None,
            expose: self.expose.map(Cow::Owned),
            private_network: false,
            vary: self.vary,
        }
        .write(headers);
    }
}

impl ForwardHeaders {
    /// Calls `line` with each header line [`Self::apply`] writes into a
    /// response that has no `Vary` or `Access-Control-*` lines of its own,
    /// in the same order, without a map: for a front that writes the
    /// upstream's head on as bytes.
    pub fn for_each_line(&self, line: impl FnMut(&HeaderName, &HeaderValue)) {
        Lines {
            allow_origin: self.allow_origin.as_ref().map(Cow::Borrowed),
            credentials: self.credentials,
            allow_methods: None,
            allow_headers: None,
            max_age: None,
            expose: self.expose.as_ref().map(Cow::Borrowed),
            private_network: false,
            vary: self.vary,
        }
        .each(line);
    }
}

/// The response headers of a decision: the one writer behind
/// [`Decision::apply`] (borrowed values, cloned in) and
/// [`ForwardHeaders::apply`] (owned values, moved in).
struct Lines<'a> {
    allow_origin: Option<Cow<'a, HeaderValue>>,
    credentials: bool,
    allow_methods: Option<Cow<'a, HeaderValue>>,
    allow_headers: Option<Cow<'a, HeaderValue>>,
    max_age: Option<Cow<'a, HeaderValue>>,
    expose: Option<Cow<'a, HeaderValue>>,
    private_network: bool,
    vary: Vary,
}

impl Lines<'_> {
    fn write(mut self, headers: &mut HeaderMap) {
        // A map with no room has no headers: every local answer, and an
        // upstream response without any. Nothing to remove or merge, so the
        // answer is a copy of a prebuilt map of the same names (two
        // allocations, as sizing the map costs anyway) with this request's
        // values moved in: no hashing or probing per line.
        if headers.capacity() == 0 {
            self.fresh(headers);
            return;
        }
        self.insert(headers);
    }

    /// Writes the lines one by one: removes the upstream's `Access-Control-*`
    /// lines, inserts ours, merges `Vary`.
    fn insert(self, headers: &mut HeaderMap) {
        // One scan over the names instead of seven hashed removals: most
        // responses (and every local one) carry no Access-Control-* at all.
        if headers
            .keys()
            .any(|n| n.as_str().starts_with("access-control-"))
        {
            for name in &OWNED {
                headers.remove(name);
            }
        }
        // A map without room gets exactly the room these lines need, rather
        // than the map's default first growth to six entries.
        let count = self.count();
        if headers.capacity() == 0 && count > 0 {
            headers.reserve(count);
        }
        if let Some(v) = self.allow_origin {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, v.into_owned());
            if self.credentials {
                headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
            }
            if let Some(v) = self.allow_methods {
                headers.insert(ACCESS_CONTROL_ALLOW_METHODS, v.into_owned());
            }
            if let Some(v) = self.allow_headers {
                headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, v.into_owned());
            }
            if let Some(v) = self.max_age {
                headers.insert(ACCESS_CONTROL_MAX_AGE, v.into_owned());
            }
            if let Some(v) = self.expose {
                headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.into_owned());
            }
            if self.private_network {
                headers.insert(ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK, TRUE);
            }
        }
        self.vary.apply(headers);
    }

    /// Calls `line` with each line in the order [`Self::write`] puts them
    /// into an empty map: for a front that writes a response head as bytes
    /// and has no map to write into.
    fn each(&self, mut line: impl FnMut(&HeaderName, &HeaderValue)) {
        if let Some(v) = &self.allow_origin {
            line(&ACCESS_CONTROL_ALLOW_ORIGIN, v);
            if self.credentials {
                line(&ACCESS_CONTROL_ALLOW_CREDENTIALS, &TRUE);
            }
            if let Some(v) = &self.allow_methods {
                line(&ACCESS_CONTROL_ALLOW_METHODS, v);
            }
            if let Some(v) = &self.allow_headers {
                line(&ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
            if let Some(v) = &self.max_age {
                line(&ACCESS_CONTROL_MAX_AGE, v);
            }
            if let Some(v) = &self.expose {
                line(&ACCESS_CONTROL_EXPOSE_HEADERS, v);
            }
            if self.private_network {
                line(&ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK, &TRUE);
            }
        }
        if let Some(v) = self.vary.line() {
            line(&http::header::VARY, &v);
        }
    }

    /// Replaces `headers` (a map with no room) with the lines: a clone of
    /// the prebuilt map of this shape with the per-request values moved in.
    /// Nothing when there are no lines. Borrows `self`: the lines are large,
    /// and moving them costs a copy.
    fn fresh(&mut self, headers: &mut HeaderMap) {
        let Some(template) = template(self.shape()) else {
            return;
        };
        *headers = template.clone();
        let Some(origin) = self.allow_origin.take() else {
            // Only `Vary`, whose value the prebuilt map holds.
            return;
        };
        // The prebuilt map holds its lines in `insert`'s order, one value
        // each, so the values are put by position: no name compares. The
        // fixed lines (`true`, `Vary`) are stepped over or left at the end.
        fn put(slot: Option<&mut HeaderValue>, value: Cow<'_, HeaderValue>) {
            if let Some(slot) = slot {
                *slot = value.into_owned();
            }
        }
        let mut slots = headers.values_mut();
        put(slots.next(), origin);
        if self.credentials {
            slots.next();
        }
        for value in [
            &mut self.allow_methods,
            &mut self.allow_headers,
            &mut self.max_age,
            &mut self.expose,
        ] {
            if let Some(value) = value.take() {
                put(slots.next(), value);
            }
        }
    }

    /// Which lines are written, as an index into [`TEMPLATES`]: the `Vary`
    /// variant, then (with an allowed origin) one bit per optional line.
    fn shape(&self) -> usize {
        let vary = self.vary.index();
        match self.allow_origin {
            None => vary,
            Some(_) => {
                let flags = usize::from(self.credentials)
                    | usize::from(self.allow_methods.is_some()) << 1
                    | usize::from(self.allow_headers.is_some()) << 2
                    | usize::from(self.max_age.is_some()) << 3
                    | usize::from(self.expose.is_some()) << 4
                    | usize::from(self.private_network) << 5;
                Vary::COUNT * (1 + flags) + vary
            }
        }
    }

    /// Lines of shape `shape` with placeholder values for the per-request
    /// ones (the inverse of [`Self::shape`]).
    fn of_shape(shape: usize) -> Lines<'static> {
        const PLACEHOLDER: HeaderValue = HeaderValue::from_static("");
        let vary = Vary::from_index(shape % Vary::COUNT).unwrap_or(Vary::None);
        let granted = shape / Vary::COUNT;
        let flags = granted.saturating_sub(1);
        let bit = |i: u32| flags & (1 << i) != 0;
        let value = |on: bool| on.then_some(Cow::Owned(PLACEHOLDER));
        Lines {
            allow_origin: value(granted > 0),
            credentials: bit(0),
            allow_methods: value(bit(1)),
            allow_headers: value(bit(2)),
            max_age: value(bit(3)),
            expose: value(bit(4)),
            private_network: bit(5),
            vary,
        }
    }

    /// How many header lines [`Self::write`] adds to an empty map.
    fn count(&self) -> usize {
        let granted = match self.allow_origin {
            None => 0,
            Some(_) => {
                1 + usize::from(self.credentials)
                    + usize::from(self.allow_methods.is_some())
                    + usize::from(self.allow_headers.is_some())
                    + usize::from(self.max_age.is_some())
                    + usize::from(self.expose.is_some())
                    + usize::from(self.private_network)
            }
        };
        granted + usize::from(self.vary.writes())
    }
}

/// Shapes of answer: every `Vary` variant without a grant, and with a grant
/// for each combination of the six optional lines.
const SHAPES: usize = Vary::COUNT * (1 + 64);

/// The prebuilt map of each shape ([`Lines::shape`]), built on first use
/// (one per shape per process, a few hundred bytes each); `None` for a
/// shape that writes nothing.
static TEMPLATES: [OnceLock<Option<HeaderMap>>; SHAPES] = [const { OnceLock::new() }; SHAPES];

/// The lines a `HeaderMap` holds before its first regrowth when built by
/// `HeaderMap::new()` and inserts (an index of 8 slots).
const DEFAULT_ROOM: usize = 6;

/// The prebuilt map of `shape`: its names in [`Lines::insert`]'s order,
/// fixed values (`true`, `Vary`) set, the others placeholders. Inlined:
/// after the first use it is a load and a compare.
#[inline]
fn template(shape: usize) -> Option<&'static HeaderMap> {
    TEMPLATES
        .get(shape)?
        .get_or_init(|| {
            let lines = Lines::of_shape(shape);
            (lines.count() > 0).then(|| {
                // At least a default map's index room (room for six lines):
                // a clone keeps the index's size, so a later layer adding a
                // line of its own to the answer does not regrow it.
                let mut map = HeaderMap::with_capacity(lines.count().max(DEFAULT_ROOM));
                lines.insert(&mut map);
                map
            })
        })
        .as_ref()
}

/// The engine's answer for one request. Borrows the policy's precomputed
/// header values and the request's echoed ones (`'a` is the shorter of the
/// two borrows); applying it does not allocate on the hot path. To keep
/// what a forwarded request's response needs beyond those borrows, take
/// [`Decision::forward_headers`].
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub(crate) kind: DecisionKind,
    pub(crate) reason: Option<Reason>,
    pub(crate) would_block: bool,
    pub(crate) strict: bool,
    pub(crate) grant: Grant<'a>,
    pub(crate) vary: Vary,
    /// Index in the policy's `origins` of the pattern the `Origin` matched.
    pub(crate) pattern: Option<u32>,
}

impl Decision<'static> {
    /// The fail-closed decision when there is no policy at all: CORS requests
    /// get no grants and preflights a 403 (reason `no_policy`).
    pub fn no_policy(req: &RequestParts<'_>) -> Decision<'static> {
        let (kind, reason) = if !req.headers.contains_key(ORIGIN) {
            (DecisionKind::NotCors, None)
        } else if super::is_preflight(req) {
            (DecisionKind::PreflightRejected, Some(Reason::NoPolicy))
        } else {
            (DecisionKind::Blocked, Some(Reason::NoPolicy))
        };
        Decision {
            kind,
            reason,
            would_block: false,
            strict: false,
            grant: Grant::default(),
            vary: Vary::Origin,
            pattern: None,
        }
    }
}

impl Decision<'_> {
    /// What kind of decision this is.
    pub fn kind(&self) -> DecisionKind {
        self.kind
    }

    /// Why it was blocked (or would have been, in report-only mode).
    pub fn reason(&self) -> Option<Reason> {
        self.reason
    }

    /// The index, in the policy's `origins`, of the approved pattern that
    /// granted this request: `Some` only for a granted actual request or
    /// preflight (no reason, not even a report-only one) whose `Origin`
    /// matched a pattern. A wildcard names itself, whichever origin it
    /// matched. What allowed-request usage is counted by.
    pub fn granted_pattern(&self) -> Option<usize> {
        let granted = matches!(
            self.kind,
            DecisionKind::Allowed | DecisionKind::PreflightAllowed
        ) && self.reason.is_none();
        self.pattern
            .filter(|_| granted)
            .and_then(|i| usize::try_from(i).ok())
    }

    /// Report-only mode let through a request the policy would have blocked.
    pub fn would_block(&self) -> bool {
        self.would_block
    }

    /// `Some(status)` when the agent must answer itself and never call the
    /// upstream (preflights: 204/403; strict-mode blocks: 403).
    pub fn local_response(&self) -> Option<StatusCode> {
        match self.kind {
            DecisionKind::PreflightAllowed => Some(StatusCode::NO_CONTENT),
            DecisionKind::PreflightRejected => Some(StatusCode::FORBIDDEN),
            DecisionKind::Blocked if self.strict => Some(StatusCode::FORBIDDEN),
            _ => None,
        }
    }

    /// Whether the upstream is called: the negation of [`Self::local_response`].
    pub fn forwards(&self) -> bool {
        self.local_response().is_none()
    }

    /// Writes the CORS response headers into `headers` — a local response's
    /// or the upstream's. Removes any `Access-Control-*` the upstream set (so
    /// exactly one `Access-Control-Allow-Origin` reaches the client) and
    /// appends `Vary` values, merging with the upstream's `Vary`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        self.lines().write(headers);
    }

    /// Calls `line` with each header line [`Self::apply`] writes into an
    /// empty map, in the same order, without building one: for a front that
    /// writes its answer's head as bytes (the proxy's HTTP/1.1 fast path).
    pub fn for_each_line(&self, line: impl FnMut(&HeaderName, &HeaderValue)) {
        self.lines().each(line);
    }

    /// The decision's lines, borrowing the policy's values.
    fn lines(&self) -> Lines<'_> {
        let g = &self.grant;
        Lines {
            allow_origin: g.allow_origin.map(Cow::Borrowed),
            credentials: g.credentials,
            allow_methods: g.allow_methods.map(Cow::Borrowed),
            allow_headers: g.allow_headers.as_deref().map(Cow::Borrowed),
            max_age: g.max_age.map(Cow::Borrowed),
            expose: g.expose.map(Cow::Borrowed),
            private_network: g.private_network,
            vary: self.vary,
        }
    }

    /// What the upstream's response needs from this decision, owning its
    /// values: for a forwarded request ([`Self::forwards`]), whose response
    /// arrives after the decision's borrows have ended (e.g. across an
    /// `await` in a tower service, once the request has moved on). A
    /// forwarded request is never a preflight, so only the origin,
    /// credentials, exposed headers and `Vary` are carried (clones share
    /// their bytes).
    #[inline]
    pub fn forward_headers(&self) -> ForwardHeaders {
        debug_assert!(self.forwards(), "forward_headers of a local answer");
        ForwardHeaders {
            allow_origin: self.grant.allow_origin.cloned(),
            expose: self.grant.expose.cloned(),
            credentials: self.grant.credentials,
            vary: self.vary,
        }
    }

    /// The headers [`Self::apply`] writes into an empty response: what the
    /// simulator shows. Allocates; not for the request path.
    pub fn response_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        self.apply(&mut headers);
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        map.iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    /// Every shape's prebuilt copy writes what inserting line by line
    /// writes, in the same order, with the per-request values swapped in.
    #[test]
    fn a_fresh_map_matches_line_by_line_insertion() {
        for shape in 0..SHAPES {
            let lines = || {
                let mut l = Lines::of_shape(shape);
                let fill = |v: &mut Option<Cow<'_, HeaderValue>>, s: &'static str| {
                    if v.is_some() {
                        *v = Some(Cow::Owned(HeaderValue::from_static(s)));
                    }
                };
                fill(&mut l.allow_origin, "https://a.test");
                fill(&mut l.allow_methods, "PUT");
                fill(&mut l.allow_headers, "x-a");
                fill(&mut l.max_age, "600");
                fill(&mut l.expose, "x-b");
                l
            };
            assert_eq!(lines().shape(), shape, "shape {shape} round trips");
            let mut inserted = HeaderMap::new();
            lines().insert(&mut inserted);
            let mut fresh = HeaderMap::new();
            lines().write(&mut fresh);
            assert_eq!(pairs(&fresh), pairs(&inserted), "shape {shape}");
            assert_eq!(fresh.len(), lines().count(), "shape {shape}");
            let mut each = Vec::new();
            lines().each(|n, v| each.push((n.as_str().to_owned(), v.as_bytes().to_vec())));
            assert_eq!(each, pairs(&inserted), "shape {shape}: each");
        }
    }

    /// A map that has room (an upstream response with headers) still gets
    /// its `Access-Control-*` lines replaced and its `Vary` merged.
    #[test]
    fn a_map_with_room_is_merged_not_replaced() {
        let mut map = HeaderMap::new();
        map.insert(http::header::VARY, HeaderValue::from_static("accept"));
        map.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        Lines::of_shape(Vary::COUNT + Vary::Origin.index()).write(&mut map);
        assert_eq!(
            pairs(&map),
            [
                ("vary".to_owned(), b"accept".to_vec()),
                ("vary".to_owned(), b"Origin".to_vec()),
                ("access-control-allow-origin".to_owned(), Vec::new()),
            ]
        );
    }
}
