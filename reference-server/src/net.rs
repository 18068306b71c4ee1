//! The accept loop and what guards it against hostile or stuck clients: a cap on open
//! connections (refused at once above it, counted), hyper's request-head timeout (which
//! also bounds how long a keep-alive connection may sit idle), a request-body read
//! timeout, `SO_KEEPALIVE` on every connection, a write-stall timeout (a peer that
//! stops reading is cut as a slow consumer), back-off when `accept` fails (`EMFILE`),
//! and a shutdown that cuts the connections that do not drain within a grace period.
//!
//! [`StallIo`] is written here because neither hyper nor tower has a write-progress
//! timeout: hyper only stops pulling the body when the socket is full, and a body that
//! is not polled cannot time itself out.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::metrics::Metrics;

/// hyper's read buffer limit per connection: its minimum. An idle SSE connection
/// keeps its read buffer for its whole life, and with hyper's default limit the
/// buffer grows to 16 KiB on the first read after the request head (heaptrack, see
/// BENCHMARKS.md); request bodies are streamed through it, so larger publish bodies
/// are not affected, and a request head stays limited to 8 KiB.
const HTTP1_MAX_BUF: usize = 8192;
/// How long the accept loop pauses after `accept` fails (out of file descriptors and
/// the like), so that a listener that stays readable never makes it spin.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// TCP keep-alive: first probe after this much silence ...
const KEEPALIVE_TIME: Duration = Duration::from_secs(60);
/// ... then one every this often.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// The answer to a connection above [`Limits::max_connections`], written without
/// waiting (it fits any fresh socket's send buffer) just before the socket is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 75\r\n\r\n\
{\"error\":\"too_many_connections\",\"detail\":\"the connection limit is reached\"}";

/// The bounds on what one client can hold or make the server wait for. Every one is
/// configurable so that tests can use small values.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest wait for a complete request head, and so also the longest a keep-alive
    /// connection may stay idle between requests (default 20 s).
    pub header_read_timeout: Duration,
    /// Longest wait for the next piece of a request body (default 30 s): `408`.
    pub body_read_timeout: Duration,
    /// Most open connections; above it a connection gets `503` and is closed at once
    /// (default 10,000).
    pub max_connections: usize,
    /// Longest a response write may make no progress before the connection is cut as
    /// a slow consumer (default 60 s, far above the harness's slowest readers).
    pub write_stall_timeout: Duration,
    /// How long a graceful stop waits for connections to finish before cutting them
    /// (default 5 s).
    pub shutdown_grace: Duration,
    /// Caps on version notifications queued across request ids.
    pub versions: crate::version::VersionCaps,
    /// Most jobs running at once: `429 too_many_jobs` above it (default 1,000).
    pub max_running_jobs: usize,
    /// Most artifact bytes that the running jobs may still write, together:
    /// `429 too_many_jobs` above it (default 4 GiB).
    pub max_pending_artifact_bytes: u64,
    /// Most request-body bytes in flight across all requests, counted from each
    /// request's `Content-Length` (a body without one counts as the largest allowed):
    /// `429 busy` above it (default 256 MiB).
    pub max_inflight_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(20),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            write_stall_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            versions: crate::version::VersionCaps::default(),
            max_running_jobs: 1_000,
            max_pending_artifact_bytes: 4 << 30,
            max_inflight_body_bytes: 256 << 20,
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit now in
/// force. Each connection is a descriptor, and the usual soft default (1024) is far
/// below what the connection cap allows.
pub fn raise_fd_limit() -> io::Result<u64> {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    // An unlimited hard limit cannot be the soft one for descriptors (Linux caps it
    // at fs.nr_open); ask for a large finite number instead.
    let want = if hard == RLIM_INFINITY { 1 << 20 } else { hard };
    if soft >= want {
        return Ok(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, want, hard) {
        Ok(()) => Ok(want),
        Err(e) => {
            tracing::warn!(error = %e, soft, "could not raise the file descriptor limit");
            Ok(soft)
        }
    }
}

/// Sets `TCP_NODELAY` and `SO_KEEPALIVE` (first probe after 60 s of silence), so
/// that a peer that vanished without a FIN is noticed even on an idle stream.
pub fn tune_socket(sock: &TcpStream) -> io::Result<()> {
    sock.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_TIME)
        .with_interval(KEEPALIVE_INTERVAL);
    socket2::SockRef::from(sock).set_tcp_keepalive(&keepalive)
}

/// A TCP stream whose writes fail with `TimedOut` once they have made no progress for
/// `limit`: hyper then drops the connection, and the stream behind it ends.
struct StallIo {
    inner: TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    metrics: Arc<Metrics>,
}

impl StallIo {
    fn progress<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if sleep.as_mut().poll(cx).is_ready() {
                    self.stalled = None;
                    self.metrics
                        .slow_consumer_closes
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!("a write made no progress for {limit:?}: slow consumer cut");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "slow consumer: the peer stopped reading",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncRead for StallIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Counts one open connection until dropped.
struct OpenConnection(Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Refuses a connection above the cap: a `503` written without waiting, then close.
fn refuse(sock: TcpStream, metrics: &Metrics) {
    metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
    let _ = sock.try_write(REFUSAL);
}

/// Accepts connections and serves `router` on each over HTTP/1.1 until `stop`
/// completes, then lets every connection finish for [`Limits::shutdown_grace`]
/// (streams end on the same signal) and cuts those still open.
///
/// The address of the client a request came from (a request extension every handler
/// may read; fault [`crate::faults::Fault::ForkByPeer`] does).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::IpAddr);

/// Our own accept loop rather than `axum::serve` for the guards above and two
/// per-connection savings measured on idle streams: the router is served as one
/// shared service (`axum::serve` on a `Router` re-builds its route tables per
/// connection, ≈ 7 KiB), and hyper's read buffer is capped at [`HTTP1_MAX_BUF`].
pub(crate) async fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(HTTP1_MAX_BUF)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let svc = hyper_util::service::TowerToHyperService::new(
        tower_http::timeout::RequestBodyTimeout::new(router, limits.body_read_timeout),
    );
    let mut conns = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        while conns.try_join_next().is_some() {}
        let (sock, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    metrics.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let open = metrics.open_connections.fetch_add(1, Ordering::Relaxed);
        let guard = OpenConnection(metrics.clone());
        if open >= limits.max_connections as i64 {
            drop(guard);
            refuse(sock, &metrics);
            continue;
        }
        if let Err(e) = tune_socket(&sock) {
            tracing::debug!(error = %e, "socket options not set");
        }
        let io = StallIo {
            inner: sock,
            limit: limits.write_stall_timeout,
            stalled: None,
            metrics: metrics.clone(),
        };
        let svc = svc.clone();
        let with_peer = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut().insert(Peer(peer.ip()));
            hyper::service::Service::call(&svc, req)
        });
        let conn =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(io), with_peer));
        conns.spawn(async move {
            let _guard = guard;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            left = conns.len(),
            "connections did not finish within the grace period; cutting them"
        );
    }
    conns.shutdown().await;
    Ok(())
}

