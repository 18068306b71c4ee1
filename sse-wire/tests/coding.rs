//! Content-Encoding decoding under `Response::read_body` against hand-made responses
//! on 127.0.0.1: gzip, deflate (zlib and raw) and br over chunked and close-delimited
//! HTTP/1.1 and over HTTP/2; incremental decoding of a sync-flushed stream; offsets
//! (decoded and wire); unsupported codings, corrupt and truncated data; `decode: false`.

use std::future::poll_fn;
use std::io::Write as _;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use sse_wire::{
    ConnectOptions, ContentEncoding, HttpVersion, Protocol, RequestSpec, Response, Target,
    WireErrorKind, open,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

mod support;
use support::{DEADLINE, serve_once};

/// An event stream with enough repetition to compress well.
fn events(n: usize) -> Vec<u8> {
    let mut out = b"retry: 1000\n\n".to_vec();
    for i in 0..n {
        out.extend_from_slice(
            format!("id: {i}\nevent: task_event\ndata: {{\"seq\":{i},\"msg\":\"h\u{e9}llo\"}}\n\n")
                .as_bytes(),
        );
    }
    out
}

/// The codings tested: the header value, and how to encode a whole body.
#[derive(Debug, Clone, Copy)]
enum Coding {
    Gzip,
    XGzip,
    Zlib,
    RawDeflate,
    Br,
}

const ALL: [Coding; 5] = [
    Coding::Gzip,
    Coding::XGzip,
    Coding::Zlib,
    Coding::RawDeflate,
    Coding::Br,
];

impl Coding {
    fn header(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::XGzip => "X-Gzip",
            Coding::Zlib | Coding::RawDeflate => "deflate",
            Coding::Br => "br",
        }
    }

    fn expected(self) -> ContentEncoding {
        match self {
            Coding::Gzip | Coding::XGzip => ContentEncoding::Gzip,
            Coding::Zlib | Coding::RawDeflate => ContentEncoding::Deflate,
            Coding::Br => ContentEncoding::Br,
        }
    }

    fn encode(self, data: &[u8]) -> Vec<u8> {
        let level = flate2::Compression::default();
        match self {
            Coding::Gzip | Coding::XGzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Coding::Zlib => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Coding::RawDeflate => {
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), level);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Coding::Br => {
                let mut out = Vec::new();
                {
                    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
                    w.write_all(data).unwrap();
                }
                out
            }
        }
    }
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: DEADLINE,
        head_timeout: DEADLINE,
        ..ConnectOptions::default()
    }
}

fn request() -> RequestSpec {
    let mut req = RequestSpec::get("/stream");
    req.headers
        .push(("Accept-Encoding".into(), "gzip, deflate, br".into()));
    req
}

