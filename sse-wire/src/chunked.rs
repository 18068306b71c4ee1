//! A sans-IO decoder for HTTP/1.1 `Transfer-Encoding: chunked` bodies.
//!
//! Our own because the harness needs byte-exact control of the decoded body:
//! it must hand out exactly as many body bytes as asked (to cut after byte k),
//! report the decoded offset, and tell a truncated or malformed chunk stream
//! apart from a clean end. Hyper's decoder is not reachable from a raw socket
//! and would buffer ahead. Chunk extensions and trailers are tolerated and
//! ignored; every line is length-bounded, so hostile input cannot allocate.

/// Longest chunk-size line accepted (size, extensions, line ending).
pub(crate) const MAX_SIZE_LINE: usize = 4096;
/// Largest chunk size accepted (1 GiB); data is streamed, never buffered, so
/// this only rejects absurd sizes.
pub(crate) const MAX_CHUNK_SIZE: u64 = 1 << 30;
/// Most trailer bytes accepted after the last chunk.
pub(crate) const MAX_TRAILER_BYTES: usize = 64 * 1024;

/// Why a chunked body is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// Malformed framing (the message says what).
    #[error("malformed chunked body: {0}")]
    Bad(String),
    /// A limit was exceeded.
    #[error("chunked body over a limit: {0}")]
    TooLarge(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `digits` counts hex digits seen.
    Size { size: u64, digits: u32 },
    /// After the size: whitespace or `;extension` up to the line end; `ext`
    /// once a `;` was seen (the rest of the line is extension text).
    SizeRest { size: u64, ext: bool },
    /// Saw CR after the size line; expecting LF.
    SizeLf { size: u64 },
    /// Inside chunk data.
    Data { remaining: u64 },
    /// After chunk data: expecting CR LF (or a bare LF).
    DataCr,
    /// After chunk data and CR: expecting LF.
    DataLf,
    /// After the last chunk: reading trailer lines; `line` is the current
    /// line's length so far.
    Trailer { line: usize, cr: bool },
    /// The body is complete.
    Done,
}

