//! [`Fault::CompressedStream`](crate::faults::Fault::CompressedStream): a naive
//! response-compression middleware on the stream routes, the common deployment
//! mistake that buffers SSE. The client's `Accept-Encoding` picks gzip or deflate;
//! each chunk the stream writes goes into a streaming encoder, and the body yields
//! only what the encoder has emitted so far, never flushing it. A deflate encoder
//! emits output only when it closes a block, so frames (events, heartbeats, even
//! `retry:` and `connection_open`) sit in the encoder until tens of KiB of input have
//! gone in or the response ends.
//!
//! The same middleware with `flush` on ([`compress_stream_flushed`]) is
//! [`Variant::GzipFlushed`](crate::variants::Variant::GzipFlushed), what a correct
//! compression layer for SSE does: after every chunk the stream writes, the encoder is
//! sync-flushed (an empty stored block ends its output on a byte boundary), so each
//! frame is decodable as soon as it arrives.
//!
//! Not tower-http's `CompressionLayer`: besides leaving `text/event-stream` alone by
//! default, its encoder (async-compression) flushes whenever the body it compresses is
//! pending, so every SSE frame leaves at once in a sync-flushed block and nothing is
//! held back.

use std::io::Write as _;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use futures_util::StreamExt as _;

/// A streaming encoder writing into a buffer that the body drains.
enum Encoder {
    Gzip(GzEncoder<Vec<u8>>),
    Deflate(ZlibEncoder<Vec<u8>>),
}

impl Encoder {
    /// The encoder for the first coding of `Accept-Encoding` this middleware knows
    /// (gzip, x-gzip, deflate), with its `Content-Encoding`.
    fn pick(headers: &HeaderMap) -> Option<(Encoder, &'static str)> {
        let accept = headers.get(header::ACCEPT_ENCODING)?.to_str().ok()?;
        accept.split(',').find_map(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next()?.trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            if refused {
                return None;
            }
            match name.as_str() {
                "gzip" | "x-gzip" => Some((
                    Encoder::Gzip(GzEncoder::new(Vec::new(), Compression::default())),
                    "gzip",
                )),
                "deflate" => Some((
                    Encoder::Deflate(ZlibEncoder::new(Vec::new(), Compression::default())),
                    "deflate",
                )),
                _ => None,
            }
        })
    }

    /// Feeds `chunk` in and takes whatever the encoder has emitted (often nothing
    /// without `flush`; with it, a sync flush makes everything fed so far decodable).
    fn push(&mut self, chunk: &[u8], flush: bool) -> std::io::Result<Vec<u8>> {
        let out = match self {
            Encoder::Gzip(e) => {
                e.write_all(chunk)?;
                if flush {
                    e.flush()?;
                }
                e.get_mut()
            }
            Encoder::Deflate(e) => {
                e.write_all(chunk)?;
                if flush {
                    e.flush()?;
                }
                e.get_mut()
            }
        };
        Ok(std::mem::take(out))
    }

    /// Ends the compressed data: the rest of it and the trailer.
    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Deflate(e) => e.finish(),
        }
    }
}

/// The middleware of the fault: a successful response to a request that accepts gzip
/// or deflate is compressed as described in the module docs, never flushed; others
/// pass as they are.
pub async fn compress_stream(req: Request, next: Next) -> Response {
    compress(req, next, false).await
}

/// The middleware of the variant: as [`compress_stream`], but the encoder is
/// sync-flushed after every chunk, so no frame is held.
pub async fn compress_stream_flushed(req: Request, next: Next) -> Response {
    compress(req, next, true).await
}

async fn compress(req: Request, next: Next, flush: bool) -> Response {
    let picked = Encoder::pick(req.headers());
    let resp = next.run(req).await;
    let Some((encoder, coding)) = picked else {
        return resp;
    };
    if !resp.status().is_success() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    parts
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    parts
        .headers
        .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    parts.headers.remove(header::CONTENT_LENGTH);
    let state = (body.into_data_stream(), Some(encoder));
    let compressed =
        futures_util::stream::unfold(state, move |(mut inner, mut encoder)| async move {
            let enc = encoder.as_mut()?;
            loop {
                let out = match inner.next().await {
                    Some(Ok(chunk)) => enc.push(&chunk, flush),
                    Some(Err(e)) => return Some((Err(std::io::Error::other(e)), (inner, None))),
                    None => {
                        let rest = encoder.take()?.finish();
                        return Some((rest.map(Bytes::from), (inner, None)));
                    }
                };
                match out {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Some((Ok(Bytes::from(out)), (inner, encoder))),
                    Err(e) => return Some((Err(e), (inner, None))),
                }
            }
        });
    Response::from_parts(parts, Body::from_stream(compressed))
}
