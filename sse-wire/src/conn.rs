//! A minimal HTTP/1.1 client connection with byte-exact control of the body.
//!
//! Written here rather than using hyper or reqwest because chaos testing needs
//! what those hide: close exactly after decoded body byte k, read at a chosen
//! pace so that the socket (not a client-side buffer) applies backpressure,
//! set `SO_RCVBUF` before connecting, and choose between an orderly close
//! (FIN) and an abortive one (RST). The head is parsed with `httparse`; the
//! chunked decoder is ours (see `chunked`). The URL parser is ours too: it
//! only splits an absolute `http`/`https` URL and passes the path and query
//! through byte for byte, where the `url` crate would normalise them.
//!
//! A `Content-Encoding` (gzip, deflate, br) is decoded under [`Response::read_body`]
//! (see `coding`; [`ConnectOptions::decode`] turns it off): cuts count decoded bytes,
//! [`Response::wire_offset`] the raw ones.
//!
//! TLS (`https`) runs over rustls with the configuration in
//! [`ConnectOptions::tls`] (see [`crate::tls`] for the roots and for what cuts, resets
//! and slow reads mean over TLS); the TCP socket under it stays reachable, so
//! `SO_RCVBUF`, `SO_LINGER` and the addresses work the same on both.
//!
//! Backpressure: close-delimited and content-length bodies are read from the
//! socket at most as many bytes as the caller asked for; chunked bodies at
//! most that plus a little framing slack. Only bytes read together with the
//! response head can be buffered ahead (up to one head read, 4 KiB).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::BufMut as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::tls::TlsConfig;

use crate::chunked::{ChunkError, ChunkedDecoder};
use crate::coding::{ContentEncoding, Decoding, RAW_STAGE, Stage};

/// Largest response head accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields accepted in a response head.
pub const MAX_HEADERS: usize = 128;
/// Largest socket read done at once (a drain reads this much per system call; a
/// reader asking for less gets a read-ahead buffer of its size, see `H1Body::fill`).
const READ_CAP: usize = 64 * 1024;
/// Socket read size while reading the head.
const HEAD_READ: usize = 4 * 1024;
/// Framing slack added to chunked reads.
const CHUNK_SLACK: usize = 32;

/// What went wrong on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireErrorKind {
    /// The TCP connection could not be made (refused, unreachable, no address).
    Connect,
    /// A connect or head deadline passed.
    Timeout,
    /// An I/O error on an established connection (e.g. reset by peer).
    Io,
    /// The peer closed the connection before the head or body was complete.
    UnexpectedEof,
    /// The response head is malformed.
    BadHead,
    /// The chunked body framing is malformed or exceeds a limit.
    BadChunk,
    /// A head or body exceeded a size limit.
    TooLarge,
    /// The TLS configuration could not be built, or the handshake failed (unknown CA,
    /// a certificate for another name, no common protocol).
    Tls,
    /// The URL is not an absolute `http`/`https` URL we can use.
    Url,
    /// The request to send is malformed (e.g. a header with CR or LF).
    BadRequest,
    /// An HTTP/2 failure: the connection preface or settings exchange failed, the
    /// server reset the stream or ended the connection with an error (GOAWAY).
    Http2,
    /// The source address ([`ConnectOptions::source`]) cannot be bound: it is not an
    /// address of this machine (`EADDRNOTAVAIL`), or of another family than the target.
    SourceAddress,
    /// No free local port: the connect failed with `EADDRNOTAVAIL`, the ephemeral ports
    /// (`net.ipv4.ip_local_port_range`, about 28,000 by default) from this source address
    /// towards this target address and port are all in use. More source addresses
    /// ([`ConnectOptions::source`]) give more ports.
    NoLocalPort,
    /// No file descriptor for the socket: the process (`EMFILE`, its `RLIMIT_NOFILE`)
    /// or the system (`ENFILE`, `fs.file-max`) has none left.
    NoDescriptor,
    /// The body's `Content-Encoding` cannot be decoded: a coding this client does not
    /// support (the detail names it) or corrupt compressed data (the decoder's message).
    Encoding,
}

impl WireErrorKind {
    /// The stable kebab-case name used in reports.
    pub fn name(&self) -> &'static str {
        match self {
            WireErrorKind::Connect => "connect",
            WireErrorKind::Timeout => "timeout",
            WireErrorKind::Io => "io",
            WireErrorKind::UnexpectedEof => "unexpected-eof",
            WireErrorKind::BadHead => "bad-head",
            WireErrorKind::BadChunk => "bad-chunk",
            WireErrorKind::TooLarge => "too-large",
            WireErrorKind::Tls => "tls",
            WireErrorKind::Url => "url",
            WireErrorKind::BadRequest => "bad-request",
            WireErrorKind::Http2 => "http2",
            WireErrorKind::Encoding => "encoding",
            WireErrorKind::SourceAddress => "source-address",
            WireErrorKind::NoLocalPort => "no-local-port",
            WireErrorKind::NoDescriptor => "no-descriptor",
        }
    }
}

impl std::fmt::Display for WireErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An error of the wire client.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct WireError {
    /// What kind of failure.
    pub kind: WireErrorKind,
    /// Human-readable detail.
    pub detail: String,
    /// The underlying I/O error, if any.
    #[source]
    pub source: Option<std::io::Error>,
}

impl WireError {
    pub(crate) fn new(kind: WireErrorKind, detail: impl Into<String>) -> Self {
        WireError {
            kind,
            detail: detail.into(),
            source: None,
        }
    }

    pub(crate) fn io(kind: WireErrorKind, what: &str, e: std::io::Error) -> Self {
        WireError {
            kind,
            detail: format!("{what}: {e}"),
            source: Some(e),
        }
    }
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether the URL scheme was `https`.
    pub tls: bool,
}

