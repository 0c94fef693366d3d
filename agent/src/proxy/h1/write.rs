//! Writing response heads as bytes: the status line, header lines, `Date`.

use http::{HeaderMap, StatusCode};
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `HTTP/1.1 <code> <reason>\r\n`, with the status code's standard reason.
pub(super) fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One header line.
pub(super) fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Every line of `headers`.
pub(super) fn lines(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        line(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

/// `content-length: <n>`.
pub(super) fn content_length(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    line(out, b"content-length", &digits[at..]);
}

/// `date: <IMF-fixdate>` for now (RFC 9110 §6.6.1: a proxy adds it when the
/// upstream sent none; hyper's server does the same). Formatted once a
/// second per thread.
pub(super) fn date(out: &mut Vec<u8>) {
    thread_local! {
        static LAST: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LAST.with_borrow_mut(|(at, value)| {
        if *at != secs {
            *value = httpdate::fmt_http_date(now);
            *at = secs;
        }
        line(out, b"date", value.as_bytes());
    });
}

/// Whether a response with `status` has no body and no `Content-Length` of
/// its own (1xx, 204; RFC 9110 §8.6).
pub(super) fn has_no_length(status: StatusCode) -> bool {
    status.is_informational() || status == StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_heads() {
        let mut out = Vec::new();
        status_line(&mut out, StatusCode::NO_CONTENT);
        content_length(&mut out, 0);
        content_length(&mut out, 18_446_744_073_709_551_615);
        let mut headers = HeaderMap::new();
        headers.insert("vary", "Origin".parse().expect("value"));
        lines(&mut out, &headers);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\ncontent-length: 18446744073709551615\r\nvary: Origin\r\n"
        );
        let mut dated = Vec::new();
        date(&mut dated);
        let text = String::from_utf8_lossy(&dated);
        let value = text
            .strip_prefix("date: ")
            .and_then(|v| v.strip_suffix("\r\n"))
            .expect("a date line");
        assert!(httpdate::parse_http_date(value).is_ok(), "{value:?}");
    }
}
