//! Slowloris, connection floods and stuck clients: every one is bounded, and a
//! well-behaved client is still served beside them.

mod common;

use std::time::Duration;

use common::{DEADLINE, TOKEN, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn addr(s: &TestServer) -> String {
    s.url.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (EOF or reset); panics after the
/// deadline. Returns what was read.
async fn read_until_closed(sock: &mut TcpStream) -> Vec<u8> {
    let end = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(end, sock.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept the connection open; read {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Waits until `/metrics` answers again (after the connections that filled the cap
/// are gone) and returns a metric.
async fn metric_when_served(s: &TestServer, name: &str) -> i64 {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Ok(r) = s.http.get(s.u("/metrics")).send().await
            && r.status() == 200
        {
            return s.metric(name).await;
        }
        assert!(Instant::now() < end, "/metrics never answered again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_half_sent_heads_do_not_stop_a_streaming_client_and_are_closed() {
    reference_server::net::raise_fd_limit().expect("fd limit");
    let s = TestServer::start_with(|c| {
        c.limits.header_read_timeout = Duration::from_secs(3);
    })
    .await;
    let a = addr(&s);
    let mut slow = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let mut sock = TcpStream::connect(&a).await.expect("connect");
        sock.write_all(b"GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
            .await
            .expect("half a head");
        slow.push(sock);
    }
    // A well-behaved client streams beside them.
    let job = s.open_job().await;
    let mut r = s.open(&format!("/v1/jobs/{job}/events"), &[]).await;
    assert_eq!(r.status, 200);
    let seqs = s.publish(&job, 3, "tick").await;
    let frames = r
        .until(|f| f.is("task_event") && f.json()["seq"] == seqs[2])
        .await;
    assert_eq!(
        common::seqs(&frames).len(),
        4,
        "job_started and three ticks"
    );
    // And every half-sent head is closed by the server.
    let closers = slow.into_iter().map(|mut sock| {
        tokio::spawn(async move {
            read_until_closed(&mut sock).await;
        })
    });
    for c in closers.collect::<Vec<_>>() {
        c.await.expect("closed");
    }
    s.stop().await;
}

#[tokio::test]
async fn at_the_connection_cap_a_new_connection_is_refused_at_once_and_counted() {
    let s = TestServer::start_with(|c| {
        c.limits.max_connections = 8;
        c.limits.header_read_timeout = Duration::from_secs(3600);
    })
    .await;
    let a = addr(&s);
    // The health check's pooled keep-alive connection may hold one place.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(&a).await.expect("connect"));
    }
    let mut extra = TcpStream::connect(&a).await.expect("connect");
    let answer = read_until_closed(&mut extra).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 503"),
        "refused with 503, got {text:?}"
    );
    assert!(text.contains("too_many_connections"), "{text}");
    drop(held);
    assert!(metric_when_served(&s, "spine_connections_refused_total").await >= 1);
    s.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_head_timeout() {
    let s = TestServer::start_with(|c| {
        c.limits.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut sock = TcpStream::connect(addr(&s)).await.expect("connect");
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let answer = read_until_closed(&mut sock).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_gets_408() {
    let s = TestServer::start_with(|c| {
        c.limits.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let job = s.open_job().await;
    let mut sock = TcpStream::connect(addr(&s)).await.expect("connect");
    let head = format!(
        "POST /v1/jobs/{job}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"event_"
    );
    sock.write_all(head.as_bytes()).await.expect("request");
    let answer = read_until_closed(&mut sock).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    s.stop().await;
}

/// Opens `path` on a raw connection with a small receive buffer and never reads it.
pub async fn stalled_stream(s: &TestServer, path: &str) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut sock = sock
        .connect(addr(s).parse().expect("addr"))
        .await
        .expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    sock.write_all(req.as_bytes()).await.expect("request");
    sock
}

/// Publishes `batches` batches of 100 events of about 1 KiB each.
async fn publish_kib(s: &TestServer, job: &str, batches: usize) {
    let pad = "x".repeat(1000);
    for _ in 0..batches {
        let events: Vec<serde_json::Value> = (0..100)
            .map(|i| serde_json::json!({"event_type": "bulk", "payload": {"i": i, "pad": pad}}))
            .collect();
        let r = s
            .post(&format!("/v1/jobs/{job}/events"))
            .json(&serde_json::json!({ "events": events }))
            .send()
            .await
            .expect("publish");
        assert_eq!(r.status(), 201);
    }
}

/// Waits until `pred` holds for a metric's value.
async fn wait_metric(s: &TestServer, name: &str, pred: impl Fn(i64) -> bool) -> i64 {
    let end = Instant::now() + DEADLINE;
    loop {
        let v = s.metric(name).await;
        if pred(v) {
            return v;
        }
        assert!(Instant::now() < end, "{name} stayed at {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_stream_whose_reader_stops_is_cut_as_a_slow_consumer() {
    let s = TestServer::start_with(|c| {
        c.limits.write_stall_timeout = Duration::from_secs(1);
    })
    .await;
    let job = s.open_job().await;
    let sock = stalled_stream(&s, "/v1/events").await;
    wait_metric(&s, "spine_active_streams", |v| v == 1).await;
    // Far more than the socket buffers hold: the server's writes stop making progress.
    publish_kib(&s, &job, 40).await;
    wait_metric(&s, "spine_slow_consumer_closes_total", |v| v >= 1).await;
    wait_metric(&s, "spine_active_streams", |v| v == 0).await;
    drop(sock);
    s.stop().await;
}

/// Behind a dead link (sse-toxics' `timeout` in `hold` mode: the proxy stops reading,
/// as a pulled cable stops ACKing) a stream is cut as a slow consumer although its
/// client never stopped reading: what toxiproxy's discarding `timeout` never shows a
/// server, since it keeps reading.
#[tokio::test]
async fn a_stream_behind_a_dead_link_is_cut_as_a_slow_consumer() {
    use sse_toxics::{Proxy, StallMode, Stream, Timeout, Toxic, ToxicConfig};
    let s = TestServer::start_with(|c| {
        c.limits.write_stall_timeout = Duration::from_secs(1);
    })
    .await;
    let job = s.open_job().await;
    let upstream = addr(&s).parse().expect("addr");
    let proxy = Proxy::start("127.0.0.1:0".parse().expect("addr"), upstream, vec![], 1)
        .await
        .expect("proxy");
    let mut sock = TcpStream::connect(proxy.addr()).await.expect("connect");
    let req =
        format!("GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    sock.write_all(req.as_bytes()).await.expect("request");
    wait_metric(&s, "spine_active_streams", |v| v == 1).await;
    // The link dies with the stream open; the client keeps its socket.
    let hold = Timeout {
        timeout: 0,
        mode: StallMode::Hold,
    };
    let dead = ToxicConfig::new(Toxic::Timeout(hold), Stream::Downstream);
    proxy.add_toxic(dead).expect("toxic");
    // Far more than the socket buffers and the proxy's queue hold.
    publish_kib(&s, &job, 40).await;
    wait_metric(&s, "spine_slow_consumer_closes_total", |v| v >= 1).await;
    wait_metric(&s, "spine_active_streams", |v| v == 0).await;
    drop(sock);
    proxy.stop().await;
    s.stop().await;
}

/// A publish of one event padded with whitespace to `bytes`.
async fn padded_publish(s: &TestServer, job: &str, bytes: usize) -> u16 {
    let mut body = br#"{"event_type":"pad"}"#.to_vec();
    body.resize(bytes, b' ');
    s.post(&format!("/v1/jobs/{job}/events"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("publish")
        .status()
        .as_u16()
}

#[tokio::test]
async fn request_bytes_in_flight_are_bounded() {
    let s = TestServer::start_with(|c| {
        c.limits.max_inflight_body_bytes = 1 << 20;
        c.limits.body_read_timeout = Duration::from_secs(3600);
    })
    .await;
    let job = s.open_job().await;
    assert_eq!(padded_publish(&s, &job, 200 * 1024).await, 201);
    // A publish that declares 900 KiB and never sends them holds them.
    let mut stuck = TcpStream::connect(addr(&s)).await.expect("connect");
    let head = format!(
        "POST /v1/jobs/{job}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{",
        900 * 1024
    );
    stuck.write_all(head.as_bytes()).await.expect("request");
    let end = Instant::now() + DEADLINE;
    while padded_publish(&s, &job, 200 * 1024).await != 429 {
        assert!(Instant::now() < end, "the budget was never spent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stuck);
    let end = Instant::now() + DEADLINE;
    while padded_publish(&s, &job, 200 * 1024).await != 201 {
        assert!(Instant::now() < end, "the budget was never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop().await;
}