impl Target {
    /// The `Host` header value: the host (IPv6 bracketed) and the port when
    /// it is not the scheme's default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Splits an absolute `http`/`https` URL into its target and its
/// path-and-query (sent verbatim; `/` when empty; the fragment dropped).
pub fn parse_url(url: &str) -> Result<(Target, String), WireError> {
    let bad = |why: &str| WireError::new(WireErrorKind::Url, format!("{url:?}: {why}"));
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(bad("contains whitespace or control characters"));
    }
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => return Err(bad("scheme is not http or https")),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(auth_end);
    if authority.contains('@') {
        return Err(bad("user info is not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port = match port {
        None | Some("") => {
            if tls {
                443
            } else {
                80
            }
        }
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(bad("port is not a number in 1..=65535")),
            Ok(p) => p,
        },
    };
    let path = if path.is_empty() {
        "/".to_owned()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Ok((
        Target {
            host: host.to_owned(),
            port,
            tls,
        },
        path,
    ))
}

/// A target URL with its base path: where both the streams and the plain HTTP
/// requests go. Every request path (a profile's `/v1/events?job_id={job}`, `/sub/{channel}`)
/// resolves under the base path, so `http://host/prefix` subscribes at
/// `/prefix/sub/…` exactly as it publishes at `/prefix/pub/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// Where to connect.
    pub target: Target,
    /// The path prefix, without a trailing slash (`""` at the root).
    pub base_path: String,
}

impl BaseUrl {
    /// Parses an absolute `http`/`https` URL; a query or fragment is refused (there
    /// is no one way to merge it with the requests' own).
    pub fn parse(url: &str) -> Result<BaseUrl, WireError> {
        let (target, path) = parse_url(url)?;
        if path.contains('?') || url.contains('#') {
            return Err(WireError::new(
                WireErrorKind::Url,
                format!("{url:?}: a target URL takes no query or fragment"),
            ));
        }
        Ok(BaseUrl {
            target,
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The request target for `path` (starting with `/`, or empty for the base):
    /// the base path, then `path` verbatim.
    pub fn path(&self, path: &str) -> String {
        let joined = if path.is_empty() || path.starts_with('/') {
            format!("{}{path}", self.base_path)
        } else {
            format!("{}/{path}", self.base_path)
        };
        if joined.is_empty() || joined.starts_with('?') {
            format!("/{joined}")
        } else {
            joined
        }
    }

    /// The absolute URL of `path` under the base (for clients that take URLs).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.target.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.target.authority(), self.path(path))
    }
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.target.tls { "https" } else { "http" };
        write!(
            f,
            "{scheme}://{}{}",
            self.target.authority(),
            self.base_path
        )
    }
}

/// The request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target, e.g. `/v1/events?job_id=x`.
    pub path_and_query: String,
    /// Extra header fields, sent in this order. `Host` and
    /// `Connection: close` are added unless given here; `Content-Length`
    /// is added for a body unless given.
    pub headers: Vec<(String, String)>,
    /// The request body, if any.
    pub body: Option<Vec<u8>>,
}

impl RequestSpec {
    /// A `GET` of `path_and_query` without extra headers.
    pub fn get(path_and_query: impl Into<String>) -> Self {
        RequestSpec {
            method: "GET".to_owned(),
            path_and_query: path_and_query.into(),
            headers: Vec::new(),
            body: None,
        }
    }
}

/// Socket, TLS and deadline options of [`open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// The TLS configuration for `https` targets; `None`: the system's roots
    /// (built once per process).
    pub tls: Option<TlsConfig>,
    /// `SO_RCVBUF` to set before connecting (Linux doubles the value).
    pub rcvbuf: Option<usize>,
    /// Deadline for resolving and connecting.
    pub connect_timeout: Duration,
    /// Deadline for writing the request and reading the response head.
    pub head_timeout: Duration,
    /// Which HTTP version to speak.
    pub http: HttpVersion,
    /// What [`Response::close`] does to an HTTP/2 stream.
    pub h2_cut: H2Cut,
    /// Whether [`Response::read_body`] decodes the body's `Content-Encoding` (gzip,
    /// deflate, br; see [`ContentEncoding`]). `false`: the body bytes as they came off
    /// the wire (de-chunked / the DATA payload, still compressed), for callers who want
    /// the wire bytes. Default `true`.
    pub decode: bool,
    /// Connect the TCP socket to this address instead of resolving the target's host
    /// (a relay such as a toxic proxy in front of the target); TLS (SNI, certificate
    /// check) and the `Host`/`:authority` still name the target. Default `None`.
    pub connect_to: Option<SocketAddr>,
    /// The local address to connect from, bound before connecting with
    /// `IP_BIND_ADDRESS_NO_PORT` so the kernel still picks the port at connect time
    /// (per source, target address and port: each source address has its own
    /// ephemeral ports towards a target). `None` (default): the kernel's choice.
    pub source: Option<IpAddr>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            tls: None,
            rcvbuf: None,
            connect_timeout: Duration::from_secs(10),
            head_timeout: Duration::from_secs(15),
            http: HttpVersion::Http1,
            h2_cut: H2Cut::RstStream,
            decode: true,
            connect_to: None,
            source: None,
        }
    }
}

/// The HTTP version a connection asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    /// HTTP/1.1 only (over TLS, ALPN offers `http/1.1` alone).
    #[default]
    Http1,
    /// HTTP/2: over TLS, ALPN offers `h2` then `http/1.1`, and the connection falls
    /// back to HTTP/1.1 when the server does not pick `h2`
    /// ([`Response::protocol`] says what was negotiated); over cleartext, HTTP/2 with
    /// prior knowledge (the connection preface at once, no upgrade).
    Http2,
}

/// The protocol a response actually came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1.
    Http11,
    /// HTTP/2.
    H2,
}

