//! The wire client against hand-made HTTP responses on 127.0.0.1.

use std::time::Duration;

use sse_wire::{
    BodyFraming, ConnectOptions, Item, Parser, ParserConfig, RequestSpec, Response, Target,
    WireErrorKind, open, parse_url,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

mod support;
use support::{DEADLINE, serve_once};

/// Writes each segment separately (flushing), so reads see odd boundaries.
async fn write_segments(stream: &mut TcpStream, segments: &[&[u8]]) {
    for s in segments {
        stream.write_all(s).await.unwrap();
        stream.flush().await.unwrap();
    }
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        tls: None,
        rcvbuf: None,
        connect_timeout: Duration::from_secs(5),
        head_timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    }
}

async fn get(target: &Target) -> Response {
    timeout(
        DEADLINE,
        open(target, &RequestSpec::get("/stream"), &opts()),
    )
    .await
    .unwrap()
    .unwrap()
}

/// Reads the whole body with buffers of `step` bytes, checking no read
/// returns more than asked.
async fn read_all(resp: &mut Response, step: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; step];
    loop {
        let n = timeout(DEADLINE, resp.read_body(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n <= step);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
        assert_eq!(resp.body_offset(), out.len() as u64);
    }
}

const SSE_BODY: &[u8] = b"retry: 1000\n\nid: 1\nevent: task_event\ndata: {\"seq\":1}\n\n: hb\n\nid: 2\ndata: \xC3\xA9\n\n";

