//! HTTP/2 under the byte-exact client, with the `h2` crate: one stream on a
//! connection of its own, or many streams on one [`H2Connection`], behind the same
//! [`Response`] as HTTP/1.1.
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
    /// The connection task, when the connection is this stream's own.
    task: Option<tokio::task::JoinHandle<()>>,
    cut: H2Cut,
    /// The connection is shared with other streams ([`H2Connection`]): a cut or a
    /// reset ends this stream alone.
    shared: Option<H2Connection>,
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
        let (resp, send) = send(send_req, request, req).await?;
        Ok::<_, WireError>((resp, send, tx, guard))
    })
    .await
    .map_err(|_| head_timed_out(head_timeout))?;
    let (resp, send, tx, mut guard) = started?;
    let (status, reason, headers, recv) = head(resp);
    let body = H2Body {
        closing: Some(tx),
        task: guard.0.take(),
        ..H2Body::new(recv, send, io, opts.h2_cut)
    };
    Ok(Response::h2(status, reason, headers, body, opts.decode))
}

fn head_timed_out(head_timeout: Duration) -> WireError {
    WireError::new(
        WireErrorKind::Timeout,
        format!("no complete HTTP/2 response head within {head_timeout:?}"),
    )
}

/// Sends `request` (and `req`'s body) once the connection can take a stream, and waits
/// for the response head.
async fn send(
    send_req: h2::client::SendRequest<Bytes>,
    request: http::Request<()>,
    req: &RequestSpec,
) -> Result<(http::Response<h2::RecvStream>, h2::SendStream<Bytes>), WireError> {
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
    Ok((resp, send))
}

/// Status, reason phrase, lower-cased headers and the body stream of a response.
fn head(
    resp: http::Response<h2::RecvStream>,
) -> (u16, String, Vec<(String, String)>, h2::RecvStream) {
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
    (parts.status.as_u16(), reason, headers, recv)
}

/// The connection window a shared connection announces (16 MiB, as browsers do): one
/// stopped reader holds back only its own stream's [`STREAM_WINDOW`], never the
/// streams beside it.
pub const SHARED_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// One HTTP/2 connection that many streams share (`Clone` shares it). Its task ends
/// when the last clone and the last stream opened on it are gone. Each stream's cut is
/// `RST_STREAM(CANCEL)` and its reset `RST_STREAM(INTERNAL_ERROR)`: neither touches the
/// connection the other streams ride on.
#[derive(Clone)]
pub struct H2Connection {
    send_req: h2::client::SendRequest<Bytes>,
    io: SharedIo,
    task: Arc<AbortOnDrop>,
    /// [`ConnectOptions::decode`] of the connect, for every stream opened on it.
    decode: bool,
}

impl std::fmt::Debug for H2Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Connection").finish_non_exhaustive()
    }
}

impl H2Connection {
    /// Connects to `target` and speaks HTTP/2 on it (ALPN `h2` over TLS, prior
    /// knowledge over cleartext); an error if a TLS server does not pick `h2`.
    pub async fn connect(
        target: &Target,
        opts: &ConnectOptions,
    ) -> Result<H2Connection, WireError> {
        let (transport, h2) = crate::conn::dial(target, opts, true).await?;
        if !h2 {
            return Err(WireError::new(
                WireErrorKind::Http2,
                format!(
                    "{} did not pick h2 in ALPN: a shared HTTP/2 connection needs it",
                    target.authority()
                ),
            ));
        }
        let io = SharedIo(Arc::new(Mutex::new(transport)));
        let (send_req, conn) = tokio::time::timeout(
            opts.head_timeout,
            h2::client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(SHARED_CONNECTION_WINDOW)
                .enable_push(false)
                .handshake::<_, Bytes>(io.clone()),
        )
        .await
        .map_err(|_| head_timed_out(opts.head_timeout))?
        .map_err(|e| h2_error("HTTP/2 handshake", e))?;
        let task = tokio::spawn({
            let io = io.clone();
            async move {
                let _ = conn.await;
                orderly_close(&mut io.lock());
            }
        });
        Ok(H2Connection {
            send_req,
            io,
            task: Arc::new(AbortOnDrop(Some(task))),
            decode: opts.decode,
        })
    }

    /// Whether the connection still takes new streams.
    pub fn is_open(&self) -> bool {
        let running = self.task.0.as_ref().is_some_and(|t| !t.is_finished());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        running
            && !matches!(
                self.send_req.clone().poll_ready(&mut cx),
                Poll::Ready(Err(_))
            )
    }

    /// Opens `req` as one more stream on this connection: the request, then the
    /// response head within `head_timeout`. The body is decoded as the connect's
    /// [`ConnectOptions::decode`] says.
    pub async fn open(
        &self,
        target: &Target,
        req: &RequestSpec,
        head_timeout: Duration,
    ) -> Result<Response, WireError> {
        let request = request(target, req)?;
        let (resp, send) =
            tokio::time::timeout(head_timeout, send(self.send_req.clone(), request, req))
                .await
                .map_err(|_| head_timed_out(head_timeout))??;
        let (status, reason, headers, recv) = head(resp);
        let body = H2Body {
            shared: Some(self.clone()),
            ..H2Body::new(recv, send, self.io.clone(), H2Cut::RstStream)
        };
        Ok(Response::h2(status, reason, headers, body, self.decode))
    }
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
    /// A body with nothing read yet, no connection task and no shared connection.
    fn new(recv: h2::RecvStream, send: h2::SendStream<Bytes>, io: SharedIo, cut: H2Cut) -> H2Body {
        H2Body {
            recv,
            send,
            pending: Bytes::new(),
            done: false,
            body_offset: 0,
            io,
            closing: None,
            task: None,
            cut,
            shared: None,
        }
    }

    /// Hands out up to `buf.len()` DATA bytes and releases exactly that much window.
    pub(crate) async fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, WireError> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.peek().await? {
            return Ok(0);
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.consume(n);
        Ok(n)
    }

    /// Waits until DATA bytes are pending: `Ok(false)` at the end of the stream.
    /// Cancel-safe (a frame is taken off the stream only when `data` completes).
    pub(crate) async fn peek(&mut self) -> Result<bool, WireError> {
        while self.pending.is_empty() {
            if self.done {
                return Ok(false);
            }
            match self.recv.data().await {
                None => self.done = true,
                Some(Ok(b)) => self.pending = b,
                Some(Err(e)) => return Err(h2_error("reading the response body", e)),
            }
        }
        Ok(true)
    }

    /// The DATA bytes received and not yet consumed.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Consumes `n` pending DATA bytes and releases exactly that much window.
    pub(crate) fn consume(&mut self, n: usize) {
        self.pending.advance(n);
        if n > 0 {
            let _ = self.recv.flow_control().release_capacity(n);
        }
        self.body_offset += n as u64;
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
        if self.shared.is_some() {
            self.send.send_reset(h2::Reason::CANCEL);
            return;
        }
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
    pub(crate) fn reset(mut self) {
        if self.shared.is_some() {
            self.send.send_reset(h2::Reason::INTERNAL_ERROR);
            return;
        }
        {
            let t = self.io.lock();
            if let Some(tcp) = t.tcp() {
                let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
            }
        }
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}