impl Protocol {
    /// The ALPN name: `http/1.1` or `h2`.
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Http11 => "http/1.1",
            Protocol::H2 => "h2",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How an orderly close ([`Response::close`]) ends an HTTP/2 stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum H2Cut {
    /// `RST_STREAM(CANCEL)` for the stream alone; the connection, which carries
    /// nothing else, is then shut down gracefully (GOAWAY(NO_ERROR), `close_notify`, FIN).
    #[default]
    RstStream,
    /// The whole connection closes under the open stream, with no `RST_STREAM` for
    /// it: `close_notify` over TLS, then FIN. (The `h2` crate's client cannot send a
    /// GOAWAY frame of its own while a stream is open, so the server learns of the end
    /// from the transport, as from a GOAWAY followed by the close.)
    GoAway,
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length` (or a status/method without a body: 0).
    Length(u64),
    /// Ends when the server closes the connection.
    CloseDelimited,
    /// HTTP/2 DATA frames; ends with `END_STREAM`.
    Http2Frames,
}

/// Any byte stream a response can be read from (e.g. an in-memory duplex in tests
/// and fuzz targets); see [`open_on`].
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// The byte stream under the HTTP layer: plain TCP, TLS over TCP (the socket still
/// reachable for its options), or any other stream.
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Other(Box<dyn Io>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Plain(s) => f.debug_tuple("Plain").field(s).finish(),
            Transport::Tls(s) => f.debug_tuple("Tls").field(s.get_ref().0).finish(),
            Transport::Other(_) => f.write_str("Other"),
        }
    }
}

impl tokio::io::AsyncRead for Transport {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::pin::Pin;
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Other(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Transport {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::pin::Pin;
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Other(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::pin::Pin;
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s).poll_flush(cx),
            Transport::Other(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::pin::Pin;
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Other(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl Transport {
    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Transport::Plain(s) => Some(s),
            Transport::Tls(s) => Some(s.get_ref().0),
            Transport::Other(_) => None,
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf).await,
            Transport::Tls(s) => s.read(buf).await,
            Transport::Other(s) => s.read(buf).await,
        }
    }

    /// Appends what one read gets to `buf` (cancel-safe: nothing is appended unless
    /// the read completes).
    async fn read_buf<B: bytes::BufMut>(&mut self, buf: &mut B) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read_buf(buf).await,
            Transport::Tls(s) => s.read_buf(buf).await,
            Transport::Other(s) => s.read_buf(buf).await,
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Transport::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Transport::Other(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
        }
    }

    /// Queues a TLS `close_notify` and writes it without waiting (best effort: the
    /// socket is about to be shut down anyway).
    fn send_close_notify(&mut self) {
        let Transport::Tls(s) = self else {
            return;
        };
        let (tcp, conn) = s.get_mut();
        conn.send_close_notify();
        let mut out = TryWriter(tcp);
        while conn.wants_write() {
            if conn.write_tls(&mut out).is_err() {
                break;
            }
        }
    }
}

/// Writes to a TCP socket without waiting (`try_write`), for the last TLS record.
struct TryWriter<'a>(&'a TcpStream);

impl std::io::Write for TryWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
enum BodyState {
    Close,
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
}

/// An open response: its head, and its body to be read — over HTTP/1.1 or HTTP/2,
/// the same to callers ([`Response::protocol`] says which).
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase (HTTP/2 has none: the status's canonical reason, if any).
    pub reason: String,
    /// Header fields in order, names lowercased.
    pub headers: Vec<(String, String)>,
    body: Body,
    content_encoding: ContentEncoding,
    /// The content decoding, unless the coding is identity or decoding is off.
    decoding: Option<Box<Decoding>>,
}

/// The body of a [`Response`], by protocol.
#[derive(Debug)]
pub(crate) enum Body {
    H1(H1Body),
    H2(Box<crate::h2conn::H2Body>),
}

/// An HTTP/1.1 body: the connection and the bytes read ahead.
#[derive(Debug)]
pub(crate) struct H1Body {
    transport: Transport,
    /// Raw bytes read from the socket and not yet decoded: `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    framing: BodyFraming,
    body: BodyState,
    body_offset: u64,
}

/// Connects (TCP_NODELAY, optional `SO_RCVBUF`), sends `req` and reads the response
/// head. HTTP/1.1: at most [`MAX_HEAD_BYTES`] of head; interim 1xx responses other
/// than 101 are skipped. HTTP/2 ([`ConnectOptions::http`]): over TLS when ALPN picks
/// `h2`, over cleartext with prior knowledge; one stream on a connection of its own.
pub async fn open(
    target: &Target,
    req: &RequestSpec,
    opts: &ConnectOptions,
) -> Result<Response, WireError> {
    let request = encode_request(target, req)?;
    let (transport, h2) = dial(target, opts, opts.http == HttpVersion::Http2).await?;
    if h2 {
        return crate::h2conn::open(transport, target, req, opts).await;
    }
    exchange(transport, request, req, opts.head_timeout, opts.decode).await
}

/// Connects within `opts.connect_timeout` (TCP, then TLS for an `https` target, ALPN
/// offering `h2` when `want_h2`): the transport, and whether it speaks HTTP/2 (ALPN
/// picked `h2`, or prior knowledge over cleartext).
pub(crate) async fn dial(
    target: &Target,
    opts: &ConnectOptions,
    want_h2: bool,
) -> Result<(Transport, bool), WireError> {
    let transport = tokio::time::timeout(opts.connect_timeout, async {
        let tcp = match opts.connect_to {
            Some(addr) => connect_addr(addr, opts.rcvbuf, opts.source).await?,
            None => connect(target, opts.rcvbuf, opts.source).await?,
        };
        if !target.tls {
            return Ok(Transport::Plain(tcp));
        }
        let config = match &opts.tls {
            Some(c) => c.clone(),
            None => default_tls()?,
        };
        let config = if want_h2 { offer_h2(&config) } else { config };
        handshake(target, tcp, config).await
    })
    .await
    .map_err(|_| {
        WireError::new(
            WireErrorKind::Timeout,
            format!(
                "connecting to {} took longer than {:?}",
                target.authority(),
                opts.connect_timeout
            ),
        )
    })??;
    let h2 = match &transport {
        Transport::Tls(s) => s.get_ref().1.alpn_protocol() == Some(b"h2".as_slice()),
        _ => want_h2,
    };
    Ok((transport, h2))
}

/// `config` with ALPN offering `h2` first, then `http/1.1`.
fn offer_h2(config: &TlsConfig) -> TlsConfig {
    let mut c = (*config.0).clone();
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsConfig(std::sync::Arc::new(c))
}

impl Response {
    /// A response over HTTP/2 (for [`crate::h2conn`]).
    pub(crate) fn h2(
        status: u16,
        reason: String,
        headers: Vec<(String, String)>,
        body: crate::h2conn::H2Body,
        decode: bool,
    ) -> Response {
        Response::new(status, reason, headers, Body::H2(Box::new(body)), decode)
    }

