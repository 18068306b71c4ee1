//! HTTP/2 under the byte-exact client, with the `h2` crate: one stream on a
//! connection of its own, behind the same [`Response`] as HTTP/1.1.
//!
//! - **Body bytes**: [`H2Body::read_body`] hands out the DATA frames' payload, never
//!   more than asked, and counts it as the body offset, so "cut after decoded body byte
//!   k" means the same on both protocols.
//! - **Backpressure**: flow-control window is given back (`release_capacity`) only for
//!   the bytes handed to the caller, so a slow reader closes the server's window and the
//!   server's send capacity stalls — real HTTP/2 backpressure, not a client-side buffer.
//!   The stream's initial window is [`STREAM_WINDOW`] (16 KiB, announced in SETTINGS)
//!   so that a slow reader pushes back after little data, as a small `SO_RCVBUF` does
//!   over HTTP/1.1; the connection window stays at the protocol's 64 KiB.
//! - **Cuts**: [`H2Cut::RstStream`] sends `RST_STREAM(CANCEL)` and then lets the
//!   connection, which carries nothing else, shut down gracefully; [`H2Cut::GoAway`]
//!   closes the whole connection under the stream. A reset is the TCP reset of the
//!   whole connection (`SO_LINGER` 0), no frame sent.
//!
//! The connection is driven by a task of its own; the transport is shared with it
//! behind a mutex (locked only inside a poll, never across an await), so the socket
//! stays reachable for its options, addresses and the final close.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use crate::conn::{
    ConnectOptions, H2Cut, RequestSpec, Response, Target, Transport, WireError, WireErrorKind,
    orderly_close,
};

/// The stream's initial flow-control window the client announces (SETTINGS).
pub const STREAM_WINDOW: u32 = 16 * 1024;

/// How long a stream cut waits for the connection to flush `RST_STREAM` and shut down
/// gracefully before the transport is closed anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The transport shared by the connection task and the response.
#[derive(Clone)]
struct SharedIo(Arc<Mutex<Transport>>);

impl SharedIo {
    fn lock(&self) -> MutexGuard<'_, Transport> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl AsyncRead for SharedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_read(cx, buf)
    }
}

impl AsyncWrite for SharedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_shutdown(cx)
    }
}

/// What the connection task is told when the response goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// The stream was reset: let the connection flush and shut down gracefully.
    Stream,
    /// Close the transport now (`close_notify`, FIN).
    Connection,
}

/// The body of an HTTP/2 response and the connection under it.
pub(crate) struct H2Body {
    recv: h2::RecvStream,
    send: h2::SendStream<Bytes>,
    /// DATA bytes received and not yet handed out (their window not yet released).
    pending: Bytes,
    done: bool,
    body_offset: u64,
    io: SharedIo,
    closing: Option<oneshot::Sender<Closing>>,
    task: tokio::task::JoinHandle<()>,
    cut: H2Cut,
}

impl std::fmt::Debug for H2Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Body")
            .field("pending", &self.pending.len())
            .field("done", &self.done)
            .field("body_offset", &self.body_offset)
            .field("cut", &self.cut)
            .finish()
    }
}

fn h2_error(what: &str, e: h2::Error) -> WireError {
    let kind = match e.get_io() {
        Some(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => WireErrorKind::UnexpectedEof,
        Some(_) => WireErrorKind::Io,
        None => WireErrorKind::Http2,
    };
    WireError::new(kind, format!("{what}: {e}"))
}

/// Drives the connection until it ends or the response goes, then closes the transport.
async fn drive(
    conn: h2::client::Connection<SharedIo, Bytes>,
    io: SharedIo,
    closing: oneshot::Receiver<Closing>,
) {
    tokio::pin!(conn);
    let how = tokio::select! {
        biased;
        c = closing => c.unwrap_or(Closing::Stream),
        _ = &mut conn => Closing::Connection,
    };
    if how == Closing::Stream {
        let _ = tokio::time::timeout(CLOSE_GRACE, &mut conn).await;
    }
    orderly_close(&mut io.lock());
}

/// The HTTP/2 request of `req`: `:authority` from a `Host` header or the target,
/// hop-by-hop fields (`Connection`, `Keep-Alive`, `Transfer-Encoding`, …) left out.
fn request(target: &Target, req: &RequestSpec) -> Result<http::Request<()>, WireError> {
    let bad = |why: String| WireError::new(WireErrorKind::BadRequest, why);
    let authority = req
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map_or_else(|| target.authority(), |(_, v)| v.clone());
    let scheme = if target.tls { "https" } else { "http" };
    let uri = format!("{scheme}://{authority}{}", req.path_and_query);
    let mut b = http::Request::builder()
        .method(req.method.as_str())
        .uri(uri.as_str());
    const HOP: &[&str] = &[
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ];
    for (name, value) in &req.headers {
        if HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        }
        b = b.header(name.as_str(), value.as_str());
    }
    if let Some(body) = &req.body
        && !req
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        b = b.header("content-length", body.len());
    }
    b.body(())
        .map_err(|e| bad(format!("request {} {uri}: {e}", req.method)))
}

