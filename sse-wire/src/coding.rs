//! Transparent `Content-Encoding` decoding under [`Response::read_body`]: `gzip`
//! (`x-gzip`), `deflate` (zlib-wrapped per RFC 9110, or raw deflate as browsers
//! accept it), `br`, and `identity`.
//!
//! Browsers send `Accept-Encoding: gzip, deflate, br`, and so does the harness, so a
//! server may compress the event stream; the client must hand the caller the decoded
//! bytes, and cuts ("close after body byte k") count decoded bytes.
//!
//! Hand-wired on the decoders' sans-IO step functions (`flate2::Decompress`, backed
//! by the pure-Rust `zlib-rs`, and `brotli_decompressor::BrotliDecompressStream`)
//! rather than their `Read` adapters, for two reasons:
//!
//! - **Bounded output per step.** Every step decodes into a fixed buffer of
//!   [`MAX_DECODED_AHEAD`] bytes, and the next step runs only once the caller has
//!   taken all of it. A decompression bomb (10 KB of gzip that expands to 1 GB) is
//!   read piecewise and never makes the client hold more than that bound of decoded
//!   bytes, plus the decoder's own window (32 KiB for zlib; for brotli the stream's
//!   window, at most 16 MiB: large-window brotli is refused).
//! - **Cancel-safety.** `read_body` is pull-based and callers `select!` it against
//!   timers. The only await is the raw body read, which is cancel-safe (nothing is
//!   taken off the wire unless it completes); decoding itself is synchronous, and its
//!   pending output stays in the [`Response`], so a dropped read loses nothing.
//!
//! Decisions:
//!
//! - Several codings stacked (`Content-Encoding: gzip, br`) are refused: browsers
//!   barely support them and no SSE server sends them. `identity` entries are ignored.
//! - An unsupported coding (e.g. `zstd`, never offered) and corrupt compressed data
//!   are [`WireErrorKind::Encoding`] errors, on the first body read and where the
//!   corruption is found respectively; decoded bytes before the corruption are handed
//!   out first.
//! - The body ending (EOF, last chunk, `END_STREAM`) inside the compressed stream is
//!   [`WireErrorKind::UnexpectedEof`], after every byte that could be decoded. An empty
//!   body is a clean end whatever the coding.
//! - Bytes after the end of the compressed stream (e.g. a second gzip member) are read
//!   and ignored, as browsers do.
//! - Over HTTP/2, flow-control window is released exactly for the raw DATA bytes the
//!   decoder consumed.
//!
//! [`Response::read_body`]: crate::Response::read_body
//! [`Response`]: crate::Response

use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};

use crate::conn::{Body, WireError, WireErrorKind};

/// Most decoded bytes held ahead of what the caller has taken (the pending output
/// buffer, allocated once at this size).
pub const MAX_DECODED_AHEAD: usize = 64 * 1024;
/// Size of the staging buffer for raw (still encoded) HTTP/1.1 body bytes.
pub(crate) const RAW_STAGE: usize = 16 * 1024;

/// The content coding of a response body (its `Content-Encoding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContentEncoding {
    /// No coding (`Content-Encoding` absent or `identity`).
    #[default]
    Identity,
    /// `gzip` or `x-gzip` (RFC 1952).
    Gzip,
    /// `deflate`: zlib (RFC 1950), or raw deflate (RFC 1951) as browsers accept.
    Deflate,
    /// `br`: brotli (RFC 7932).
    Br,
    /// A coding this client cannot decode, or several codings stacked: decoding
    /// fails with [`WireErrorKind::Encoding`] on the first body read.
    Unsupported,
}

impl ContentEncoding {
    /// The stable name used in reports: `identity`, `gzip`, `deflate`, `br` or
    /// `unsupported`.
    pub fn name(&self) -> &'static str {
        match self {
            ContentEncoding::Identity => "identity",
            ContentEncoding::Gzip => "gzip",
            ContentEncoding::Deflate => "deflate",
            ContentEncoding::Br => "br",
            ContentEncoding::Unsupported => "unsupported",
        }
    }

    /// The coding of a response with these (lower-cased) header fields, and why it is
    /// unsupported when it is.
    pub(crate) fn from_headers(headers: &[(String, String)]) -> (ContentEncoding, Option<String>) {
        let codings: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n == "content-encoding")
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
            .collect();
        match codings.as_slice() {
            [] => (ContentEncoding::Identity, None),
            [one] => match one.to_ascii_lowercase().as_str() {
                "gzip" | "x-gzip" => (ContentEncoding::Gzip, None),
                "deflate" => (ContentEncoding::Deflate, None),
                "br" => (ContentEncoding::Br, None),
                _ => (
                    ContentEncoding::Unsupported,
                    Some(format!(
                        "unsupported Content-Encoding {one:?} (gzip, deflate and br are decoded)"
                    )),
                ),
            },
            several => (
                ContentEncoding::Unsupported,
                Some(format!(
                    "several content codings stacked ({}): not supported",
                    several.join(", ")
                )),
            ),
        }
    }
}