    /// A response with its content coding read from the head and, when `decode` and
    /// the coding is not identity, its decoding set up (not for a body that is empty
    /// by its framing, e.g. a `HEAD` response or a 304).
    fn new(
        status: u16,
        reason: String,
        headers: Vec<(String, String)>,
        body: Body,
        decode: bool,
    ) -> Response {
        let (content_encoding, why) = ContentEncoding::from_headers(&headers);
        let empty = matches!(
            &body,
            Body::H1(H1Body {
                body: BodyState::Done,
                ..
            })
        );
        let decoding = (decode && !empty && content_encoding != ContentEncoding::Identity)
            .then(|| Box::new(Decoding::new(content_encoding, why)));
        Response {
            status,
            reason,
            headers,
            body,
            content_encoding,
            decoding,
        }
    }
}

/// The system roots' configuration, built once per process.
fn default_tls() -> Result<TlsConfig, WireError> {
    static DEFAULT: std::sync::OnceLock<Result<TlsConfig, String>> = std::sync::OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            crate::tls::TlsOptions::default()
                .client_config()
                .map_err(|e| e.detail)
        })
        .clone()
        .map_err(|d| WireError::new(WireErrorKind::Tls, d))
}

/// The TLS handshake over `tcp`, SNI from the target's host; a failure names the host
/// and rustls's reason (e.g. `invalid peer certificate: UnknownIssuer`).
async fn handshake(
    target: &Target,
    tcp: TcpStream,
    config: TlsConfig,
) -> Result<Transport, WireError> {
    let name = crate::tls::server_name(&target.host)?;
    let tls = tokio_rustls::TlsConnector::from(config.0)
        .connect(name, tcp)
        .await
        .map_err(|e| {
            WireError::new(
                WireErrorKind::Tls,
                format!("TLS handshake with {} failed: {e}", target.authority()),
            )
        })?;
    Ok(Transport::Tls(Box::new(tls)))
}

/// Sends `req` as HTTP/1.1 over an already open byte stream `io` and reads the
/// response head, exactly as [`open`] does over TCP (no socket options; the
/// socket accessors of the [`Response`] answer `None`). The body's content coding is
/// decoded (as with [`ConnectOptions::decode`] true).
pub async fn open_on(
    io: impl Io + 'static,
    target: &Target,
    req: &RequestSpec,
    head_timeout: Duration,
) -> Result<Response, WireError> {
    let request = encode_request(target, req)?;
    exchange(
        Transport::Other(Box::new(io)),
        request,
        req,
        head_timeout,
        true,
    )
    .await
}

async fn exchange(
    mut transport: Transport,
    request: Vec<u8>,
    req: &RequestSpec,
    head_timeout: Duration,
    decode: bool,
) -> Result<Response, WireError> {
    let head_only = req.method.eq_ignore_ascii_case("HEAD");
    let deadline = tokio::time::Instant::now() + head_timeout;
    tokio::time::timeout_at(deadline, transport.write_all(&request))
        .await
        .map_err(|_| {
            WireError::new(
                WireErrorKind::Timeout,
                format!("the request was not sent within {head_timeout:?}"),
            )
        })?
        .map_err(|e| WireError::io(WireErrorKind::Io, "writing the request", e))?;
    // The request went out: a head that does not follow is most often held by a proxy
    // that buffers responses (a stream's head waits for its first buffer to fill).
    tokio::time::timeout_at(deadline, read_head(transport, head_only, decode))
        .await
        .map_err(|_| {
            WireError::new(
                WireErrorKind::Timeout,
                format!(
                    "no complete response head within {head_timeout:?} of sending the request \
(a proxy that buffers responses, such as nginx with proxy_buffering on or a CDN, holds a stream's head until its buffer fills)"
                ),
            )
        })?
}

/// Resolves the target and connects to the first address that takes the connection
/// (of the source address's family, when there is one); the last failure otherwise.
async fn connect(
    target: &Target,
    rcvbuf: Option<usize>,
    source: Option<IpAddr>,
) -> Result<TcpStream, WireError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| WireError::io(WireErrorKind::Connect, "resolving the host", e))?
        .collect();
    let family = |a: &SocketAddr| source.is_none_or(|s| s.is_ipv4() == a.is_ipv4());
    if let Some(src) = source
        && !addrs.is_empty()
        && !addrs.iter().any(family)
    {
        return Err(WireError::new(
            WireErrorKind::SourceAddress,
            format!(
                "source address {src}: {} resolves to no address of its family",
                target.host
            ),
        ));
    }
    let mut last = None;
    for addr in addrs.into_iter().filter(family) {
        match connect_addr(addr, rcvbuf, source).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        WireError::new(
            WireErrorKind::Connect,
            format!("{} resolves to no address", target.host),
        )
    }))
}

