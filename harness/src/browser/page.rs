//! The loopback origin the browser pages come from: one small HTTP/1.1 server per
//! process (its own thread and runtime, so the trials of a test binary, each on a
//! runtime of its own, share it), serving each browser run's page at `/s/<session>/`
//! and taking what the page saw, posted back in order, at `/s/<session>/r`.
//! Every response closes its connection; nothing else is served, except the
//! same-origin relay: `GET /s/<session>/e/<client>` is passed to the target (the
//! client's stream request, with the browser's `Last-Event-ID`), and the target's
//! response bytes are passed back untouched, so the page reads the stream from its
//! own origin and no CORS is involved. A relay ends when either side closes or the
//! session ends.

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

/// How long the relay may take to connect to the target.
const RELAY_CONNECT: Duration = Duration::from_secs(10);

/// Where a same-origin client's stream really is.
#[derive(Clone, Debug)]
pub(crate) struct Relay {
    /// The address to connect to, `host:port` (the target's, or its subscriber proxy's).
    pub connect: String,
    /// The `Host` header: the target's authority.
    pub host: String,
    /// The stream's path and query on the target.
    pub path: String,
}

/// One browser run's page and where its reports go.
struct Session {
    html: Arc<String>,
    frame: Option<Arc<String>>,
    tx: mpsc::UnboundedSender<Vec<Report>>,
    /// The same-origin clients' streams, by client index.
    relays: Arc<HashMap<usize, Relay>>,
    /// Dropped with the session: every relay of it ends then.
    ended: tokio::sync::watch::Sender<()>,
}

/// A request as the page server reads it.
struct Request {
    method: String,
    path: String,
    /// The `Last-Event-ID` header, when sent (a relayed reconnection).
    last_event_id: Option<String>,
    body: Vec<u8>,
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
                        let _ = s.serve(sock).await;
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
        relays: HashMap<usize, Relay>,
    ) -> (SessionGuard, mpsc::UnboundedReceiver<Vec<Report>>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(
            id,
            Session {
                html: Arc::new(html),
                frame: frame.map(Arc::new),
                tx,
                relays: Arc::new(relays),
                ended: tokio::sync::watch::channel(()).0,
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

    /// Answers one request on `sock`, then closes it (a relayed stream when the target
    /// ends it, the browser leaves, or the session ends).
    async fn serve(&self, mut sock: TcpStream) -> std::io::Result<()> {
        let read = tokio::time::timeout(REQUEST_DEADLINE, read_request(&mut sock)).await;
        let Ok(Ok(Some(req))) = read else {
            return respond(&mut sock, "400 Bad Request", "text/plain", b"bad request").await;
        };
        let route = req
            .path
            .strip_prefix("/s/")
            .and_then(|p| p.split_once('/'))
            .and_then(|(id, rest)| Some((id.parse::<u64>().ok()?, rest)));
        let Some((id, rest)) = route else {
            return respond(&mut sock, "404 Not Found", "text/plain", b"not found").await;
        };
        let found = self.lock().get(&id).map(|s| {
            (
                s.html.clone(),
                s.frame.clone(),
                s.tx.clone(),
                s.relays.clone(),
                s.ended.subscribe(),
            )
        });
        let Some((html, frame, tx, relays, ended)) = found else {
            return respond(&mut sock, "404 Not Found", "text/plain", b"no such page").await;
        };
        let page = match (req.method.as_str(), rest) {
            ("GET", "") => Some(html),
            ("GET", "f") => frame,
            _ => None,
        };
        if let Some(html) = page {
            let ctype = "text/html; charset=utf-8";
            return respond(&mut sock, "200 OK", ctype, html.as_bytes()).await;
        }
        let relayed = rest
            .strip_prefix("e/")
            .and_then(|c| c.parse::<usize>().ok())
            .and_then(|c| relays.get(&c));
        match (req.method.as_str(), rest, relayed) {
            ("GET", _, Some(to)) => relay(sock, to, req.last_event_id.as_deref(), ended).await,
            ("POST", "r", _) => match serde_json::from_slice::<Vec<Report>>(&req.body) {
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

/// Passes a same-origin client's stream request to the target (`to`) and the target's
/// response back, byte for byte, until either side closes or the session `ended`. A
/// target that cannot be reached is a `502`, which stops the browser as a refusal
/// would.
async fn relay(
    mut sock: TcpStream,
    to: &Relay,
    last_event_id: Option<&str>,
    mut ended: tokio::sync::watch::Receiver<()>,
) -> std::io::Result<()> {
    let up = tokio::time::timeout(RELAY_CONNECT, TcpStream::connect(&to.connect)).await;
    let Ok(Ok(mut up)) = up else {
        let msg = format!("relay: {} cannot be reached", to.connect);
        return respond(&mut sock, "502 Bad Gateway", "text/plain", msg.as_bytes()).await;
    };
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n",
        to.path, to.host
    );
    if let Some(id) = last_event_id {
        head.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    head.push_str("\r\n");
    up.write_all(head.as_bytes()).await?;
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut sock, &mut up) => r.map(|_| ()),
        _ = ended.changed() => Ok(()),
    }
}

/// Reads one request: method, path, `Last-Event-ID` and body (by `Content-Length`);
/// None when it is not HTTP/1.1 or too large.
async fn read_request(sock: &mut TcpStream) -> std::io::Result<Option<Request>> {
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
        let last_event_id = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("last-event-id"))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::to_owned);
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
        return Ok(Some(Request {
            method,
            path,
            last_event_id,
            body,
        }));
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