impl std::fmt::Display for ContentEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

type Brotli = BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>;

/// A decoder's state.
enum Codec {
    /// `deflate` before its first two bytes: zlib or raw deflate is told by the zlib
    /// header check (as browsers do).
    Sniff(Vec<u8>),
    /// gzip, zlib or raw deflate.
    Flate(Box<flate2::Decompress>),
    /// brotli.
    Brotli(Box<Brotli>),
}

/// A sans-IO decoder of one content coding.
struct Decoder {
    codec: Codec,
    finished: bool,
}

/// Whether `b0 b1` is a zlib header (RFC 1950: deflate method, window at most 32 KiB,
/// check bits).
fn is_zlib_header(b0: u8, b1: u8) -> bool {
    b0 & 0x0f == 8 && b0 >> 4 <= 7 && (u16::from(b0) << 8 | u16::from(b1)) % 31 == 0
}

impl Decoder {
    fn new(encoding: ContentEncoding) -> Option<Decoder> {
        let codec = match encoding {
            ContentEncoding::Gzip => Codec::Flate(Box::new(flate2::Decompress::new_gzip(15))),
            ContentEncoding::Deflate => Codec::Sniff(Vec::with_capacity(2)),
            ContentEncoding::Br => {
                let mut state = Brotli::new(
                    StandardAlloc::default(),
                    StandardAlloc::default(),
                    StandardAlloc::default(),
                );
                // RFC 7932 windows only (at most 16 MiB), not the 1 GiB extension.
                state.large_window = false;
                Codec::Brotli(Box::new(state))
            }
            ContentEncoding::Identity | ContentEncoding::Unsupported => return None,
        };
        Some(Decoder {
            codec,
            finished: false,
        })
    }

    /// Decodes from `input` into `out`: (input bytes consumed, output bytes produced).
    /// Consumes input whenever there is some and `out` has room.
    fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), String> {
        if self.finished {
            return Ok((0, 0));
        }
        match &mut self.codec {
            Codec::Sniff(head) => {
                let take = (2 - head.len()).min(input.len());
                head.extend_from_slice(&input[..take]);
                if head.len() < 2 {
                    return Ok((take, 0));
                }
                let (b0, b1) = (head[0], head[1]);
                let head = std::mem::take(head);
                let mut d = flate2::Decompress::new(is_zlib_header(b0, b1));
                let (used, n) = flate(&mut d, &head, out, &mut self.finished)?;
                self.codec = Codec::Flate(Box::new(d));
                if used < head.len() {
                    // Cannot happen: two bytes are a zlib header or the start of a block,
                    // both always taken while the output has room.
                    return Err("the deflate decoder did not take its first two bytes".into());
                }
                Ok((take, n))
            }
            Codec::Flate(d) => flate(d, input, out, &mut self.finished),
            Codec::Brotli(state) => {
                let (mut avail_in, mut in_off) = (input.len(), 0usize);
                let (mut avail_out, mut out_off, mut total) = (out.len(), 0usize, 0usize);
                let r = BrotliDecompressStream(
                    &mut avail_in,
                    &mut in_off,
                    input,
                    &mut avail_out,
                    &mut out_off,
                    out,
                    &mut total,
                    state,
                );
                match r {
                    BrotliResult::ResultSuccess => self.finished = true,
                    BrotliResult::NeedsMoreInput | BrotliResult::NeedsMoreOutput => {}
                    BrotliResult::ResultFailure => {
                        return Err(format!("corrupt brotli data: {:?}", state.error_code));
                    }
                }
                Ok((in_off, out_off))
            }
        }
    }
}

/// One `flate2` step; sets `finished` at the end of the stream.
fn flate(
    d: &mut flate2::Decompress,
    input: &[u8],
    out: &mut [u8],
    finished: &mut bool,
) -> Result<(usize, usize), String> {
    let (in0, out0) = (d.total_in(), d.total_out());
    let status = d
        .decompress(input, out, flate2::FlushDecompress::None)
        .map_err(|e| format!("corrupt compressed data: {e}"))?;
    if status == flate2::Status::StreamEnd {
        *finished = true;
    }
    Ok((
        (d.total_in() - in0) as usize,
        (d.total_out() - out0) as usize,
    ))
}