/// Connects one socket to `addr` (from `source`, when given; `SO_RCVBUF` first, when
/// given), with `TCP_NODELAY`. A source that cannot be bound is a
/// [`WireErrorKind::SourceAddress`] error, a connect without a free local port a
/// [`WireErrorKind::NoLocalPort`] one, naming the addresses.
async fn connect_addr(
    addr: SocketAddr,
    rcvbuf: Option<usize>,
    source: Option<IpAddr>,
) -> Result<TcpStream, WireError> {
    let connect_err =
        |e| WireError::io(WireErrorKind::Connect, &format!("connecting to {addr}"), e);
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| match e.raw_os_error() {
        Some(code) if code == EMFILE || code == ENFILE => WireError::io(
            WireErrorKind::NoDescriptor,
            &format!("a socket for {addr}: no file descriptor left (RLIMIT_NOFILE)"),
            e,
        ),
        _ => connect_err(e),
    })?;
    if let Some(size) = rcvbuf {
        socket
            .set_recv_buffer_size(u32::try_from(size).unwrap_or(u32::MAX))
            .map_err(connect_err)?;
    }
    if let Some(src) = source {
        bind_source(&socket, src)?;
    }
    let stream = match socket.connect(addr).await {
        Ok(s) => s,
        Err(e) if e.raw_os_error() == Some(EADDRNOTAVAIL) => {
            let from = source.map_or_else(
                || "the default source address".to_owned(),
                |s| s.to_string(),
            );
            return Err(WireError::io(
                WireErrorKind::NoLocalPort,
                &format!(
                    "connecting to {addr} from {from}: no free local port (the ephemeral ports \
towards {addr}, net.ipv4.ip_local_port_range, are all in use; more source addresses give more)"
                ),
                e,
            ));
        }
        Err(e) => return Err(connect_err(e)),
    };
    stream.set_nodelay(true).map_err(connect_err)?;
    Ok(stream)
}

/// `EADDRNOTAVAIL` on Linux: bind to an address that is not local, or connect without
/// a free ephemeral port.
const EADDRNOTAVAIL: i32 = nix::errno::Errno::EADDRNOTAVAIL as i32;
/// `EMFILE`: the process has no descriptor left (its `RLIMIT_NOFILE`).
const EMFILE: i32 = nix::errno::Errno::EMFILE as i32;
/// `ENFILE`: the system has no file left (`fs.file-max`).
const ENFILE: i32 = nix::errno::Errno::ENFILE as i32;

/// Binds `socket` to `src`, port 0, with `IP_BIND_ADDRESS_NO_PORT`: the port is chosen
/// at connect time, so each (source, target) pair has the whole ephemeral range (a bind
/// to port 0 without it reserves a port for every target at once).
fn bind_source(socket: &TcpSocket, src: IpAddr) -> Result<(), WireError> {
    let err = |what: &str, e: std::io::Error| {
        let why = if e.raw_os_error() == Some(EADDRNOTAVAIL) {
            " (not an address of this machine)"
        } else {
            ""
        };
        WireError::io(
            WireErrorKind::SourceAddress,
            &format!("{what} source address {src}{why}"),
            e,
        )
    };
    // Best effort on IPv6 (the option is IPv4-level); required on IPv4.
    if let Err(e) = nix::sys::socket::setsockopt(
        socket,
        nix::sys::socket::sockopt::IpBindAddressNoPort,
        &true,
    ) && src.is_ipv4()
    {
        return Err(err("IP_BIND_ADDRESS_NO_PORT for", std::io::Error::from(e)));
    }
    socket
        .bind(SocketAddr::new(src, 0))
        .map_err(|e| err("binding", e))
}

