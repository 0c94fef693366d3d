//! RFC 9110 tokens: the grammar of method and header names.

/// True when `s` is a non-empty RFC 9110 `token`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| TCHAR[usize::from(b)])
}

/// True when `b` is an RFC 9110 `tchar` (one table load).
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// `tchar` as a table: one load per byte. Checking the punctuation with
/// `<[u8]>::contains` cost a `memchr` call for every `-` in a header name,
/// and preflights check every requested name.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_the_rfc_9110_tchar_set() {
        let punctuation = b"!#$%&'*+-.^_`|~";
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || punctuation.contains(&b);
            assert_eq!(is_token(&[b]), want, "byte {b:#04x}");
        }
        assert!(!is_token(b""));
        assert!(is_token(b"x-custom"));
        assert!(!is_token(b"x custom"));
    }
}