/// The raw HTTP/1.1 body bytes read ahead for the decoder: `buf[start..end]`.
pub(crate) struct Stage {
    pub(crate) buf: Box<[u8]>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// The decoding state of one response body.
pub(crate) struct Decoding {
    /// `None`: the coding is unsupported (`failed` says why).
    decoder: Option<Decoder>,
    /// Decoded bytes not yet handed out: `out[out_start..out_end]`.
    out: Box<[u8]>,
    out_start: usize,
    out_end: usize,
    pub(crate) stage: Stage,
    body_offset: u64,
    wire_offset: u64,
    /// A sticky failure: returned by every read once the pending output is drained.
    failed: Option<(WireErrorKind, String)>,
    /// The body ended cleanly.
    done: bool,
}

impl std::fmt::Debug for Decoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoding")
            .field("pending", &(self.out_end - self.out_start))
            .field("body_offset", &self.body_offset)
            .field("wire_offset", &self.wire_offset)
            .field("failed", &self.failed)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Decoding {
    /// Decoding of `encoding` (not identity); `why` says why it is unsupported.
    pub(crate) fn new(encoding: ContentEncoding, why: Option<String>) -> Decoding {
        let decoder = Decoder::new(encoding);
        let failed = match &decoder {
            Some(_) => None,
            None => Some((
                WireErrorKind::Encoding,
                why.unwrap_or_else(|| format!("cannot decode {encoding}")),
            )),
        };
        Decoding {
            decoder,
            out: vec![0u8; MAX_DECODED_AHEAD].into_boxed_slice(),
            out_start: 0,
            out_end: 0,
            stage: Stage {
                buf: Vec::new().into_boxed_slice(),
                start: 0,
                end: 0,
            },
            body_offset: 0,
            wire_offset: 0,
            failed,
            done: false,
        }
    }

    /// Decoded bytes handed out so far.
    pub(crate) fn body_offset(&self) -> u64 {
        self.body_offset
    }

    /// Raw body bytes consumed by the decoder so far.
    pub(crate) fn wire_offset(&self) -> u64 {
        self.wire_offset
    }

    /// Decoded bytes held, not yet handed out, and the capacity they are held in.
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, usize) {
        (self.out_end - self.out_start, self.out.len())
    }

