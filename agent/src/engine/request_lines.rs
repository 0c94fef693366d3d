//! The request lines a CORS decision reads (`Origin` and the three
//! `Access-Control-Request-*`), found in one pass over a small request map
//! rather than a hashed lookup each.

use super::ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK;
use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
use http::{HeaderMap, HeaderName, HeaderValue};

/// One request header's values as the engine reads them: the first line,
/// and whether more lines of that name followed (a browser never sends
/// them; each check refuses them or reads every line itself).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestLine<'r> {
    pub(crate) first: Option<&'r HeaderValue>,
    pub(crate) more: bool,
}

impl<'r> RequestLine<'r> {
    /// `name`'s line in `headers`, by a hashed lookup.
    pub(crate) fn look_up(headers: &'r HeaderMap, name: &HeaderName) -> Self {
        let mut values = headers.get_all(name).iter();
        RequestLine {
            first: values.next(),
            more: values.next().is_some(),
        }
    }

    /// `name`'s line in `headers`: one pass over a map of up to
    /// [`SCAN_LINES`] lines (for a standard name such as `Origin` each
    /// line compares as one byte, cheaper than hashing the name and
    /// probing), a hashed lookup in a larger one. Inlined, so the compare
    /// is specialised to the constant name.
    #[inline]
    pub(crate) fn read(headers: &'r HeaderMap, name: &HeaderName) -> Self {
        if headers.len() > SCAN_LINES {
            return RequestLine::look_up(headers, name);
        }
        let mut line = RequestLine::default();
        for (n, value) in headers {
            if n == name {
                line.see(value);
            }
        }
        line
    }

    fn see(&mut self, value: &'r HeaderValue) {
        if self.first.is_none() {
            self.first = Some(value);
        } else {
            self.more = true;
        }
    }
}

/// Every line of one name in a request map, as an iterable that can be
/// read more than once (`Copy`), borrowing the map: what a check that reads
/// every line (rare: browsers send one) is given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AllLines<'r> {
    pub(crate) headers: &'r HeaderMap,
    pub(crate) name: &'r HeaderName,
}

impl<'r> IntoIterator for AllLines<'r> {
    type Item = &'r HeaderValue;
    type IntoIter = http::header::ValueIter<'r, HeaderValue>;

    fn into_iter(self) -> Self::IntoIter {
        self.headers.get_all(self.name).into_iter()
    }
}

/// The most lines a request map may have to be scanned rather than looked
/// up: a browser sends about fifteen; past this a scan would cost more than
/// the lookups it replaces.
const SCAN_LINES: usize = 24;

/// An `OPTIONS` request's CORS lines: a preflight when it has `Origin` and
/// `Access-Control-Request-Method`.
#[derive(Debug, Default)]
pub(crate) struct PreflightLines<'r> {
    pub(crate) origin: RequestLine<'r>,
    pub(crate) method: RequestLine<'r>,
    pub(crate) headers: RequestLine<'r>,
    pub(crate) private_network: RequestLine<'r>,
}

impl<'r> PreflightLines<'r> {
    /// Reads the four lines. A map of up to [`SCAN_LINES`] lines (a browser
    /// sends about fifteen) is scanned once: a standard name compares as
    /// one byte, while each hashed lookup costs about as much as scanning
    /// the whole map, and the 38-byte Private Network Access name costs
    /// more to hash. A larger map is looked up, so a request with many
    /// lines costs no more than four lookups.
    pub(crate) fn read(headers: &'r HeaderMap) -> Self {
        if headers.len() > SCAN_LINES {
            return PreflightLines {
                origin: RequestLine::look_up(headers, &ORIGIN),
                method: RequestLine::look_up(headers, &ACCESS_CONTROL_REQUEST_METHOD),
                headers: RequestLine::look_up(headers, &ACCESS_CONTROL_REQUEST_HEADERS),
                private_network: RequestLine::look_up(
                    headers,
                    &ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK,
                ),
            };
        }
        let mut lines = PreflightLines::default();
        for (name, value) in headers {
            let line = if name == ORIGIN {
                &mut lines.origin
            } else if name == ACCESS_CONTROL_REQUEST_METHOD {
                &mut lines.method
            } else if name == ACCESS_CONTROL_REQUEST_HEADERS {
                &mut lines.headers
            } else if name == ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK {
                &mut lines.private_network
            } else {
                continue;
            };
            line.see(value);
        }
        lines
    }

