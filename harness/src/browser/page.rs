//! The loopback origin the browser pages come from: one small HTTP/1.1 server per
//! process (its own thread and runtime, so the trials of a test binary, each on a
//! runtime of its own, share it), serving each browser run's page at `/s/<session>/`
//! and taking what the page saw, posted back in order, at `/s/<session>/r`.
//! Every response closes its connection; nothing else is served.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The most a request head or a report body may take, in bytes (a report batch carries
/// event data, which the harness's writes keep far below this).
const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// How long one request may take to arrive whole.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// What the page reports, one record per thing an `EventSource` did.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Report {
    /// Which page: 0 the main one, 1 its frame on another origin.
    #[serde(default)]
    pub p: u8,
    /// The page's running count of records (they are posted in this order).
    pub n: u64,
    /// `performance.timeOrigin + performance.now()`: ms since the Unix epoch.
    pub t: f64,
    /// The client's index in the run.
    pub c: usize,
    /// What happened.
    pub k: ReportKind,
    /// The event's type (events).
    #[serde(default)]
    pub e: Option<String>,
    /// The event's `lastEventId` (events).
    #[serde(default)]
    pub id: Option<String>,
    /// The event's data (events).
    #[serde(default)]
    pub d: Option<String>,
    /// The `EventSource`'s `readyState` after the record (0 connecting, 1 open, 2 closed).
    #[serde(default)]
    pub s: Option<u8>,
}

/// What one record is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReportKind {
    /// The page created every `EventSource` (the first record).
    Ready,
    /// `open`: a response head with status 200 and `text/event-stream` arrived.
    Open,
    /// A dispatched event (a `MessageEvent`: `message`, or a named listener).
    Event,
    /// `error` (a plain `Event`): the connection failed or ended; `s` says whether the
    /// browser reconnects (0) or gave up for good (2).
    Error,
}

/// One browser run's page and where its reports go.
struct Session {
    html: Arc<String>,
    frame: Option<Arc<String>>,
    tx: mpsc::UnboundedSender<Vec<Report>>,
}

/// The page server.
pub(crate) struct PageServer {
    /// `http://127.0.0.1:<port>`.
    pub origin: String,
    sessions: Mutex<HashMap<u64, Session>>,
    next: AtomicU64,
}

/// A registered session: unregistered when dropped.
pub(crate) struct SessionGuard {
    server: Arc<PageServer>,
    id: u64,
    /// The page's URL.
    pub url: String,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.server.lock().remove(&self.id);
    }
}

/// The process's page server, once started (or why it could not start).
static SERVER: OnceLock<Result<Arc<PageServer>, String>> = OnceLock::new();

/// The process's page server, started on first use on `127.0.0.1:<port>` (0: any free
/// port). A later call that asks for another fixed port gets an error.
pub(crate) fn server(port: u16) -> Result<Arc<PageServer>, String> {
    let got = SERVER.get_or_init(|| start(port)).clone()?;
    if port != 0 && !got.origin.ends_with(&format!(":{port}")) {
        return Err(format!(
            "the browser page origin is already {} in this process; {port} was asked for",
            got.origin
        ));
    }
    Ok(got)
}

/// Binds `127.0.0.1:<port>` and serves it from a thread of its own for the rest of the
/// process.
fn start(port: u16) -> Result<Arc<PageServer>, String> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| format!("browser page server on 127.0.0.1:{port}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("browser page server: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("browser page server: {e}"))?;
    let server = Arc::new(PageServer {
        origin: format!("http://{addr}"),
        sessions: Mutex::new(HashMap::new()),
        next: AtomicU64::new(1),
    });
    let serving = server.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("browser page server runtime: {e}"))?;
    // Lives as long as the process: the listener is the process's one page origin.
    std::thread::Builder::new()
        .name("browser-page".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((sock, _)) = listener.accept().await {
                    let s = serving.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(REQUEST_DEADLINE, s.serve(sock)).await;
                    });
                }
            })
        })
        .map_err(|e| format!("browser page server thread: {e}"))?;
    Ok(server)
}

impl PageServer {
    /// The sessions (a poisoned lock is still usable: the map stays consistent).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a page; its reports arrive on the receiver, in the page's order.
    pub(crate) fn register(
        self: &Arc<Self>,
        html: String,
        frame: Option<String>,
    ) -> (SessionGuard, mpsc::UnboundedReceiver<Vec<Report>>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(
            id,
            Session {
                html: Arc::new(html),
                frame: frame.map(Arc::new),
                tx,
            },
        );
        let url = format!("{}/s/{id}/", self.origin);
        (
            SessionGuard {
                server: self.clone(),
                id,
                url,
            },
            rx,
        )
    }

    /// Answers one request on `sock`, then closes it.
    async fn serve(&self, mut sock: TcpStream) -> std::io::Result<()> {
        let Some((method, path, body)) = read_request(&mut sock).await? else {
            return respond(&mut sock, "400 Bad Request", "text/plain", b"bad request").await;
        };
        let route = path
            .strip_prefix("/s/")
            .and_then(|p| p.split_once('/'))
            .and_then(|(id, rest)| Some((id.parse::<u64>().ok()?, rest)));
        let Some((id, rest)) = route else {
            return respond(&mut sock, "404 Not Found", "text/plain", b"not found").await;
        };
        let found = self
            .lock()
            .get(&id)
            .map(|s| (s.html.clone(), s.frame.clone(), s.tx.clone()));
        let Some((html, frame, tx)) = found else {
            return respond(&mut sock, "404 Not Found", "text/plain", b"no such page").await;
        };
        let page = match (method.as_str(), rest) {
            ("GET", "") => Some(html),
            ("GET", "f") => frame,
            _ => None,
        };
        if let Some(html) = page {
            let ctype = "text/html; charset=utf-8";
            return respond(&mut sock, "200 OK", ctype, html.as_bytes()).await;
        }
        match (method.as_str(), rest) {
            ("POST", "r") => match serde_json::from_slice::<Vec<Report>>(&body) {
                Ok(reports) => {
                    let _ = tx.send(reports);
                    respond(&mut sock, "204 No Content", "text/plain", b"").await
                }
                Err(e) => {
                    let msg = format!("bad report: {e}");
                    respond(&mut sock, "400 Bad Request", "text/plain", msg.as_bytes()).await
                }
            },
            _ => respond(&mut sock, "404 Not Found", "text/plain", b"not found").await,
        }
    }
}

/// Reads one request: method, path and body (by `Content-Length`); None when it is
/// not HTTP/1.1 or too large.
async fn read_request(sock: &mut TcpStream) -> std::io::Result<Option<(String, String, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST => continue,
            _ => return Ok(None),
        };
        let length = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| {
                std::str::from_utf8(h.value)
                    .ok()?
                    .trim()
                    .parse::<usize>()
                    .ok()
            })
            .unwrap_or(0);
        if length > MAX_REQUEST {
            return Ok(None);
        }
        let (method, path) = (
            req.method.unwrap_or("").to_owned(),
            req.path.unwrap_or("").to_owned(),
        );
        let mut body = buf.split_off(head_len);
        while body.len() < length {
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(length);
        return Ok(Some((method, path, body)));
    }
}

/// Writes one whole response and closes the connection.
async fn respond(
    sock: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body).await?;
    sock.shutdown().await
}
