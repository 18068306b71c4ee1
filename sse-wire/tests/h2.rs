//! The wire client over HTTP/2 against an `h2` server on 127.0.0.1: exact body bytes,
//! a cut after decoded byte k with `RST_STREAM(CANCEL)`, the connection-close cut,
//! flow-control backpressure (the server's send capacity stalls while the client does
//! not read, and resumes as it reads), and ALPN over TLS (h2 when the server picks it,
//! HTTP/1.1 when it does not).

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sse_wire::{
    ConnectOptions, H2_STREAM_WINDOW, H2Cut, HttpVersion, Protocol, RequestSpec, Target,
    TlsOptions, open,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

/// Every wait in these tests ends by this deadline.
const DEADLINE: Duration = Duration::from_secs(10);

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// What the server saw of the client's request and stream.
#[derive(Debug)]
struct Seen {
    path: String,
    accept: Option<String>,
    /// How the stream ended from the server's side: `reset CANCEL`, `error …`, `done`.
    end: String,
}

/// Serves one HTTP/2 connection over `io`: answers the first request with a 200 head,
/// then sends `len` body bytes as capacity allows (reporting the bytes sent so far on
/// `sent`), then ends the stream; reports what it saw.
async fn serve_h2<T>(io: T, len: usize, sent: watch::Sender<usize>, seen: mpsc::Sender<Seen>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok(Ok(mut conn)) = timeout(DEADLINE, h2::server::handshake(io)).await else {
        return;
    };
    let Some(Ok((req, mut respond))) = conn.accept().await else {
        return;
    };
    // Keep driving the connection while the stream is served.
    tokio::spawn(async move { while let Some(Ok(_)) = conn.accept().await {} });
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let accept = req
        .headers()
        .get("accept")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let head = http::Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(())
        .unwrap();
    let send = respond.send_response(head, false).unwrap();
    let end = stream_body(send, len, &sent).await;
    let _ = seen.send(Seen { path, accept, end }).await;
}

/// Sends `len` body bytes on `send` as capacity allows (the bytes sent so far on
/// `sent`), then ends the stream: how it ended (`done`, `reset CANCEL`, `error …`).
async fn stream_body(
    mut send: h2::SendStream<Bytes>,
    len: usize,
    sent: &watch::Sender<usize>,
) -> String {
    let data = Bytes::from(body(len));
    let mut off = 0;
    loop {
        if off == len {
            break match send.send_data(Bytes::new(), true) {
                Ok(()) => "done".to_owned(),
                Err(e) => format!("error {e}"),
            };
        }
        send.reserve_capacity(len - off);
        let ev = poll_fn(|cx| {
            if let Poll::Ready(r) = send.poll_reset(cx) {
                return Poll::Ready(Err(r));
            }
            send.poll_capacity(cx).map(Ok)
        })
        .await;
        let cap = match ev {
            Ok(c) => c,
            Err(Ok(reason)) => break format!("reset {reason:?}"),
            Err(Err(e)) => break format!("error {e}"),
        };
        match cap {
            Some(Ok(n)) if n > 0 => {
                let n = n.min(len - off);
                if let Err(e) = send.send_data(data.slice(off..off + n), false) {
                    break format!("error {e}");
                }
                off += n;
                sent.send_replace(off);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break format!("error {e}"),
            None => break "capacity closed".to_owned(),
        }
    }
}

struct Server {
    target: Target,
    sent: watch::Receiver<usize>,
    seen: mpsc::Receiver<Seen>,
}

/// A cleartext (prior knowledge) HTTP/2 server of one connection sending `len` bytes.
async fn server(len: usize) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sent_tx, sent) = watch::channel(0);
    let (seen_tx, seen) = mpsc::channel(1);
    tokio::spawn(async move {
        if let Ok(Ok((tcp, _))) = timeout(DEADLINE, listener.accept()).await {
            serve_h2(tcp, len, sent_tx, seen_tx).await;
        }
    });
    Server {
        target: Target {
            host: "127.0.0.1".into(),
            port,
            tls: false,
        },
        sent,
        seen,
    }
}

fn h2_opts() -> ConnectOptions {
    ConnectOptions {
        http: HttpVersion::Http2,
        connect_timeout: DEADLINE,
        head_timeout: DEADLINE,
        ..ConnectOptions::default()
    }
}

fn sse_request() -> RequestSpec {
    let mut req = RequestSpec::get("/v1/events?job_id=j-1");
    req.headers
        .push(("Accept".into(), "text/event-stream".into()));
    req.headers.push(("Connection".into(), "close".into()));
    req
}