/// The budget of request-body bytes in flight, in KiB permits.
#[derive(Debug, Clone)]
pub(crate) struct BodyBudget(Arc<tokio::sync::Semaphore>);

impl BodyBudget {
    /// A budget of `bytes`.
    pub(crate) fn new(bytes: usize) -> BodyBudget {
        BodyBudget(Arc::new(tokio::sync::Semaphore::new(kib(bytes).max(1))))
    }
}

fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

/// Middleware: a request with a body holds its size of the in-flight budget until it
/// is answered; `429 busy` when the budget is spent.
pub(crate) async fn body_budget(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::header;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let bytes = match (declared, chunked) {
        (_, true) => crate::MAX_BODY_BYTES,
        (Some(n), false) => n.min(crate::MAX_BODY_BYTES),
        (None, false) => 0,
    };
    if bytes == 0 {
        return next.run(req).await;
    }
    let permits = u32::try_from(kib(bytes)).unwrap_or(u32::MAX);
    match state.body_budget.0.clone().try_acquire_many_owned(permits) {
        Ok(_held) => next.run(req).await,
        Err(_) => axum::response::IntoResponse::into_response(crate::error::ApiError::new(
            crate::error::ErrorCode::Busy,
            "too many request bytes in flight; retry later",
        )),
    }
}