    /// Reads up to `buf.len()` decoded bytes of `body`. Cancel-safe: the only await is
    /// the raw read ([`Body::fill_raw`]).
    pub(crate) async fn read(
        &mut self,
        body: &mut Body,
        buf: &mut [u8],
    ) -> Result<usize, WireError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.out_start < self.out_end {
                let n = buf.len().min(self.out_end - self.out_start);
                buf[..n].copy_from_slice(&self.out[self.out_start..self.out_start + n]);
                self.out_start += n;
                self.body_offset += n as u64;
                return Ok(n);
            }
            if let Some((kind, detail)) = &self.failed {
                return Err(WireError::new(*kind, detail.clone()));
            }
            if self.done {
                return Ok(0);
            }
            if self.step(body) {
                continue;
            }
            if !body.fill_raw(&mut self.stage).await? {
                self.end_of_body();
            }
        }
    }

    /// One decoding step over the raw bytes available (the output buffer is empty):
    /// whether it made progress. A corrupt stream sets `failed`.
    fn step(&mut self, body: &mut Body) -> bool {
        let Some(decoder) = &mut self.decoder else {
            return false;
        };
        let input = body.raw(&self.stage);
        if decoder.finished {
            // Trailing bytes after the end of the compressed stream: ignored.
            let n = input.len();
            body.consume_raw(&mut self.stage, n);
            self.wire_offset += n as u64;
            return n > 0;
        }
        let had_input = !input.is_empty();
        match decoder.step(input, &mut self.out) {
            Ok((used, made)) => {
                body.consume_raw(&mut self.stage, used);
                self.wire_offset += used as u64;
                self.out_start = 0;
                self.out_end = made;
                if used == 0 && made == 0 && had_input && !decoder.finished {
                    self.failed = Some((
                        WireErrorKind::Encoding,
                        "the decoder made no progress on its input".into(),
                    ));
                    return true;
                }
                used > 0 || made > 0 || decoder.finished
            }
            Err(e) => {
                self.failed = Some((
                    WireErrorKind::Encoding,
                    format!(
                        "{e} (after {} compressed bytes, {} decoded)",
                        self.wire_offset,
                        self.body_offset + self.out_end as u64
                    ),
                ));
                true
            }
        }
    }

    /// The raw body ended (every decodable byte handed out).
    fn end_of_body(&mut self) {
        let finished = self.decoder.as_ref().is_some_and(|d| d.finished);
        if finished || self.wire_offset == 0 {
            self.done = true;
        } else {
            self.failed = Some((
                WireErrorKind::UnexpectedEof,
                format!(
                    "the body ended inside the compressed stream (after {} compressed bytes, {} decoded)",
                    self.wire_offset, self.body_offset
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::Duration;

    use tokio::io::AsyncWriteExt as _;

    use super::*;
    use crate::{RequestSpec, Target};

    /// `len` zero bytes, gzip-compressed (about a thousandth of `len`).
    fn zeros_gzip(len: usize) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let block = vec![0u8; 1 << 20];
        for _ in 0..len / block.len() {
            e.write_all(&block).unwrap();
        }
        e.finish().unwrap()
    }

    /// A gzip bomb (256 MiB of zeros in about 256 KB) is read piecewise and discarded:
    /// the decoded bytes held never exceed [`MAX_DECODED_AHEAD`], in a buffer of that
    /// size allocated once.
    #[tokio::test]
    async fn a_gzip_bomb_is_decoded_within_the_bound() {
        const LEN: usize = 256 << 20;
        let bomb = zeros_gzip(LEN);
        assert!(bomb.len() < 512 * 1024, "{} bytes", bomb.len());
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let wire_len = bomb.len() as u64;
        let writer = tokio::spawn(async move {
            let mut req = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut server, &mut req).await;
            server
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\n\r\n")
                .await
                .unwrap();
            server.write_all(&bomb).await.unwrap();
            server.shutdown().await.unwrap();
        });
        let target = Target {
            host: "bomb.invalid".into(),
            port: 80,
            tls: false,
        };
        let mut resp = crate::open_on(
            client,
            &target,
            &RequestSpec::get("/"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(resp.content_encoding(), ContentEncoding::Gzip);
        let mut buf = vec![0u8; 16 * 1024];
        let mut total = 0usize;
        let mut most_held = 0usize;
        loop {
            let n = resp.read_body(&mut buf).await.unwrap();
            let (held, capacity) = resp.decoded_held();
            assert!(held <= MAX_DECODED_AHEAD);
            assert_eq!(capacity, MAX_DECODED_AHEAD);
            most_held = most_held.max(held);
            if n == 0 {
                break;
            }
            assert_eq!(buf[n - 1], 0);
            total += n;
        }
        assert_eq!(total, LEN);
        assert_eq!(resp.body_offset(), LEN as u64);
        assert_eq!(resp.wire_offset(), wire_len);
        assert!(most_held > 0 && most_held <= MAX_DECODED_AHEAD);
        writer.await.unwrap();
    }

    #[test]
    fn the_zlib_header_check_tells_zlib_from_raw_deflate() {
        assert!(is_zlib_header(0x78, 0x9c));
        assert!(is_zlib_header(0x78, 0x01));
        assert!(is_zlib_header(0x78, 0xda));
        assert!(!is_zlib_header(0x78, 0x9d));
        // A raw deflate stream's first bytes (a final fixed-Huffman block).
        assert!(!is_zlib_header(0xcb, 0x48));
    }

    #[test]
    fn content_codings_parse_from_the_head() {
        let h = |v: &str| vec![("content-encoding".to_owned(), v.to_owned())];
        assert_eq!(
            ContentEncoding::from_headers(&[]).0,
            ContentEncoding::Identity
        );
        assert_eq!(
            ContentEncoding::from_headers(&h("GZIP")).0,
            ContentEncoding::Gzip
        );
        assert_eq!(
            ContentEncoding::from_headers(&h("x-gzip")).0,
            ContentEncoding::Gzip
        );
        assert_eq!(
            ContentEncoding::from_headers(&h("identity, br")).0,
            ContentEncoding::Br
        );
        assert_eq!(
            ContentEncoding::from_headers(&h("deflate")).0,
            ContentEncoding::Deflate
        );
        let (c, why) = ContentEncoding::from_headers(&h("gzip, br"));
        assert_eq!(c, ContentEncoding::Unsupported);
        assert!(why.unwrap().contains("gzip, br"));
        assert_eq!(ContentEncoding::Br.name(), "br");
    }
}