/// The decoder state of one chunked body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    line_bytes: usize,
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            line_bytes: 0,
            trailer_bytes: 0,
        }
    }

    /// Whether the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the last chunk was seen (only trailers may be missing).
    pub fn saw_last_chunk(&self) -> bool {
        matches!(self.state, State::Trailer { .. } | State::Done)
    }

    /// Decodes from `input` into `out`; returns (input consumed, bytes
    /// written). Stops when `out` is full, the input is used up, or the body
    /// is done.
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), ChunkError> {
        let mut i = 0;
        let mut o = 0;
        while i < input.len() && self.state != State::Done {
            if let State::Data { remaining } = self.state {
                if o == out.len() {
                    break;
                }
                let n = (remaining.min((input.len() - i) as u64) as usize).min(out.len() - o);
                out[o..o + n].copy_from_slice(&input[i..i + n]);
                i += n;
                o += n;
                let remaining = remaining - n as u64;
                self.state = if remaining == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining }
                };
                continue;
            }
            let b = input[i];
            i += 1;
            self.byte(b)?;
        }
        Ok((i, o))
    }

    fn size_line_byte(&mut self) -> Result<(), ChunkError> {
        self.line_bytes += 1;
        if self.line_bytes > MAX_SIZE_LINE {
            return Err(ChunkError::TooLarge(format!(
                "chunk size line longer than {MAX_SIZE_LINE} bytes"
            )));
        }
        Ok(())
    }

    fn end_size_line(&mut self, size: u64) {
        self.line_bytes = 0;
        self.state = if size == 0 {
            State::Trailer { line: 0, cr: false }
        } else {
            State::Data { remaining: size }
        };
    }

    fn byte(&mut self, b: u8) -> Result<(), ChunkError> {
        match self.state {
            State::Size { size, digits } => {
                self.size_line_byte()?;
                if let Some(d) = (b as char).to_digit(16) {
                    let size = size * 16 + u64::from(d);
                    if size > MAX_CHUNK_SIZE {
                        return Err(ChunkError::TooLarge(format!(
                            "chunk size above {MAX_CHUNK_SIZE} bytes"
                        )));
                    }
                    self.state = State::Size {
                        size,
                        digits: digits + 1,
                    };
                    return Ok(());
                }
                if digits == 0 {
                    return Err(ChunkError::Bad(format!(
                        "chunk size line starts with {:?}, not a hex digit",
                        b as char
                    )));
                }
                self.size_rest(size, false, b)
            }
            State::SizeRest { size, ext } => {
                self.size_line_byte()?;
                self.size_rest(size, ext, b)
            }
            State::SizeLf { size } => {
                if b != b'\n' {
                    return Err(ChunkError::Bad(
                        "CR not followed by LF in chunk size line".into(),
                    ));
                }
                self.end_size_line(size);
                Ok(())
            }
            State::DataCr => match b {
                b'\r' => {
                    self.state = State::DataLf;
                    Ok(())
                }
                b'\n' => {
                    self.state = State::Size { size: 0, digits: 0 };
                    Ok(())
                }
                _ => Err(ChunkError::Bad(
                    "chunk data longer than its declared size (no CRLF after it)".into(),
                )),
            },
            State::DataLf => {
                if b != b'\n' {
                    return Err(ChunkError::Bad(
                        "CR not followed by LF after chunk data".into(),
                    ));
                }
                self.state = State::Size { size: 0, digits: 0 };
                Ok(())
            }
            State::Trailer { line, cr } => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > MAX_TRAILER_BYTES {
                    return Err(ChunkError::TooLarge(format!(
                        "trailers longer than {MAX_TRAILER_BYTES} bytes"
                    )));
                }
                self.state = match b {
                    b'\n' if line == 0 => State::Done,
                    b'\n' => State::Trailer { line: 0, cr: false },
                    b'\r' => State::Trailer { line, cr: true },
                    _ if cr => {
                        return Err(ChunkError::Bad("CR not followed by LF in trailers".into()));
                    }
                    _ => State::Trailer {
                        line: line + 1,
                        cr: false,
                    },
                };
                Ok(())
            }
            State::Data { .. } | State::Done => Ok(()),
        }
    }

    /// A byte after the size digits: optional whitespace, `;ext`, line end.
    fn size_rest(&mut self, size: u64, ext: bool, b: u8) -> Result<(), ChunkError> {
        match b {
            b'\r' => self.state = State::SizeLf { size },
            b'\n' => self.end_size_line(size),
            b';' => self.state = State::SizeRest { size, ext: true },
            b' ' | b'\t' => self.state = State::SizeRest { size, ext },
            _ if ext => {}
            _ => {
                return Err(ChunkError::Bad(format!(
                    "unexpected {:?} in chunk size line",
                    b as char
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `wire` fed in `step`-byte pieces into `out_step`-byte buffers.
    fn decode_all(
        wire: &[u8],
        step: usize,
        out_step: usize,
    ) -> Result<(Vec<u8>, bool), ChunkError> {
        let mut dec = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut out = vec![0u8; out_step];
        for piece in wire.chunks(step) {
            let mut at = 0;
            loop {
                let (used, n) = dec.decode(&piece[at..], &mut out)?;
                at += used;
                body.extend_from_slice(&out[..n]);
                if at == piece.len() || dec.is_done() || (used == 0 && n == 0) {
                    break;
                }
            }
        }
        Ok((body, dec.is_done()))
    }

    fn encode(body: &[u8], sizes: &[usize], ext: bool) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut rest = body;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes
                .get(i)
                .copied()
                .unwrap_or(rest.len())
                .clamp(1, rest.len());
            i += 1;
            let ext = if ext && i % 2 == 0 { ";a=\"b;c\"" } else { "" };
            wire.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
            wire.extend_from_slice(&rest[..n]);
            wire.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        wire.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
        wire
    }

    #[test]
    fn stops_at_the_end_of_the_body() {
        let mut dec = ChunkedDecoder::new();
        let mut out = [0u8; 16];
        let (used, n) = dec.decode(b"3\r\nabc\r\n0\r\n\r\nNEXT", &mut out).unwrap();
        assert_eq!((used, n, &out[..3]), (13, 3, &b"abc"[..]));
        assert!(dec.is_done());
    }

    proptest! {
        #[test]
        fn any_split_decodes_the_body(
            body in prop::collection::vec(any::<u8>(), 0..300),
            sizes in prop::collection::vec(1usize..40, 0..20),
            ext in any::<bool>(),
            step in 1usize..20,
            out_step in 1usize..20,
        ) {
            let wire = encode(&body, &sizes, ext);
            let (got, done) = decode_all(&wire, step, out_step).unwrap();
            prop_assert_eq!(got, body);
            prop_assert!(done);
        }

        #[test]
        fn garbage_never_panics(wire in prop::collection::vec(any::<u8>(), 0..200), step in 1usize..9) {
            let _ = decode_all(&wire, step, 7);
        }
    }
}