    /// Whether the preflight asks for Private Network Access: its first
    /// `Access-Control-Request-Private-Network` line says `true`.
    pub(crate) fn private_network_asked(&self) -> bool {
        self.private_network
            .first
            .is_some_and(|v| v.as_bytes() == b"true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &RequestLine<'_>, b: &RequestLine<'_>) -> bool {
        a.first.map(HeaderValue::as_bytes) == b.first.map(HeaderValue::as_bytes) && a.more == b.more
    }

    /// The scans (four lines together, or one alone) find what the
    /// lookups find, for every order of the four
    /// names (each absent, once or twice, case as sent), among filler lines
    /// that put the map on both sides of the scan's bound.
    #[test]
    fn the_scan_reads_what_lookups_read() {
        let names = [
            "origin",
            "Access-Control-Request-Method",
            "access-control-request-headers",
            "access-control-request-private-network",
        ];
        // Every permutation of the four names (Heap's algorithm).
        let mut orders = Vec::new();
        let mut order = [0usize, 1, 2, 3];
        let mut c = [0usize; 4];
        orders.push(order);
        let mut i = 1;
        while i < 4 {
            if c[i] < i {
                order.swap(if i % 2 == 0 { 0 } else { c[i] }, i);
                orders.push(order);
                c[i] += 1;
                i = 1;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        assert_eq!(orders.len(), 24);
        let mut checked = 0;
        for filler in [0, 3, 18, 19, 20, 21, 22, 23, 24, 30] {
            for order in &orders {
                // Each name absent, once or twice: three counts per name.
                for counts in 0..81u32 {
                    let mut h = HeaderMap::new();
                    for i in 0..filler {
                        h.append(
                            HeaderName::from_bytes(format!("x-fill-{i}").as_bytes())
                                .expect("valid"),
                            HeaderValue::from_static("f"),
                        );
                    }
                    for &n in order {
                        let times = counts / 3u32.pow(n as u32) % 3;
                        for t in 0..times {
                            h.append(
                                HeaderName::from_bytes(names[n].as_bytes()).expect("valid"),
                                HeaderValue::from_str(&format!("{}-{t}", names[n])).expect("valid"),
                            );
                        }
                    }
                    let read = PreflightLines::read(&h);
                    let want = [
                        RequestLine::look_up(&h, &ORIGIN),
                        RequestLine::look_up(&h, &ACCESS_CONTROL_REQUEST_METHOD),
                        RequestLine::look_up(&h, &ACCESS_CONTROL_REQUEST_HEADERS),
                        RequestLine::look_up(&h, &ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK),
                    ];
                    let got = [read.origin, read.method, read.headers, read.private_network];
                    // One name read alone (an actual request's `Origin`)
                    // finds the same line too.
                    let alone = [
                        ORIGIN,
                        ACCESS_CONTROL_REQUEST_METHOD,
                        ACCESS_CONTROL_REQUEST_HEADERS,
                        ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK,
                    ]
                    .map(|name| RequestLine::read(&h, &name));
                    for ((g, a), w) in got.iter().zip(&alone).zip(&want) {
                        assert!(
                            same(g, w) && same(a, w),
                            "{} lines, order {order:?}, counts {counts}: {g:?} and {a:?} vs {w:?}",
                            h.len()
                        );
                    }
                    checked += usize::from(h.len() > SCAN_LINES);
                }
            }
        }
        assert!(checked > 0, "some maps were past the bound (looked up)");
    }
}
