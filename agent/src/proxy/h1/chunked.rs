//! A chunked response body (RFC 9112 §7.1), re-framed on its way through:
//! the data passes as it comes, each chunk under a plain size line (the
//! upstream's chunk extensions dropped) and the body closed with `0` and no
//! trailer fields (the client did not ask for trailers, and a trailer
//! could carry an `Access-Control-*` line past the engine), as hyper's path
//! does. It also says where the body ends, so the upstream connection is
//! free again.
//!
//! Strict: a malformed size line, a missing CRLF after a chunk, or a line
//! past [`MAX_LINE`] is an error, and the fast path then closes both
//! connections rather than guess where the next response starts.

use std::io::Write as _;

/// Longest chunk-size line (extensions included) or trailer line accepted.
pub(super) const MAX_LINE: usize = 4096;

/// The body is not valid chunked coding.
#[derive(Debug, thiserror::Error)]
#[error("malformed chunked body from the upstream: {0}")]
pub(super) struct ChunkedError(&'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size (`digits` of them so far).
    Size { size: u64, digits: u8 },
    /// Whitespace after the size (only `;` or CR may follow).
    SizeWs { size: u64 },
    /// A chunk extension, up to CR.
    Extension { size: u64 },
    /// The LF ending the size line.
    SizeLf { size: u64 },
    /// Chunk data still to pass.
    Data(u64),
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// The LF of a trailer line.
    TrailerLf,
    /// The LF of the final, empty line.
    EndLf,
    /// The body is over.
    Done,
}

/// Follows one chunked body through its bytes.
#[derive(Debug)]
pub(super) struct Chunked {
    state: State,
    /// Bytes of the current size or trailer line.
    line: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Self {
            state: State::Size { size: 0, digits: 0 },
            line: 0,
        }
    }
}

impl Chunked {
    /// Reads `bytes`, the body's next ones, and appends their re-framed
    /// form to `out`. `Ok(Some(n))`: the body ends after the first `n` of
    /// them; `Ok(None)`: all of them belong to it and more follow.
    pub(super) fn feed(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, ChunkedError> {
        let mut i = 0;
        while i < bytes.len() {
            if let State::Data(left) = self.state {
                // The bulk of a body: pass the chunk's data at once.
                let take = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - i);
                out.extend_from_slice(&bytes[i..i + take]);
                i += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                continue;
            }
            let b = bytes[i];
            i += 1;
            let before = self.state;
            self.state = self.step(b)?;
            match (before, self.state) {
                (State::SizeLf { size }, State::Data(_)) => {
                    // Writing into a Vec cannot fail.
                    let _ = write!(out, "{size:x}\r\n");
                }
                (State::DataLf, State::Size { .. }) => out.extend_from_slice(b"\r\n"),
                (_, State::Done) => {
                    out.extend_from_slice(b"0\r\n\r\n");
                    return Ok(Some(i));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    fn step(&mut self, b: u8) -> Result<State, ChunkedError> {
        self.line += 1;
        if self.line > MAX_LINE {
            return Err(ChunkedError("line too long"));
        }
        Ok(match self.state {
            State::Size { size, digits } => match (b as char).to_digit(16) {
                Some(d) => {
                    if digits >= 15 {
                        return Err(ChunkedError("chunk size too large"));
                    }
                    State::Size {
                        size: size << 4 | u64::from(d),
                        digits: digits + 1,
                    }
                }
                None if digits == 0 => return Err(ChunkedError("chunk size missing")),
                None => match b {
                    b'\r' => State::SizeLf { size },
                    b';' => State::Extension { size },
                    b' ' | b'\t' => State::SizeWs { size },
                    _ => return Err(ChunkedError("bad chunk size")),
                },
            },
            State::SizeWs { size } => match b {
                b'\r' => State::SizeLf { size },
                b';' => State::Extension { size },
                b' ' | b'\t' => State::SizeWs { size },
                _ => return Err(ChunkedError("bad chunk size")),
            },
            State::Extension { size } => match b {
                b'\r' => State::SizeLf { size },
                b'\n' => return Err(ChunkedError("bare LF in a chunk extension")),
                _ => State::Extension { size },
            },
            State::SizeLf { size } => {
                if b != b'\n' {
                    return Err(ChunkedError("chunk size line not ended by CRLF"));
                }
                self.line = 0;
                if size == 0 {
                    State::TrailerStart
                } else {
                    State::Data(size)
                }
            }
            // `feed` passes data in bulk and never steps through it.
            State::Data(_) => return Err(ChunkedError("internal: data stepped")),
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(ChunkedError("chunk data not followed by CRLF")),
            },
            State::DataLf => match b {
                b'\n' => {
                    self.line = 0;
                    State::Size { size: 0, digits: 0 }
                }
                _ => return Err(ChunkedError("chunk data not followed by CRLF")),
            },
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                b'\n' => return Err(ChunkedError("bare LF in the trailer section")),
                _ => State::Trailer,
            },
            State::Trailer => match b {
                b'\r' => State::TrailerLf,
                b'\n' => return Err(ChunkedError("bare LF in the trailer section")),
                _ => State::Trailer,
            },
            State::TrailerLf => match b {
                b'\n' => {
                    self.line = 0;
                    State::TrailerStart
                }
                _ => return Err(ChunkedError("trailer line not ended by CRLF")),
            },
            State::EndLf => match b {
                b'\n' => State::Done,
                _ => return Err(ChunkedError("last chunk not ended by CRLF")),
            },
            State::Done => return Err(ChunkedError("bytes after the end")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `step` bytes; where the body ended, and
    /// the re-framed bytes.
    fn end(body: &[u8], step: usize) -> Result<(Option<usize>, Vec<u8>), ChunkedError> {
        let mut c = Chunked::default();
        let mut out = Vec::new();
        let mut at = 0;
        for piece in body.chunks(step) {
            if let Some(n) = c.feed(piece, &mut out)? {
                return Ok((Some(at + n), out));
            }
            at += piece.len();
        }
        Ok((None, out))
    }

    #[test]
    fn finds_the_end_and_reframes_in_any_split() {
        let body = b"5\r\nhello\r\n1A;name=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n3 ;x\r\nend\r\n0\r\nx-trailer: 1\r\nAccess-Control-Allow-Origin: *\r\n\r\nNEXT";
        let len = body.len() - 4;
        let plain = b"5\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n3\r\nend\r\n0\r\n\r\n";
        for step in 1..=body.len() {
            let (at, out) = end(body, step).expect("valid");
            assert_eq!(at, Some(len), "step {step}");
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(plain),
                "step {step}"
            );
        }
        assert_eq!(
            end(b"0\r\n\r\n", 7).expect("valid"),
            (Some(5), b"0\r\n\r\n".to_vec())
        );
        assert_eq!(end(b"5\r\nhel", 3).expect("valid so far").0, None);
    }

    #[test]
    fn refuses_malformed_bodies() {
        for bad in [
            &b"\r\n"[..],
            b"g\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n",
            b"5\r\nhello\r\r",
            b"0\r\n\n",
            b"0\r\nx: 1\n",
            b"1234567890abcdef0\r\n",
            b"-1\r\n",
            b"5 junk\r\nhello\r\n",
            b"5\t x\r\nhello\r\n",
        ] {
            assert!(
                end(bad, 1).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("1;{}\r\n", "x".repeat(MAX_LINE));
        assert!(end(long.as_bytes(), 64).is_err());
    }
}