fn encode_request(target: &Target, req: &RequestSpec) -> Result<Vec<u8>, WireError> {
    let bad = |why: String| WireError::new(WireErrorKind::BadRequest, why);
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if !is_token(&req.method) {
        return Err(bad(format!("method {:?} is not a token", req.method)));
    }
    if req.path_and_query.is_empty()
        || req
            .path_and_query
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ')
    {
        return Err(bad(format!(
            "request target {:?} is empty or has whitespace/control characters",
            req.path_and_query
        )));
    }
    let has = |name: &str| {
        req.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", req.method, req.path_and_query).as_bytes());
    if !has("host") {
        out.extend_from_slice(format!("Host: {}\r\n", target.authority()).as_bytes());
    }
    for (name, value) in &req.headers {
        if !is_token(name) {
            return Err(bad(format!("header name {name:?} is not a token")));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(bad(format!("header {name} has CR, LF or NUL in its value")));
        }
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !has("connection") {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    if let Some(body) = &req.body
        && !has("content-length")
        && !has("transfer-encoding")
    {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = &req.body {
        out.extend_from_slice(body);
    }
    Ok(out)
}

/// Where a response head ends: just past the first empty line (`\n\n` or
/// `\n\r\n`, as httparse accepts both), searching from `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(k) = memchr::memchr(b'\n', &buf[i..]) {
        let lf = i + k;
        match (buf.get(lf + 1), buf.get(lf + 2)) {
            (Some(b'\n'), _) => return Some(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(lf + 3),
            _ => i = lf + 1,
        }
    }
    None
}

#[cfg(test)]
thread_local! {
    /// How often `read_head` ran httparse (tests prove the head parse is linear).
    static HEAD_PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Reads and parses the response head. Linear in the head's length however it is
/// split into reads: httparse runs only once the bytes read hold an empty line (or
/// once on the first read, to refuse garbage early), and the search for that line
/// resumes where the previous one stopped (less the 2 bytes a line end may straddle).
async fn read_head(
    mut transport: Transport,
    head_only: bool,
    decode: bool,
) -> Result<Response, WireError> {
    let mut buf: Vec<u8> = Vec::with_capacity(HEAD_READ);
    let mut scanned = 0usize;
    let mut first = true;
    loop {
        // Parse what we have (possibly several interim responses).
        loop {
            let complete = head_end(&buf, scanned.saturating_sub(2)).is_some();
            scanned = buf.len();
            if !complete && (buf.is_empty() || !std::mem::take(&mut first)) {
                break;
            }
            #[cfg(test)]
            HEAD_PARSES.with(|c| c.set(c.get() + 1));
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = parsed.code.unwrap_or_default();
                    if (100..200).contains(&status) && status != 101 {
                        buf.drain(..n);
                        scanned = 0;
                        first = true;
                        continue;
                    }
                    let reason = parsed.reason.unwrap_or_default().to_owned();
                    let headers: Vec<(String, String)> = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    let framing = framing(status, head_only, &headers)?;
                    buf.drain(..n);
                    let body = match framing {
                        BodyFraming::Chunked => BodyState::Chunked(ChunkedDecoder::new()),
                        BodyFraming::Length(0) => BodyState::Done,
                        BodyFraming::Length(n) => BodyState::Length(n),
                        BodyFraming::CloseDelimited | BodyFraming::Http2Frames => BodyState::Close,
                    };
                    let body = Body::H1(H1Body {
                        transport,
                        buf,
                        pos: 0,
                        framing,
                        body,
                        body_offset: 0,
                    });
                    return Ok(Response::new(status, reason, headers, body, decode));
                }
                Ok(httparse::Status::Partial) => break,
                Err(e) => {
                    return Err(WireError::new(
                        WireErrorKind::BadHead,
                        format!("malformed response head: {e}"),
                    ));
                }
            }
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(WireError::new(
                WireErrorKind::TooLarge,
                format!("response head longer than {MAX_HEAD_BYTES} bytes"),
            ));
        }
        let old = buf.len();
        let want = HEAD_READ.min(MAX_HEAD_BYTES - old);
        buf.resize(old + want, 0);
        let n = transport
            .read(&mut buf[old..])
            .await
            .map_err(|e| WireError::io(WireErrorKind::Io, "reading the response head", e))?;
        buf.truncate(old + n);
        if n == 0 {
            return Err(WireError::new(
                WireErrorKind::UnexpectedEof,
                format!("connection closed after {old} bytes, before the end of the response head"),
            ));
        }
    }
}

fn framing(
    status: u16,
    head_only: bool,
    headers: &[(String, String)],
) -> Result<BodyFraming, WireError> {
    if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyFraming::Length(0));
    }
    let codings: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == "transfer-encoding")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(last) = codings.last() {
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            BodyFraming::Chunked
        } else {
            BodyFraming::CloseDelimited
        });
    }
    let mut length: Option<u64> = None;
    for value in headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .flat_map(|(_, v)| v.split(','))
    {
        let value = value.trim();
        let n = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            value.parse::<u64>().ok()
        } else {
            None
        };
        let Some(n) = n else {
            return Err(WireError::new(
                WireErrorKind::BadHead,
                format!("invalid Content-Length {value:?}"),
            ));
        };
        if length.is_some_and(|l| l != n) {
            return Err(WireError::new(
                WireErrorKind::BadHead,
                "conflicting Content-Length values",
            ));
        }
        length = Some(n);
    }
    Ok(length.map_or(BodyFraming::CloseDelimited, BodyFraming::Length))
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How the body is delimited.
    pub fn framing(&self) -> BodyFraming {
        match &self.body {
            Body::H1(b) => b.framing,
            Body::H2(_) => BodyFraming::Http2Frames,
        }
    }

    /// The protocol the response came over (what ALPN negotiated, over TLS).
    pub fn protocol(&self) -> Protocol {
        match &self.body {
            Body::H1(_) => Protocol::Http11,
            Body::H2(_) => Protocol::H2,
        }
    }

    /// Reads up to `buf.len()` decoded body bytes (HTTP/1.1: de-chunked; HTTP/2: the
    /// DATA frames' payload; then the `Content-Encoding` decoded, unless
    /// [`ConnectOptions::decode`] is off). `Ok(0)` is the clean end of the body (EOF for
    /// close-delimited, last chunk for chunked, content length reached, `END_STREAM`),
    /// or `buf` was empty. Never returns more than `buf.len()`, so the caller decides
    /// exactly how many body bytes it consumes; over HTTP/2 only the raw bytes consumed
    /// (handed out, or taken by the content decoder) are given back to the server as
    /// flow-control window. A compressed body is decoded at most
    /// [`crate::MAX_DECODED_AHEAD`] bytes ahead of what the caller has taken. No
    /// deadline of its own: wrap it in a timeout. Cancel-safe.
    pub async fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, WireError> {
        if let Some(d) = &mut self.decoding {
            return d.read(&mut self.body, buf).await;
        }
        match &mut self.body {
            Body::H1(b) => b.read_body(buf).await,
            Body::H2(b) => b.read_body(buf).await,
        }
    }

    /// Decoded body bytes returned so far (after content decoding: cuts count these).
    pub fn body_offset(&self) -> u64 {
        if let Some(d) = &self.decoding {
            return d.body_offset();
        }
        match &self.body {
            Body::H1(b) => b.body_offset,
            Body::H2(b) => b.body_offset(),
        }
    }

    /// Body bytes consumed off the wire before content decoding (after de-chunking or
    /// HTTP/2 framing): the compressed bytes the decoder has taken. Equal to
    /// [`Response::body_offset`] when the body is not decoded.
    pub fn wire_offset(&self) -> u64 {
        match &self.decoding {
            Some(d) => d.wire_offset(),
            None => self.body_offset(),
        }
    }

    /// The body's content coding, from the `Content-Encoding` header (reported even
    /// when [`ConnectOptions::decode`] is off).
    pub fn content_encoding(&self) -> ContentEncoding {
        self.content_encoding
    }

    /// Decoded bytes held ahead of the caller and the capacity they are held in.
    #[cfg(test)]
    pub(crate) fn decoded_held(&self) -> (usize, usize) {
        self.decoding.as_ref().map_or((0, 0), |d| d.held())
    }

    /// Reads the rest of a small body (e.g. a non-200 JSON error); more than
    /// `limit` bytes is a [`WireErrorKind::TooLarge`] error.
    pub async fn read_to_end_limited(&mut self, limit: usize) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let room = (limit - out.len()).saturating_add(1).min(chunk.len());
            let n = self.read_body(&mut chunk[..room]).await?;
            if n == 0 {
                return Ok(out);
            }
            if out.len() + n > limit {
                return Err(WireError::new(
                    WireErrorKind::TooLarge,
                    format!("body longer than {limit} bytes"),
                ));
            }
            out.extend_from_slice(&chunk[..n]);
        }
    }

    /// Runs `f` on the TCP socket under the response, if there is one.
    fn with_tcp<R>(&self, f: impl FnOnce(&TcpStream) -> Option<R>) -> Option<R> {
        match &self.body {
            Body::H1(b) => f(b.transport.tcp()?),
            Body::H2(b) => b.with_transport(|t| f(t.tcp()?)),
        }
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.with_tcp(|t| t.local_addr().ok())
    }

    /// The server's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.with_tcp(|t| t.peer_addr().ok())
    }

    /// The socket's `SO_RCVBUF` as the kernel reports it.
    pub fn recv_buffer_size(&self) -> Option<usize> {
        self.with_tcp(|t| socket2::SockRef::from(t).recv_buffer_size().ok())
    }

    /// Ends the stream in an orderly way. HTTP/1.1: sends FIN (over TLS:
    /// `close_notify`, then FIN), drains what already arrived (bounded) so the kernel
    /// does not turn the close into a reset, then closes. HTTP/2: as
    /// [`ConnectOptions::h2_cut`] says — `RST_STREAM(CANCEL)` for the stream (then the
    /// connection, which carries nothing else, is shut down gracefully), or the whole
    /// connection closed under the stream.
    pub fn close(self) {
        match self.body {
            Body::H1(mut b) => orderly_close(&mut b.transport),
            Body::H2(b) => b.close(),
        }
    }

    /// Abortive close of the whole connection: `SO_LINGER` 0, then close, so the peer
    /// sees a TCP reset. Over TLS no `close_notify` is sent: the peer sees the RST
    /// alone; over HTTP/2 no frame is sent either.
    pub fn reset(self) {
        match self.body {
            Body::H1(b) => {
                if let Some(tcp) = b.transport.tcp() {
                    let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
                }
            }
            Body::H2(b) => b.reset(),
        }
    }
}