/// Chunked framing of `body` in odd-sized chunks (the first with an extension).
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, c) in body.chunks(7 + body.len() / 5).enumerate() {
        let ext = if i == 0 { ";ext=1" } else { "" };
        out.extend_from_slice(format!("{:x}{ext}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Serves one response: `head_fields` (each ending in CRLF) then `body` as is, then
/// closes.
async fn serve_raw(head_fields: String, body: Vec<u8>) -> (Target, JoinHandle<()>) {
    serve_once(move |mut s, _| async move {
        let head =
            format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n{head_fields}\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        // In a few writes, so reads see odd boundaries.
        for part in body.chunks(body.len() / 3 + 1) {
            s.write_all(part).await.unwrap();
            s.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        let _ = s.shutdown().await;
    })
    .await
}

/// Reads the whole body `step` bytes at a time; checks every read's size and the
/// decoded offset.
async fn read_all(resp: &mut Response, step: usize) -> Result<Vec<u8>, sse_wire::WireError> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; step];
    loop {
        let n = timeout(DEADLINE, resp.read_body(&mut buf)).await.unwrap()?;
        assert!(n <= step);
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        assert_eq!(resp.body_offset(), out.len() as u64);
    }
}

async fn get(target: &Target, o: &ConnectOptions) -> Response {
    timeout(DEADLINE, open(target, &request(), o))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn every_coding_decodes_exactly_over_chunked_and_close_delimited_bodies() {
    let plain = events(200);
    for coding in ALL {
        let wire = coding.encode(&plain);
        assert!(wire.len() * 3 < plain.len(), "{coding:?} compresses");
        for is_chunked in [true, false] {
            for step in [1, 13, 64 * 1024] {
                let (fields, body) = if is_chunked {
                    (
                        format!(
                            "content-encoding: {}\r\ntransfer-encoding: chunked\r\n",
                            coding.header()
                        ),
                        chunked(&wire),
                    )
                } else {
                    (
                        format!("Content-Encoding: {}\r\n", coding.header()),
                        wire.clone(),
                    )
                };
                let (target, server) = serve_raw(fields, body).await;
                let mut resp = get(&target, &opts()).await;
                let what = format!("{coding:?} chunked={is_chunked} step={step}");
                assert_eq!(resp.content_encoding(), coding.expected(), "{what}");
                let got = read_all(&mut resp, step).await.unwrap();
                assert!(got == plain, "{what}: decoded bytes differ");
                assert_eq!(resp.body_offset(), plain.len() as u64, "{what}");
                assert_eq!(resp.wire_offset(), wire.len() as u64, "{what}");
                server.await.unwrap();
            }
        }
    }
}

#[tokio::test]
async fn reading_one_byte_at_a_time_counts_decoded_and_wire_bytes_apart() {
    let plain = events(50);
    let wire = Coding::Gzip.encode(&plain);
    let (target, server) = serve_raw("content-encoding: gzip\r\n".into(), wire.clone()).await;
    let mut resp = get(&target, &opts()).await;
    let mut buf = [0u8; 1];
    let mut got = Vec::new();
    let mut wire_seen = Vec::new();
    loop {
        let n = timeout(DEADLINE, resp.read_body(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        got.push(buf[0]);
        assert_eq!(resp.body_offset(), got.len() as u64);
        assert!(resp.wire_offset() <= wire.len() as u64);
        wire_seen.push(resp.wire_offset());
    }
    assert_eq!(got, plain);
    assert_eq!(resp.wire_offset(), wire.len() as u64);
    assert!(
        wire_seen.windows(2).all(|w| w[0] <= w[1]),
        "wire offset never goes back"
    );
    assert!(resp.wire_offset() < resp.body_offset());
    server.await.unwrap();
}

/// A gzip writer that sync-flushes after each event: each event reaches the client
/// and is decoded before the server sends the next (which waits for the client's word).
#[tokio::test]
async fn a_sync_flushed_gzip_stream_is_decoded_event_by_event() {
    const N: usize = 20;
    let (ack_tx, mut ack_rx) = mpsc::channel::<usize>(1);
    let (target, server) = serve_once(move |mut s, _| async move {
        s.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 0..N {
            gz.write_all(format!("id: {i}\ndata: event {i}\n\n").as_bytes())
                .unwrap();
            gz.flush().unwrap(); // Z_SYNC_FLUSH
            let bytes = std::mem::take(gz.get_mut());
            s.write_all(format!("{:x}\r\n", bytes.len()).as_bytes())
                .await
                .unwrap();
            s.write_all(&bytes).await.unwrap();
            s.write_all(b"\r\n").await.unwrap();
            s.flush().await.unwrap();
            // The next event only once the client has decoded this one.
            let got = timeout(DEADLINE, ack_rx.recv()).await.unwrap().unwrap();
            assert_eq!(got, i);
        }
        let tail = gz.finish().unwrap();
        s.write_all(format!("{:x}\r\n", tail.len()).as_bytes())
            .await
            .unwrap();
        s.write_all(&tail).await.unwrap();
        s.write_all(b"\r\n0\r\n\r\n").await.unwrap();
        let _ = s.shutdown().await;
    })
    .await;
    let mut resp = get(&target, &opts()).await;
    let mut pending = Vec::new();
    let mut buf = [0u8; 5];
    for i in 0..N {
        let want = format!("id: {i}\ndata: event {i}\n\n");
        while pending.len() < want.len() {
            let n = timeout(DEADLINE, resp.read_body(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "the body ended before event {i}");
            pending.extend_from_slice(&buf[..n]);
        }
        assert_eq!(pending, want.as_bytes(), "event {i} alone, nothing ahead");
        pending.clear();
        ack_tx.send(i).await.unwrap();
    }
    let rest = read_all(&mut resp, 64).await.unwrap();
    assert!(rest.is_empty());
    server.await.unwrap();
}

#[tokio::test]
async fn an_unsupported_coding_is_an_encoding_error_naming_it() {
    for (value, named) in [
        ("zstd", "zstd"),
        ("gzip, br", "gzip, br"),
        ("compress", "compress"),
    ] {
        let (target, server) = serve_raw(
            format!("content-encoding: {value}\r\n"),
            b"whatever".to_vec(),
        )
        .await;
        let mut resp = get(&target, &opts()).await;
        assert_eq!(resp.content_encoding(), ContentEncoding::Unsupported);
        let e = read_all(&mut resp, 64).await.unwrap_err();
        assert_eq!(e.kind, WireErrorKind::Encoding, "{value}: {e}");
        assert_eq!(e.kind.name(), "encoding");
        assert!(e.detail.contains(named), "{value}: {}", e.detail);
        server.await.unwrap();
    }
}

#[tokio::test]
async fn identity_is_passed_through() {
    let plain = events(3);
    let (target, server) = serve_raw("content-encoding: identity\r\n".into(), plain.clone()).await;
    let mut resp = get(&target, &opts()).await;
    assert_eq!(resp.content_encoding(), ContentEncoding::Identity);
    assert_eq!(read_all(&mut resp, 10).await.unwrap(), plain);
    assert_eq!(resp.wire_offset(), resp.body_offset());
    server.await.unwrap();
}

#[tokio::test]
async fn corrupt_data_is_an_encoding_error_after_the_good_prefix() {
    // Brotli has no checksum: a flipped byte may well decode to other bytes; gzip and
    // zlib carry one.
    for coding in [Coding::Gzip, Coding::Zlib] {
        let plain = events(100);
        let mut wire = coding.encode(&plain);
        // Garbage in the middle of the compressed stream.
        let mid = wire.len() / 2;
        for b in &mut wire[mid..mid + 16] {
            *b ^= 0xa5;
        }
        let (target, server) =
            serve_raw(format!("content-encoding: {}\r\n", coding.header()), wire).await;
        let mut resp = get(&target, &opts()).await;
        let e = read_all(&mut resp, 100).await.unwrap_err();
        assert_eq!(e.kind, WireErrorKind::Encoding, "{coding:?}: {e}");
        let decoded = resp.body_offset() as usize;
        assert!(decoded < plain.len(), "{coding:?}");
        // Another read gives the same error, not a clean end.
        let again = read_all(&mut resp, 100).await.unwrap_err();
        assert_eq!(again.kind, WireErrorKind::Encoding);
        server.await.unwrap();
    }
    // Not compressed at all.
    for coding in ["gzip", "deflate", "br"] {
        let (target, server) = serve_raw(
            format!("content-encoding: {coding}\r\n"),
            b"data: plain\n\n".to_vec(),
        )
        .await;
        let mut resp = get(&target, &opts()).await;
        let e = read_all(&mut resp, 100).await.unwrap_err();
        assert_eq!(e.kind, WireErrorKind::Encoding, "{coding}: {e}");
        assert_eq!(resp.body_offset(), 0);
        server.await.unwrap();
    }
}

#[tokio::test]
async fn a_body_cut_inside_the_compressed_stream_is_an_unexpected_eof_after_what_decodes() {
    let plain = events(100);
    for coding in [Coding::Gzip, Coding::RawDeflate, Coding::Br] {
        let wire = coding.encode(&plain);
        let cut = wire[..wire.len() - 6].to_vec();
        let (target, server) =
            serve_raw(format!("content-encoding: {}\r\n", coding.header()), cut).await;
        let mut resp = get(&target, &opts()).await;
        let mut got = Vec::new();
        let mut buf = [0u8; 333];
        let e = loop {
            match timeout(DEADLINE, resp.read_body(&mut buf)).await.unwrap() {
                Ok(0) => panic!("{coding:?}: a truncated stream ended cleanly"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind, WireErrorKind::UnexpectedEof, "{coding:?}: {e}");
        assert!(
            plain.starts_with(&got),
            "{coding:?}: a prefix of the stream"
        );
        assert!(
            got.len() > plain.len() / 2,
            "{coding:?}: what could be decoded was"
        );
        server.await.unwrap();
    }
}

#[tokio::test]
async fn an_empty_compressed_body_and_trailing_bytes_end_cleanly() {
    let (target, server) = serve_raw(
        "content-encoding: gzip\r\ncontent-length: 0\r\n".into(),
        Vec::new(),
    )
    .await;
    let mut resp = get(&target, &opts()).await;
    assert!(read_all(&mut resp, 10).await.unwrap().is_empty());
    server.await.unwrap();

    let plain = events(5);
    let mut wire = Coding::Gzip.encode(&plain);
    let stream_len = wire.len();
    wire.extend_from_slice(b"trailing junk");
    let (target, server) = serve_raw("content-encoding: gzip\r\n".into(), wire.clone()).await;
    let mut resp = get(&target, &opts()).await;
    assert_eq!(read_all(&mut resp, 10).await.unwrap(), plain);
    assert_eq!(resp.wire_offset(), wire.len() as u64);
    assert!(resp.wire_offset() > stream_len as u64);
    server.await.unwrap();
}

#[tokio::test]
async fn decode_off_gives_the_wire_bytes() {
    let plain = events(20);
    let wire = Coding::Br.encode(&plain);
    let (target, server) = serve_raw("content-encoding: br\r\n".into(), wire.clone()).await;
    let o = ConnectOptions {
        decode: false,
        ..opts()
    };
    let mut resp = get(&target, &o).await;
    assert_eq!(resp.content_encoding(), ContentEncoding::Br);
    assert_eq!(read_all(&mut resp, 100).await.unwrap(), wire);
    assert_eq!(resp.wire_offset(), wire.len() as u64);
    server.await.unwrap();
}

/// One HTTP/2 connection: a 200 with `content-encoding` and `body` in DATA frames of
/// at most 1000 bytes, sent as flow-control capacity allows.
async fn h2_server(encoding: &'static str, body: Vec<u8>) -> (Target, JoinHandle<String>) {
    let (target, task, _) = h2_server_counting(encoding, body).await;
    (target, task)
}

/// [`h2_server`], reporting the body bytes sent so far.
async fn h2_server_counting(
    encoding: &'static str,
    body: Vec<u8>,
) -> (Target, JoinHandle<String>, watch::Receiver<usize>) {
    let (sent_tx, sent) = watch::channel(0usize);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = timeout(DEADLINE, listener.accept()).await.unwrap().unwrap();
        let mut conn = h2::server::handshake(tcp).await.unwrap();
        let (_req, mut respond) = conn.accept().await.unwrap().unwrap();
        tokio::spawn(async move { while let Some(Ok(_)) = conn.accept().await {} });
        let head = http::Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .header("content-encoding", encoding)
            .body(())
            .unwrap();
        let mut send = respond.send_response(head, false).unwrap();
        let data = Bytes::from(body);
        let mut off = 0;
        while off < data.len() {
            send.reserve_capacity((data.len() - off).min(1000));
            let cap = poll_fn(|cx| match send.poll_capacity(cx) {
                Poll::Ready(Some(Ok(n))) => Poll::Ready(Ok(n)),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Err(e.to_string())),
                Poll::Ready(None) => Poll::Ready(Err("closed".to_owned())),
                Poll::Pending => Poll::Pending,
            })
            .await;
            let n = match cap {
                Ok(n) => n.min(data.len() - off).min(1000),
                Err(e) => return e,
            };
            if n > 0 {
                send.send_data(data.slice(off..off + n), false).unwrap();
                off += n;
                sent_tx.send_replace(off);
            }
        }
        send.send_data(Bytes::new(), true).unwrap();
        "done".to_owned()
    });
    let target = Target {
        host: "127.0.0.1".into(),
        port,
        tls: false,
    };
    (target, task, sent)
}

#[tokio::test]
async fn gzip_over_h2_decodes_and_gives_the_window_back_for_the_compressed_bytes() {
    // Far more decoded than the stream window, and more compressed than it too.
    let mut plain = events(2000);
    plain.extend(std::iter::repeat_n(b':', 1 << 20));
    plain.extend_from_slice(b"\n\ndata: ");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..60_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        plain.push(b'a' + (x % 26) as u8);
    }
    plain.extend_from_slice(b"\n\n");
    let wire = Coding::Gzip.encode(&plain);
    assert!(wire.len() > sse_wire::H2_STREAM_WINDOW as usize);
    let (target, server) = h2_server("gzip", wire.clone()).await;
    let o = ConnectOptions {
        http: HttpVersion::Http2,
        ..opts()
    };
    let mut resp = get(&target, &o).await;
    assert_eq!(resp.protocol(), Protocol::H2);
    assert_eq!(resp.content_encoding(), ContentEncoding::Gzip);
    let got = read_all(&mut resp, 4096).await.unwrap();
    assert!(got == plain, "decoded bytes differ");
    assert_eq!(resp.wire_offset(), wire.len() as u64);
    assert_eq!(timeout(DEADLINE, server).await.unwrap().unwrap(), "done");
}

/// Reads cancelled at random points (a timeout shorter than the trickle) lose no
/// decoded byte and duplicate none.
#[tokio::test]
async fn cancelled_reads_lose_nothing() {
    let plain = events(300);
    for coding in [Coding::Gzip, Coding::Br] {
        let wire = coding.encode(&plain);
        let (target, server) = serve_once(move |mut s, _| async move {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-encoding: {}\r\n\r\n",
                coding.header()
            );
            s.write_all(head.as_bytes()).await.unwrap();
            for part in wire.chunks(37) {
                s.write_all(part).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_micros(300)).await;
            }
            let _ = s.shutdown().await;
        })
        .await;
        let mut resp = get(&target, &opts()).await;
        let mut got = Vec::new();
        let mut buf = [0u8; 50];
        let mut cancelled = 0;
        loop {
            match timeout(Duration::from_micros(100), resp.read_body(&mut buf)).await {
                Err(_) => cancelled += 1,
                Ok(r) => match r.unwrap() {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                },
            }
        }
        assert!(got == plain, "{coding:?}: decoded bytes differ");
        assert_eq!(resp.body_offset(), plain.len() as u64);
        assert!(cancelled > 0, "{coding:?}: some reads were cancelled");
        server.await.unwrap();
    }
}

/// A reader that stops after a few decoded bytes holds the server back: window is given
/// back only for the compressed bytes the decoder took, and the decoder takes only what
/// fits in its bounded output.
#[tokio::test]
async fn a_stopped_reader_of_a_compressed_h2_stream_stalls_the_server() {
    let mut plain = b"data: ".to_vec();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..400_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        plain.push(b'a' + (x % 26) as u8);
    }
    plain.extend_from_slice(b"\n\n");
    let wire = Coding::Gzip.encode(&plain);
    let (target, server, mut sent) = h2_server_counting("gzip", wire.clone()).await;
    let o = ConnectOptions {
        http: HttpVersion::Http2,
        ..opts()
    };
    let mut resp = get(&target, &o).await;
    let mut buf = [0u8; 10];
    let n = timeout(DEADLINE, resp.read_body(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], &plain[..n]);
    // Let the server send all it can.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stalled = *sent.borrow_and_update();
    let window = sse_wire::H2_STREAM_WINDOW as u64;
    assert!(
        stalled as u64 <= resp.wire_offset() + window,
        "sent {stalled}, consumed {}, window {window}",
        resp.wire_offset()
    );
    assert!(stalled < wire.len() / 2, "sent {stalled} of {}", wire.len());
    // Reading on lets it finish.
    let mut got = buf[..n].to_vec();
    let mut big = vec![0u8; 8192];
    loop {
        let m = timeout(DEADLINE, resp.read_body(&mut big))
            .await
            .unwrap()
            .unwrap();
        if m == 0 {
            break;
        }
        got.extend_from_slice(&big[..m]);
    }
    assert!(got == plain, "decoded bytes differ");
    assert_eq!(resp.body_offset(), plain.len() as u64);
    assert_eq!(resp.wire_offset(), wire.len() as u64);
    assert_eq!(timeout(DEADLINE, server).await.unwrap().unwrap(), "done");
}