async fn seen(s: &mut Server) -> Seen {
    timeout(DEADLINE, s.seen.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn prior_knowledge_h2_reads_the_exact_body_bytes() {
    let len = 100_000;
    let mut s = server(len).await;
    let mut resp = open(&s.target, &sse_request(), &h2_opts()).await.unwrap();
    assert_eq!(resp.protocol(), Protocol::H2);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(resp.local_addr().is_some() && resp.recv_buffer_size().is_some());
    let mut got = Vec::new();
    let mut buf = [0u8; 777];
    loop {
        let n = timeout(DEADLINE, resp.read_body(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        assert_eq!(resp.body_offset(), got.len() as u64);
    }
    assert_eq!(got, body(len));
    resp.close();
    let seen = seen(&mut s).await;
    assert_eq!(seen.path, "/v1/events?job_id=j-1");
    assert_eq!(seen.accept.as_deref(), Some("text/event-stream"));
    assert_eq!(seen.end, "done");
}

#[tokio::test]
async fn a_cut_after_byte_k_is_an_rst_stream_cancel() {
    for k in [1usize, 4095, 16_385, 50_001] {
        let mut s = server(200_000).await;
        let mut resp = open(&s.target, &sse_request(), &h2_opts()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < k {
            let want = (k - got.len()).min(buf.len());
            let n = timeout(DEADLINE, resp.read_body(&mut buf[..want]))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0 && n <= want);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(resp.body_offset(), k as u64);
        assert_eq!(got, body(200_000)[..k]);
        resp.close();
        let seen = seen(&mut s).await;
        assert_eq!(seen.end, "reset CANCEL", "k = {k}");
    }
}

#[tokio::test]
async fn a_goaway_cut_closes_the_connection_without_a_stream_reset() {
    let mut s = server(200_000).await;
    let opts = ConnectOptions {
        h2_cut: H2Cut::GoAway,
        ..h2_opts()
    };
    let mut resp = open(&s.target, &sse_request(), &opts).await.unwrap();
    let mut buf = [0u8; 1000];
    let n = timeout(DEADLINE, resp.read_body(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 0);
    resp.close();
    let seen = seen(&mut s).await;
    assert!(
        seen.end != "done" && !seen.end.contains("CANCEL"),
        "{}",
        seen.end
    );
}

#[tokio::test]
async fn a_reset_is_a_tcp_reset_of_the_connection() {
    let mut s = server(200_000).await;
    let mut resp = open(&s.target, &sse_request(), &h2_opts()).await.unwrap();
    let mut buf = [0u8; 1000];
    timeout(DEADLINE, resp.read_body(&mut buf))
        .await
        .unwrap()
        .unwrap();
    resp.reset();
    let seen = seen(&mut s).await;
    assert!(seen.end.starts_with("error"), "{}", seen.end);
}

/// Waits (bounded) until the server has sent at least `at_least` bytes; returns it.
async fn sent_reaches(s: &mut Server, at_least: usize) -> usize {
    let r = timeout(DEADLINE, s.sent.wait_for(|n| *n >= at_least)).await;
    *r.expect("the server's capacity grows in time").unwrap()
}

#[tokio::test]
async fn a_reader_that_does_not_read_stalls_the_servers_send_capacity() {
    let window = H2_STREAM_WINDOW as usize;
    let len = 10 * window;
    let mut s = server(len).await;
    let mut resp = open(&s.target, &sse_request(), &h2_opts()).await.unwrap();
    // Not reading: the server may send one stream window and no more.
    assert_eq!(sent_reaches(&mut s, window).await, window);
    let more = timeout(Duration::from_millis(300), s.sent.wait_for(|n| *n > window))
        .await
        .map(|r| r.map(|n| *n));
    assert!(
        more.is_err(),
        "the server sent past the window without a read: {more:?}"
    );
    // Reading releases capacity exactly as fast as the reader takes bytes: the server
    // is never more than one window ahead of what was read.
    let mut read = 0usize;
    let mut buf = [0u8; 1024];
    while read < len {
        let n = timeout(DEADLINE, resp.read_body(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the body ended after {read} bytes");
        read += n;
        let sent = *s.sent.borrow();
        assert!(sent <= read + window, "sent {sent} with only {read} read");
    }
    assert_eq!(sent_reaches(&mut s, len).await, len);
    assert_eq!(
        timeout(DEADLINE, resp.read_body(&mut buf))
            .await
            .unwrap()
            .unwrap(),
        0
    );
    resp.close();
    assert_eq!(seen(&mut s).await.end, "done");
}

/// A TLS server for 127.0.0.1 whose ALPN list is `alpn`, and the CA file to trust it.
fn tls_server(dir: &std::path::Path, alpn: &[&[u8]]) -> (TlsOptions, Arc<rustls::ServerConfig>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "h2 test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let path = dir.join("ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    sse_wire::install_default_provider();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tls = TlsOptions {
        cacert: Some(path),
        ..TlsOptions::default()
    };
    (tls, Arc::new(config))
}

#[tokio::test]
async fn alpn_picks_h2_over_tls_and_falls_back_to_http11() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    // A server that picks h2.
    let (tls, config) = tls_server(dir.path(), &[b"h2", b"http/1.1"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sent_tx, _sent) = watch::channel(0);
    let (seen_tx, mut seen_rx) = mpsc::channel(1);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let s = acceptor.accept(tcp).await.unwrap();
        serve_h2(s, 5000, sent_tx, seen_tx).await;
    });
    let target = Target {
        host: "127.0.0.1".into(),
        port,
        tls: true,
    };
    let opts = ConnectOptions {
        tls: Some(tls.client_config().unwrap()),
        ..h2_opts()
    };
    let mut resp = open(&target, &sse_request(), &opts).await.unwrap();
    assert_eq!(resp.protocol(), Protocol::H2);
    let got = timeout(DEADLINE, resp.read_to_end_limited(10_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, body(5000));
    resp.close();
    let seen = timeout(DEADLINE, seen_rx.recv()).await.unwrap().unwrap();
    assert_eq!(seen.end, "done");

    // A server that only speaks HTTP/1.1: the same options fall back to it.
    let (tls, config) = tls_server(dir.path(), &[b"http/1.1"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut s = acceptor.accept(tcp).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
            .await
            .unwrap();
        s.flush().await.unwrap();
    });
    let target = Target { port, ..target };
    let opts = ConnectOptions {
        tls: Some(tls.client_config().unwrap()),
        ..h2_opts()
    };
    let mut resp = open(&target, &sse_request(), &opts).await.unwrap();
    assert_eq!(resp.protocol(), Protocol::Http11);
    let got = timeout(DEADLINE, resp.read_to_end_limited(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"hello");
}

/// A cleartext HTTP/2 server that answers every stream of every connection with `len`
/// body bytes; reports each stream's end (`path end`) and counts connections.
async fn multi_server(len: usize) -> (Target, mpsc::Receiver<String>, watch::Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (ends_tx, ends) = mpsc::channel(16);
    let (conns_tx, conns) = watch::channel(0);
    tokio::spawn(async move {
        while let Ok(Ok((tcp, _))) = timeout(DEADLINE, listener.accept()).await {
            conns_tx.send_modify(|n| *n += 1);
            let ends_tx = ends_tx.clone();
            tokio::spawn(async move {
                let Ok(Ok(mut conn)) = timeout(DEADLINE, h2::server::handshake(tcp)).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    let ends_tx = ends_tx.clone();
                    tokio::spawn(async move {
                        let head = http::Response::builder().status(200).body(()).unwrap();
                        let send = respond.send_response(head, false).unwrap();
                        let (sent, _) = watch::channel(0);
                        let end = stream_body(send, len, &sent).await;
                        let _ = ends_tx.send(format!("{} {end}", req.uri().path())).await;
                    });
                }
            });
        }
    });
    let target = Target {
        host: "127.0.0.1".into(),
        port,
        tls: false,
    };
    (target, ends, conns)
}

#[tokio::test]
async fn streams_share_one_connection_and_a_cut_or_reset_ends_one_stream_only() {
    let len = 100_000;
    let (target, mut ends, conns) = multi_server(len).await;
    let shared = sse_wire::H2Connection::connect(&target, &h2_opts())
        .await
        .unwrap();
    let open = |path: &'static str| {
        let (shared, target) = (shared.clone(), target.clone());
        async move {
            shared
                .open(&target, &RequestSpec::get(path), DEADLINE)
                .await
                .unwrap()
        }
    };
    let (mut a, mut b, mut c) = (open("/a").await, open("/b").await, open("/c").await);
    assert_eq!(a.protocol(), Protocol::H2);
    let mut buf = [0u8; 1000];
    for r in [&mut a, &mut b, &mut c] {
        let n = timeout(DEADLINE, r.read_body(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
    }
    a.close();
    let end = timeout(DEADLINE, ends.recv()).await.unwrap().unwrap();
    assert_eq!(end, "/a reset CANCEL");
    c.reset();
    let end = timeout(DEADLINE, ends.recv()).await.unwrap().unwrap();
    assert_eq!(end, "/c reset INTERNAL_ERROR");
    assert!(
        shared.is_open(),
        "a stream's cut or reset leaves the connection up"
    );
    // The stream beside them reads to its end.
    let mut got = 1000;
    loop {
        let n = timeout(DEADLINE, b.read_body(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    assert_eq!(got, len);
    assert_eq!(
        *conns.borrow(),
        1,
        "one TCP connection for the three streams"
    );
}