/// Orderly close of a transport: `close_notify` over TLS, FIN, then a bounded drain of
/// what already arrived (so the kernel does not turn the close into a reset).
pub(crate) fn orderly_close(transport: &mut Transport) {
    transport.send_close_notify();
    let Some(tcp) = transport.tcp() else {
        return;
    };
    let _ = socket2::SockRef::from(tcp).shutdown(std::net::Shutdown::Write);
    let mut scratch = [0u8; 16 * 1024];
    for _ in 0..64 {
        match tcp.try_read(&mut scratch) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

impl Body {
    /// Makes more raw body bytes available to the content decoder, once it has taken
    /// all it was given: `Ok(false)` at the end of the body. HTTP/1.1 reads them into
    /// `stage` (at most [`RAW_STAGE`] bytes); HTTP/2 waits for a DATA frame, whose
    /// window is released only as [`Body::consume_raw`] consumes it. Cancel-safe.
    pub(crate) async fn fill_raw(&mut self, stage: &mut Stage) -> Result<bool, WireError> {
        match self {
            Body::H1(b) => {
                if stage.start < stage.end {
                    return Ok(true);
                }
                if stage.buf.is_empty() {
                    stage.buf = vec![0u8; RAW_STAGE].into_boxed_slice();
                }
                let n = b.read_body(&mut stage.buf).await?;
                stage.start = 0;
                stage.end = n;
                Ok(n > 0)
            }
            Body::H2(b) => b.peek().await,
        }
    }

    /// The raw body bytes available to the content decoder.
    pub(crate) fn raw<'a>(&'a self, stage: &'a Stage) -> &'a [u8] {
        match self {
            Body::H1(_) => &stage.buf[stage.start..stage.end],
            Body::H2(b) => b.pending(),
        }
    }

    /// Consumes `n` of the [`Body::raw`] bytes.
    pub(crate) fn consume_raw(&mut self, stage: &mut Stage, n: usize) {
        match self {
            Body::H1(_) => stage.start += n,
            Body::H2(b) => b.consume(n),
        }
    }
}

impl H1Body {
    async fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, WireError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = match &mut self.body {
                BodyState::Done => return Ok(0),
                BodyState::Close => {
                    if self.pos == self.buf.len() && self.fill(buf.len()).await? == 0 {
                        self.body = BodyState::Done;
                        return Ok(0);
                    }
                    self.take(buf)
                }
                BodyState::Length(remaining) => {
                    let remaining = *remaining;
                    let want = remaining.min(buf.len() as u64) as usize;
                    if self.pos == self.buf.len() && self.fill(want).await? == 0 {
                        return Err(WireError::new(
                            WireErrorKind::UnexpectedEof,
                            format!(
                                "connection closed with {remaining} of the Content-Length bytes missing"
                            ),
                        ));
                    }
                    let n = self.take(&mut buf[..want]);
                    let left = remaining - n as u64;
                    self.body = if left == 0 {
                        BodyState::Done
                    } else {
                        BodyState::Length(left)
                    };
                    n
                }
                BodyState::Chunked(dec) => {
                    if dec.is_done() {
                        self.body = BodyState::Done;
                        return Ok(0);
                    }
                    let (used, n) = dec
                        .decode(&self.buf[self.pos..], buf)
                        .map_err(chunk_error)?;
                    self.pos += used;
                    if n == 0 {
                        if dec.is_done() {
                            self.body = BodyState::Done;
                            return Ok(0);
                        }
                        let last_chunk_seen = dec.saw_last_chunk();
                        let want = buf.len().saturating_add(CHUNK_SLACK);
                        if self.fill(want).await? == 0 {
                            if last_chunk_seen {
                                // Only the final CRLF/trailers are missing.
                                self.body = BodyState::Done;
                                return Ok(0);
                            }
                            return Err(WireError::new(
                                WireErrorKind::UnexpectedEof,
                                "connection closed inside the chunked body",
                            ));
                        }
                        continue;
                    }
                    n
                }
            };
            self.body_offset += n as u64;
            return Ok(n);
        }
    }

    /// Copies buffered raw bytes into `out`.
    fn take(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        n
    }

    /// Reads at most `want` (capped at 64 KiB) raw bytes from the socket into
    /// the (empty) buffer. `Ok(0)` is EOF.
    ///
    /// Cancel-safe: callers select a body read against timers and signals, so this
    /// future may be dropped while it waits. The bytes go into the buffer's spare
    /// capacity and its length grows only by what was read (`read_buf`), never by
    /// reserved read space (regression: `a_cancelled_read_leaves_no_phantom_bytes`).
    async fn fill(&mut self, want: usize) -> Result<usize, WireError> {
        let want = want.clamp(1, READ_CAP);
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            // Keep no more read space than the caller asks for: a reader that reads
            // small while idle (the harness client) holds a small buffer per stream,
            // not the 64 KiB of a drain (nor the head's 4 KiB).
            if self.buf.capacity() > 2 * want {
                self.buf.shrink_to(want);
            }
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(want);
        let mut space = (&mut self.buf).limit(want);
        self.transport
            .read_buf(&mut space)
            .await
            .map_err(|e| WireError::io(WireErrorKind::Io, "reading the response body", e))
    }
}