/// Opens `req` as the one stream of an HTTP/2 connection over `transport` (the TLS
/// handshake, if any, done): the preface and SETTINGS, the request, the response head,
/// all within `opts.head_timeout`.
pub(crate) async fn open(
    transport: Transport,
    target: &Target,
    req: &RequestSpec,
    opts: &ConnectOptions,
) -> Result<Response, WireError> {
    let request = request(target, req)?;
    let io = SharedIo(Arc::new(Mutex::new(transport)));
    let head_timeout = opts.head_timeout;
    let started = tokio::time::timeout(head_timeout, async {
        let (send_req, conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .enable_push(false)
            .handshake::<_, Bytes>(io.clone())
            .await
            .map_err(|e| h2_error("HTTP/2 handshake", e))?;
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(drive(conn, io.clone(), rx));
        let guard = AbortOnDrop(Some(task));
        let mut send_req = send_req
            .ready()
            .await
            .map_err(|e| h2_error("HTTP/2 connection", e))?;
        let (resp, mut send) = send_req
            .send_request(request, req.body.is_none())
            .map_err(|e| h2_error("sending the request", e))?;
        if let Some(body) = &req.body {
            send.send_data(Bytes::copy_from_slice(body), true)
                .map_err(|e| h2_error("sending the request body", e))?;
        }
        let resp = resp
            .await
            .map_err(|e| h2_error("reading the response head", e))?;
        Ok::<_, WireError>((resp, send, tx, guard))
    })
    .await
    .map_err(|_| {
        WireError::new(
            WireErrorKind::Timeout,
            format!("no complete HTTP/2 response head within {head_timeout:?}"),
        )
    })?;
    let (resp, send, tx, mut guard) = started?;
    let (parts, recv) = resp.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let reason = parts
        .status
        .canonical_reason()
        .unwrap_or_default()
        .to_owned();
    let body = H2Body {
        recv,
        send,
        pending: Bytes::new(),
        done: false,
        body_offset: 0,
        io,
        closing: Some(tx),
        task: guard.0.take().expect("the task is there"),
        cut: opts.h2_cut,
    };
    Ok(Response::h2(parts.status.as_u16(), reason, headers, body))
}

/// Aborts the connection task if opening fails half way.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

impl H2Body {
    /// Hands out up to `buf.len()` DATA bytes and releases exactly that much window.
    pub(crate) async fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, WireError> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pending.is_empty() {
            if self.done {
                return Ok(0);
            }
            // Cancel-safe: a frame is taken off the stream only when `data` completes.
            match self.recv.data().await {
                None => {
                    self.done = true;
                    return Ok(0);
                }
                Some(Ok(b)) => self.pending = b,
                Some(Err(e)) => return Err(h2_error("reading the response body", e)),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.advance(n);
        let _ = self.recv.flow_control().release_capacity(n);
        self.body_offset += n as u64;
        Ok(n)
    }

    /// DATA bytes handed out so far.
    pub(crate) fn body_offset(&self) -> u64 {
        self.body_offset
    }

    /// Runs `f` on the transport (under the lock).
    pub(crate) fn with_transport<R>(&self, f: impl FnOnce(&Transport) -> Option<R>) -> Option<R> {
        f(&self.io.lock())
    }

    /// The orderly end [`H2Cut`] chose.
    pub(crate) fn close(mut self) {
        let how = match self.cut {
            H2Cut::RstStream => {
                self.send.send_reset(h2::Reason::CANCEL);
                Closing::Stream
            }
            H2Cut::GoAway => {
                // Close the transport before the stream's handles go, so the RST_STREAM
                // their drop queues can never reach the wire.
                orderly_close(&mut self.io.lock());
                Closing::Connection
            }
        };
        if let Some(tx) = self.closing.take() {
            let _ = tx.send(how);
        }
    }

    /// The TCP reset of the whole connection: `SO_LINGER` 0, the task stopped, the
    /// socket closed when the last handle goes.
    pub(crate) fn reset(self) {
        {
            let t = self.io.lock();
            if let Some(tcp) = t.tcp() {
                let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
            }
        }
        self.task.abort();
    }
}
