//! `Vary`: which request headers a response depends on, merged into the
//! response's own `Vary` without losing or duplicating anything.

use http::header::{Entry, VARY};
use http::{HeaderMap, HeaderValue};

/// The `Vary` a decision needs (static strings: applying never allocates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vary {
    /// Nothing (an any-origin anonymous policy's actual response).
    None,
    /// `Origin`.
    Origin,
    /// A preflight's: what it echoes.
    Preflight,
    /// A preflight's on a policy that answers Private Network Access.
    PreflightPna,
    /// An any-origin preflight: the origin does not matter.
    PreflightAnyOrigin,
}

// Built at compile time: `HeaderValue::from_static` checks every byte, which
// at run time cost ~700 instructions per preflight for the longest line.
const ORIGIN: HeaderValue = HeaderValue::from_static("Origin");
const PREFLIGHT: HeaderValue = HeaderValue::from_static(
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
);
const PREFLIGHT_PNA: HeaderValue = HeaderValue::from_static(
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network",
);
const PREFLIGHT_ANY_ORIGIN: HeaderValue =
    HeaderValue::from_static("Access-Control-Request-Method, Access-Control-Request-Headers");

impl Vary {
    /// How many variants there are: [`Vary::index`] is below it.
    pub(crate) const COUNT: usize = 5;

    /// A dense index, `0..Vary::COUNT` (for tables keyed by variant).
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The variant of [`Vary::index`] `i`, `None` past the last.
    pub(crate) fn from_index(i: usize) -> Option<Vary> {
        [
            Vary::None,
            Vary::Origin,
            Vary::Preflight,
            Vary::PreflightPna,
            Vary::PreflightAnyOrigin,
        ]
        .get(i)
        .copied()
    }

    /// The whole line, `None` for [`Vary::None`].
    pub(crate) fn line(self) -> Option<HeaderValue> {
        match self {
            Vary::None => None,
            Vary::Origin => Some(ORIGIN),
            Vary::Preflight => Some(PREFLIGHT),
            Vary::PreflightPna => Some(PREFLIGHT_PNA),
            Vary::PreflightAnyOrigin => Some(PREFLIGHT_ANY_ORIGIN),
        }
    }

    /// The names, `", "`-separated (for merging with an upstream's `Vary`).
    fn names(self) -> &'static str {
        match self {
            Vary::None => "",
            Vary::Origin => "Origin",
            Vary::Preflight => {
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
            }
            Vary::PreflightPna => {
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network"
            }
            Vary::PreflightAnyOrigin => {
                "Access-Control-Request-Method, Access-Control-Request-Headers"
            }
        }
    }

    /// Whether applying writes a header (for sizing a fresh map).
    pub(crate) fn writes(self) -> bool {
        self != Vary::None
    }

    /// Appends to `headers`' `Vary`: nothing if it is already `*`; one line
    /// when none of our names is there yet; else only the missing names.
    pub(crate) fn apply(self, headers: &mut HeaderMap) {
        let Some(line) = self.line() else {
            return;
        };
        // The usual case (every local answer, most upstream responses): no
        // `Vary` yet, so ours is the whole line; nothing to scan or split.
        // One lookup (an entry) rather than a lookup and an append.
        if let Entry::Vacant(slot) = headers.entry(VARY) {
            slot.insert(line);
            return;
        }
        let ours = self.names();
        let present = |name: &str| {
            headers.get_all(VARY).iter().any(|v| {
                v.as_bytes()
                    .split(|&b| b == b',')
                    .map(<[u8]>::trim_ascii)
                    .any(|t| t == b"*" || t.eq_ignore_ascii_case(name.as_bytes()))
            })
        };
        if present("*") {
            return;
        }
        let missing = ours.split(", ").filter(|n| !present(n)).count();
        if missing == ours.split(", ").count() {
            headers.append(VARY, line.clone());
            return;
        }
        let names: Vec<&'static str> = ours.split(", ").filter(|n| !present(n)).collect();
        for n in names {
            headers.append(VARY, HeaderValue::from_static(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vary_after(upstream: &[&'static str], ours: Vary) -> Vec<String> {
        let mut h = HeaderMap::new();
        for v in upstream {
            h.append(VARY, HeaderValue::from_static(v));
        }
        ours.apply(&mut h);
        h.get_all(VARY)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn each_line_is_its_names() {
        for v in [
            Vary::None,
            Vary::Origin,
            Vary::Preflight,
            Vary::PreflightPna,
            Vary::PreflightAnyOrigin,
        ] {
            let line = v
                .line()
                .and_then(|l| l.to_str().ok().map(str::to_owned))
                .unwrap_or_default();
            assert_eq!(line, v.names());
            assert_eq!(v.writes(), !v.names().is_empty());
            assert_eq!(Vary::from_index(v.index()), Some(v));
            assert!(v.index() < Vary::COUNT);
        }
        assert_eq!(Vary::from_index(Vary::COUNT), None);
    }

    #[test]
    fn merges_without_duplicates() {
        assert_eq!(vary_after(&[], Vary::Origin), ["Origin"]);
        assert_eq!(
            vary_after(&["accept-encoding"], Vary::Origin),
            ["accept-encoding", "Origin"]
        );
        assert_eq!(vary_after(&["origin"], Vary::Origin), ["origin"]);
        assert_eq!(
            vary_after(&["Accept, Origin"], Vary::Origin),
            ["Accept, Origin"]
        );
        assert_eq!(vary_after(&["*"], Vary::Preflight), ["*"]);
        assert_eq!(vary_after(&["accept", "*"], Vary::Origin), ["accept", "*"]);
        assert_eq!(
            vary_after(&["Origin"], Vary::Preflight),
            [
                "Origin",
                "Access-Control-Request-Method",
                "Access-Control-Request-Headers"
            ]
        );
        assert_eq!(vary_after(&["x"], Vary::None), ["x"]);
    }
}