#[tokio::test]
async fn chunked_with_odd_boundaries_extensions_and_trailers() {
    // Chunks split mid-line, mid-UTF-8 and mid-CRLF; segments split mid-size-line.
    let b = SSE_BODY;
    let mut wire = Vec::new();
    let cuts = [0, 5, 13, 14, 40, 58, 62, b.len() - 1, b.len()];
    for (i, w) in cuts.windows(2).enumerate() {
        let part = &b[w[0]..w[1]];
        if i % 2 == 0 {
            wire.extend_from_slice(format!("{:X}\r\n", part.len()).as_bytes());
        } else {
            wire.extend_from_slice(format!("{:x};name=\"v;x\"\r\n", part.len()).as_bytes());
        }
        wire.extend_from_slice(part);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\n");
    for step in [1, 2, 3, 7, 4096] {
        let segments: Vec<Vec<u8>> = wire.chunks(5).map(<[u8]>::to_vec).collect();
        let (target, server) = serve_once(move |mut s, _| async move {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            for seg in segments {
                s.write_all(&seg).await.unwrap();
            }
            // Keep the connection open: the last chunk alone ends the body.
            let mut rest = Vec::new();
            let _ = timeout(DEADLINE, s.read_to_end(&mut rest)).await;
        })
        .await;
        let mut resp = get(&target).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("text/event-stream"));
        assert_eq!(resp.framing(), BodyFraming::Chunked);
        let body = read_all(&mut resp, step).await;
        assert_eq!(body, SSE_BODY, "step {step}");
        resp.close();
        timeout(DEADLINE, server).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn parser_over_the_wire_records_offsets() {
    let (target, server) = serve_once(|mut s, _| async move {
        let b = SSE_BODY;
        write_segments(
            &mut s,
            &[
                b"HTTP/1.1 200 OK\r\n\r\n",
                &b[..3],
                &b[3..20],
                &b[20..71],
                &b[71..],
            ],
        )
        .await;
    })
    .await;
    let mut resp = get(&target).await;
    assert_eq!(resp.framing(), BodyFraming::CloseDelimited);
    let mut parser = Parser::new(ParserConfig::default());
    let mut items = Vec::new();
    let mut buf = [0u8; 11];
    loop {
        let n = timeout(DEADLINE, resp.read_body(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        parser.feed(&buf[..n], &mut items);
        assert_eq!(parser.offset(), resp.body_offset());
    }
    parser.finish(&mut items);
    let events: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Item::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_type, "task_event");
    assert_eq!((events[0].start, events[0].end), (13, 54));
    assert_eq!(&events[1].raw[..], &SSE_BODY[events[1].start as usize..]);
    assert_eq!(events[1].data, "é");
    assert_eq!(parser.last_event_id(), "2");
    timeout(DEADLINE, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn close_delimited_body() {
    let (target, server) = serve_once(|mut s, _| async move {
        write_segments(
            &mut s,
            &[
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: a\n",
                b"\ndata: b\n\n",
            ],
        )
        .await;
    })
    .await;
    let mut resp = get(&target).await;
    assert_eq!(read_all(&mut resp, 4).await, b"data: a\n\ndata: b\n\n");
    // After the end, reads keep returning 0.
    let mut buf = [0u8; 8];
    assert_eq!(resp.read_body(&mut buf).await.unwrap(), 0);
    timeout(DEADLINE, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn content_length_body_ends_without_close() {
    let (target, server) = serve_once(|mut s, _| async move {
        write_segments(
            &mut s,
            &[
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123",
                b"456789",
            ],
        )
        .await;
        // Hold the connection open until the client goes away.
        let mut rest = Vec::new();
        let _ = timeout(DEADLINE, s.read_to_end(&mut rest)).await;
    })
    .await;
    let mut resp = get(&target).await;
    assert_eq!(resp.framing(), BodyFraming::Length(10));
    assert_eq!(read_all(&mut resp, 3).await, b"0123456789");
    resp.close();
    timeout(DEADLINE, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn non_200_json_body_and_limit() {
    for limit in [4096, 5] {
        let (target, server) = serve_once(|mut s, _| async move {
            let body = br#"{"error":"unauthorized"}"#;
            let head = format!(
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            write_segments(&mut s, &[head.as_bytes(), body]).await;
        })
        .await;
        let mut resp = get(&target).await;
        assert_eq!((resp.status, resp.reason.as_str()), (401, "Unauthorized"));
        assert_eq!(resp.header("Content-Type"), Some("application/json"));
        let r = timeout(DEADLINE, resp.read_to_end_limited(limit))
            .await
            .unwrap();
        if limit == 4096 {
            assert_eq!(r.unwrap(), br#"{"error":"unauthorized"}"#);
        } else {
            assert_eq!(r.unwrap_err().kind, WireErrorKind::TooLarge);
        }
        timeout(DEADLINE, server).await.unwrap().unwrap();
    }
}

async fn chunked_error(body: &'static [u8]) -> sse_wire::WireError {
    let (target, server) = serve_once(move |mut s, _| async move {
        write_segments(
            &mut s,
            &[
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                body,
            ],
        )
        .await;
        let mut rest = Vec::new();
        let _ = timeout(DEADLINE, s.read_to_end(&mut rest)).await;
    })
    .await;
    let mut resp = get(&target).await;
    let mut buf = [0u8; 64];
    let err = loop {
        match timeout(DEADLINE, resp.read_body(&mut buf)).await.unwrap() {
            Ok(0) => panic!("body ended cleanly"),
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    drop(resp);
    timeout(DEADLINE, server).await.unwrap().unwrap();
    err
}

#[tokio::test]
async fn bad_chunk_headers_are_errors() {
    for body in [
        &b"zz\r\nab\r\n"[..],
        b"\r\n",
        b"5 x\r\nhello\r\n",
        b"ffffffffffffffffffffffff\r\n",
        b"40000001\r\n",
        b"2\r\nabc\r\n",
        b"2\r\nab\rx",
    ] {
        let e = chunked_error(body).await;
        assert_eq!(e.kind, WireErrorKind::BadChunk, "{body:?}: {e}");
    }
    let long_ext: &'static [u8] = Vec::leak([b"1;".as_slice(), &[b'x'; 5000]].concat());
    assert_eq!(chunked_error(long_ext).await.kind, WireErrorKind::BadChunk);
}

#[tokio::test]
async fn server_closing_mid_chunk_is_unexpected_eof() {
    let (target, server) = serve_once(|mut s, _| async move {
        write_segments(
            &mut s,
            &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"],
        )
        .await;
    })
    .await;
    let mut resp = get(&target).await;
    let mut buf = [0u8; 64];
    let n = timeout(DEADLINE, resp.read_body(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"ab");
    let e = timeout(DEADLINE, resp.read_body(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, WireErrorKind::UnexpectedEof, "{e}");
    timeout(DEADLINE, server).await.unwrap().unwrap();

    // Content-Length cut short is the same kind.
    let (target, server) = serve_once(|mut s, _| async move {
        write_segments(
            &mut s,
            &[b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"],
        )
        .await;
    })
    .await;
    let mut resp = get(&target).await;
    let e = loop {
        match timeout(DEADLINE, resp.read_body(&mut buf)).await.unwrap() {
            Ok(n) => assert!(n > 0),
            Err(e) => break e,
        }
    };
    assert_eq!(e.kind, WireErrorKind::UnexpectedEof);
    timeout(DEADLINE, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn head_that_never_ends_times_out() {
    let (target, server) = serve_once(|mut s, _| async move {
        write_segments(&mut s, &[b"HTTP/1.1 200 OK\r\nX-Slow: yes\r\n"]).await;
        let mut rest = Vec::new();
        let _ = timeout(DEADLINE, s.read_to_end(&mut rest)).await;
    })
    .await;
    let o = ConnectOptions {
        head_timeout: Duration::from_millis(300),
        ..opts()
    };
    let e = timeout(DEADLINE, open(&target, &RequestSpec::get("/"), &o))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, WireErrorKind::Timeout, "{e}");
    timeout(DEADLINE, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn bad_and_oversized_heads() {
    let (target, server) = serve_once(|mut s, _| async move {
        write_segments(&mut s, &[b"HTTP/1.1 2x0 OK\r\n\r\n"]).await;
    })
    .await;
    let e = timeout(DEADLINE, open(&target, &RequestSpec::get("/"), &opts()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, WireErrorKind::BadHead, "{e}");
    timeout(DEADLINE, server).await.unwrap().unwrap();

    let (target, server) = serve_once(|mut s, _| async move {
        s.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        for i in 0..2000 {
            if s.write_all(format!("X-Pad-{i}: {}\r\n", "p".repeat(60)).as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    })
    .await;
    let e = timeout(DEADLINE, open(&target, &RequestSpec::get("/"), &opts()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(e.kind, WireErrorKind::TooLarge | WireErrorKind::BadHead),
        "{e}"
    );
    timeout(DEADLINE, server).await.unwrap().unwrap();

    let (target, server) = serve_once(|mut s, _| async move {
        write_segments(
            &mut s,
            &[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"],
        )
        .await;
    })
    .await;
    let e = timeout(DEADLINE, open(&target, &RequestSpec::get("/"), &opts()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, WireErrorKind::BadHead, "{e}");
    timeout(DEADLINE, server).await.unwrap().unwrap();

    let (target, server) = serve_once(|mut s, _| async move {
        write_segments(&mut s, &[b"HTTP/1.1 200 OK\r\nContent-"]).await;
    })
    .await;
    let e = timeout(DEADLINE, open(&target, &RequestSpec::get("/"), &opts()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, WireErrorKind::UnexpectedEof, "{e}");
    timeout(DEADLINE, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn interim_100_continue_is_skipped() {
    let (target, server) = serve_once(|mut s, _| async move {
        write_segments(
            &mut s,
            &[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
        )
        .await;
    })
    .await;
    let mut resp = get(&target).await;
    assert_eq!(resp.status, 200);
    assert_eq!(read_all(&mut resp, 64).await, b"ok");
    timeout(DEADLINE, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn cut_after_byte_k_reads_exactly_k() {
    let body: Vec<u8> = (0..200u8).collect();
    let wire = [b"HTTP/1.1 200 OK\r\n\r\n".as_slice(), &body].concat();
    let (target, server) = serve_once(move |mut s, _| async move {
        write_segments(&mut s, &[&wire]).await;
        // The client closes after 37 bytes; reading until EOF must finish.
        let mut rest = Vec::new();
        timeout(DEADLINE, s.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
    })
    .await;
    let mut resp = get(&target).await;
    let k = 37u64;
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    while resp.body_offset() < k {
        let want = ((k - resp.body_offset()) as usize).min(buf.len());
        let n = timeout(DEADLINE, resp.read_body(&mut buf[..want]))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0 && n <= want);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, &body[..37]);
    assert_eq!(resp.body_offset(), 37);
    resp.close();
    timeout(DEADLINE, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn reset_is_seen_as_reset_and_close_as_eof() {
    for abort in [true, false] {
        let (target, server) = serve_once(|mut s, _| async move {
            write_segments(&mut s, &[b"HTTP/1.1 200 OK\r\n\r\ndata: a\n\n"]).await;
            let mut buf = [0u8; 16];
            timeout(DEADLINE, s.read(&mut buf)).await.unwrap()
        })
        .await;
        let mut resp = get(&target).await;
        let mut buf = [0u8; 9];
        let mut n = 0;
        while n < 9 {
            n += timeout(DEADLINE, resp.read_body(&mut buf[n..]))
                .await
                .unwrap()
                .unwrap();
        }
        if abort {
            resp.reset();
        } else {
            resp.close();
        }
        let seen = timeout(DEADLINE, server).await.unwrap().unwrap();
        if abort {
            let e = seen.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
        } else {
            assert_eq!(seen.unwrap(), 0, "orderly close is EOF");
        }
    }
}

#[tokio::test]
async fn rcvbuf_is_applied() {
    let (target, server) = serve_once(|mut s, _| async move {
        write_segments(&mut s, &[b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).await;
    })
    .await;
    let o = ConnectOptions {
        rcvbuf: Some(8192),
        ..opts()
    };
    let resp = timeout(DEADLINE, open(&target, &RequestSpec::get("/"), &o))
        .await
        .unwrap()
        .unwrap();
    let size = resp.recv_buffer_size().unwrap();
    assert!((8192..=4 * 8192).contains(&size), "SO_RCVBUF is {size}");
    assert!(resp.local_addr().is_some());
    assert_eq!(resp.peer_addr().unwrap().port(), target.port);
    timeout(DEADLINE, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn request_is_encoded_as_given() {
    let (target, server) = serve_once(|mut s, head| async move {
        write_segments(&mut s, &[b"HTTP/1.1 204 No Content\r\n\r\n"]).await;
        let mut body = [0u8; 4];
        timeout(DEADLINE, s.read_exact(&mut body))
            .await
            .unwrap()
            .unwrap();
        (String::from_utf8(head).unwrap(), body)
    })
    .await;
    let req = RequestSpec {
        method: "POST".into(),
        path_and_query: "/v1/x?a=%20b".into(),
        headers: vec![("Last-Event-ID".into(), "42".into())],
        body: Some(b"{}{}".to_vec()),
    };
    let mut resp = timeout(DEADLINE, open(&target, &req, &opts()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.framing(), BodyFraming::Length(0));
    assert_eq!(read_all(&mut resp, 8).await, b"");
    let (head, body) = timeout(DEADLINE, server).await.unwrap().unwrap();
    assert_eq!(
        head,
        format!(
            "POST /v1/x?a=%20b HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nLast-Event-ID: 42\r\nConnection: close\r\nContent-Length: 4\r\n\r\n",
            target.port
        )
    );
    assert_eq!(&body, b"{}{}");
}

#[tokio::test]
async fn bad_requests_and_refused() {
    let target = Target {
        host: "127.0.0.1".into(),
        port: 9,
        tls: false,
    };
    let mut req = RequestSpec::get("/");
    req.headers
        .push(("X-Evil".into(), "a\r\nInjected: 1".into()));
    let e = open(&target, &req, &opts()).await.unwrap_err();
    assert_eq!(e.kind, WireErrorKind::BadRequest);
    let e = open(&target, &RequestSpec::get("/a b"), &opts())
        .await
        .unwrap_err();
    assert_eq!(e.kind, WireErrorKind::BadRequest);

    // A port nobody listens on any more.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let closed = Target {
        host: "127.0.0.1".into(),
        port,
        tls: false,
    };
    let e = timeout(DEADLINE, open(&closed, &RequestSpec::get("/"), &opts()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, WireErrorKind::Connect, "{e}");
}

#[test]
fn urls() {
    let (t, p) = parse_url("http://127.0.0.1:8080/v1/events?job_id=a#frag").unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.tls, p.as_str()),
        ("127.0.0.1", 8080, false, "/v1/events?job_id=a")
    );
    let (t, p) = parse_url("HTTPS://example.test").unwrap();
    assert_eq!((t.port, t.tls, p.as_str()), (443, true, "/"));
    assert_eq!(t.authority(), "example.test");
    let (t, p) = parse_url("http://[::1]:9000?x=1").unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, p.as_str()),
        ("::1", 9000, "/?x=1")
    );
    assert_eq!(t.authority(), "[::1]:9000");
    let (t, _) = parse_url("http://localhost/").unwrap();
    assert_eq!(t.port, 80);
    for bad in [
        "localhost:80/x",
        "ftp://h/",
        "http://",
        "http://:80/",
        "http://h:0/",
        "http://h:70000/",
        "http://h:x/",
        "http://u@h/",
        "http://[::1/",
        "http://h/a b",
        "http://h/\r\n",
    ] {
        assert_eq!(
            parse_url(bad).unwrap_err().kind,
            WireErrorKind::Url,
            "{bad}"
        );
    }
}

/// Regression (found by CT-10/cut-during-high-rate-publishing under load): a
/// `read_body` dropped while it waited for the socket (the harness client selects it
/// against timers and signals) left its zero-filled read space in the buffer, so the
/// next read returned 16 KiB of NUL bytes as body and the chunked decoder then failed.
/// A cancelled read must leave nothing behind, for every body framing.
#[tokio::test]
async fn a_cancelled_read_leaves_no_phantom_bytes() {
    for (head, first, rest) in [
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &b"5\r\nhello\r\n"[..],
            &b"6\r\n world\r\n0\r\n\r\n"[..],
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n",
            &b"hello"[..],
            &b" world"[..],
        ),
        (
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
            &b"hello"[..],
            &b" world"[..],
        ),
    ] {
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (target, server) = serve_once(move |mut s, _| async move {
            write_segments(&mut s, &[head.as_bytes(), first]).await;
            timeout(DEADLINE, go_rx).await.unwrap().unwrap();
            write_segments(&mut s, &[rest]).await;
        })
        .await;
        let mut resp = get(&target).await;
        let mut buf = vec![0u8; 16 * 1024];
        let n = timeout(DEADLINE, resp.read_body(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let mut body = buf[..n].to_vec();
        // The server is silent now: this read waits on the socket and is cancelled.
        let cancelled = timeout(Duration::from_millis(100), resp.read_body(&mut buf)).await;
        assert!(
            cancelled.is_err(),
            "{head}: the read should have been waiting"
        );
        go_tx.send(()).unwrap();
        loop {
            let n = timeout(DEADLINE, resp.read_body(&mut buf))
                .await
                .unwrap()
                .unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        assert_eq!(body, b"hello world", "{head}");
        assert_eq!(resp.body_offset(), 11, "{head}");
        server.await.unwrap();
    }
}

/// A listener on 127.0.0.1 that answers every connection with an empty 204 and sends
/// each peer address to the returned channel.
async fn peer_reporter() -> (
    Target,
    tokio::sync::mpsc::UnboundedReceiver<std::net::SocketAddr>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, peer)) = listener.accept().await {
            let _ = tx.send(peer);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let (target, _) = parse_url(&format!("http://127.0.0.1:{port}/")).unwrap();
    (target, rx)
}

#[tokio::test]
async fn streams_connect_from_the_source_address_they_are_given() {
    let (target, mut peers) = peer_reporter().await;
    for src in ["127.0.0.2", "127.0.0.3"] {
        let o = ConnectOptions {
            source: Some(src.parse().unwrap()),
            ..opts()
        };
        let resp = timeout(DEADLINE, open(&target, &RequestSpec::get("/"), &o))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status, 204);
        assert_eq!(resp.local_addr().unwrap().ip().to_string(), src);
        let peer = timeout(DEADLINE, peers.recv()).await.unwrap().unwrap();
        assert_eq!(
            peer.ip().to_string(),
            src,
            "the server sees the source address"
        );
    }
}

#[tokio::test]
async fn a_source_address_not_of_this_machine_is_an_error_naming_it() {
    let (target, _peers) = peer_reporter().await;
    // TEST-NET-1 (RFC 5737): never assigned to a real interface.
    let o = ConnectOptions {
        source: Some("192.0.2.7".parse().unwrap()),
        ..opts()
    };
    let e = timeout(DEADLINE, open(&target, &RequestSpec::get("/"), &o))
        .await
        .unwrap()
        .expect_err("a non-local source address cannot connect");
    assert_eq!(e.kind, WireErrorKind::SourceAddress, "{e}");
    assert!(e.to_string().contains("192.0.2.7"), "{e}");
    assert!(
        e.to_string().contains("not an address of this machine"),
        "{e}"
    );
}