fn chunk_error(e: ChunkError) -> WireError {
    match e {
        ChunkError::Bad(m) | ChunkError::TooLarge(m) => WireError::new(WireErrorKind::BadChunk, m),
    }
}

#[cfg(test)]
mod head_tests {
    use super::*;

    fn target() -> Target {
        Target {
            host: "example.invalid".into(),
            port: 80,
            tls: false,
        }
    }

    /// Plays `head` one byte per write into the client's end of a duplex.
    async fn trickled(head: Vec<u8>) -> (Result<Response, WireError>, usize) {
        let (client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            let mut req = [0u8; 1024];
            let _ = server.read(&mut req).await;
            for b in head {
                if server.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            let _ = server.write_all(b"body").await;
        });
        HEAD_PARSES.with(|c| c.set(0));
        let r = open_on(
            client,
            &target(),
            &RequestSpec::get("/"),
            Duration::from_secs(60),
        )
        .await;
        writer.abort();
        (r, HEAD_PARSES.with(|c| c.get()))
    }

    #[tokio::test]
    async fn a_head_trickled_byte_by_byte_is_parsed_once() {
        let mut head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n".to_vec();
        for i in 0..100 {
            head.extend_from_slice(format!("x-junk-{i}: {}\r\n", "y".repeat(300)).as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let len = head.len();
        let (r, parses) = trickled(head).await;
        let r = r.expect("the head parses");
        assert_eq!(r.status, 200);
        assert_eq!(r.headers.len(), 101);
        // One early look at the first bytes, one at the end: not one per byte.
        assert!(parses <= 2, "{parses} parses of a {len}-byte head");
    }

    #[tokio::test]
    async fn interim_heads_and_bare_lf_heads_still_parse() {
        let head =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\ncontent-length: 0\n\n".to_vec();
        let (r, parses) = trickled(head).await;
        let r = r.expect("the head parses");
        assert_eq!(r.status, 404);
        assert!(parses <= 4, "{parses} parses");
    }

    #[test]
    fn the_end_of_a_head_is_found_across_a_resumed_scan() {
        let h = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n";
        for from in 0..h.len() - 3 {
            assert_eq!(head_end(h, from), Some(h.len()), "from {from}");
        }
        assert_eq!(head_end(b"HTTP/1.1 200 OK\n\n", 0), Some(17));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n", 0), None);
    }

    #[test]
    fn request_paths_resolve_under_the_base_path() {
        let b = BaseUrl::parse("https://example.invalid:8443/prefix/").unwrap();
        assert!(b.target.tls);
        assert_eq!(b.target.port, 8443);
        assert_eq!(b.base_path, "/prefix");
        assert_eq!(b.path("/sub/ch-1"), "/prefix/sub/ch-1");
        assert_eq!(b.path("/v1/events?job_id=j"), "/prefix/v1/events?job_id=j");
        assert_eq!(b.path(""), "/prefix");
        assert_eq!(b.url("/pub/x"), "https://example.invalid:8443/prefix/pub/x");
        assert_eq!(b.to_string(), "https://example.invalid:8443/prefix");
        let root = BaseUrl::parse("http://127.0.0.1:80").unwrap();
        assert_eq!(root.base_path, "");
        assert_eq!(root.path("/healthz"), "/healthz");
        assert_eq!(root.path(""), "/");
        assert_eq!(root.path("?x=1"), "/?x=1");
        assert_eq!(root.url("/a"), "http://127.0.0.1/a");
        assert!(BaseUrl::parse("http://h/p?q=1").is_err());
        assert!(BaseUrl::parse("http://h/p#f").is_err());
    }
}
