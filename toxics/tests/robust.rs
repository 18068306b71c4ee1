//! Hostile conditions: shutdown leaves no task behind (a stalled connection included),
//! a side that stops reading back-pressures the other instead of filling memory, the
//! log stays within its cap, and bad addresses get an error or a logged close.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sse_toxics::{
    Action, CloseHow, Latency, Proxy, ProxyConfig, ProxyErrorKind, Stream, Timeout, Toxic,
    ToxicConfig,
};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "current_thread")]
async fn stop_ends_every_task_even_a_stalled_connection() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let stall = ToxicConfig::new(
        Toxic::Timeout(Timeout {
            timeout: 0,
            ..Default::default()
        }),
        Stream::Downstream,
    );
    let p = proxy(upstream.local_addr().unwrap(), vec![stall], 1).await;
    let log = p.log();
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(p.addr()).await.unwrap();
        c.write_all(b"request").await.unwrap();
        clients.push(c);
        let (s, _) = tokio::time::timeout(DEADLINE, upstream.accept())
            .await
            .unwrap()
            .unwrap();
        servers.push(s);
    }
    let stalls = |s: &sse_toxics::LogSnapshot| {
        s.events
            .iter()
            .filter(|e| matches!(e.action, Action::StallStarted { .. }))
            .count()
    };
    wait_until(&log, |s| stalls(s) == 3).await;
    assert!(metrics.num_alive_tasks() > baseline);
    assert_eq!(p.open_connections(), 3);
    let snap = p.stop().await;
    assert_eq!(
        metrics.num_alive_tasks(),
        baseline,
        "no task outlives stop()"
    );
    let stopped = snap
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.action,
                Action::Closed {
                    how: CloseHow::ProxyStopped,
                    ..
                }
            )
        })
        .count();
    assert_eq!(stopped, 3, "{snap:#?}");
    for mut c in clients {
        let (got, _) = read_to_end(&mut c).await;
        assert!(got.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_back_pressures_the_server() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let p = proxy(upstream.local_addr().unwrap(), vec![], 1).await;
    let _client = TcpStream::connect(p.addr()).await.unwrap(); // never reads
    let (mut server, _) = tokio::time::timeout(DEADLINE, upstream.accept())
        .await
        .unwrap()
        .unwrap();
    let block = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    let cap = 256 * 1024 * 1024;
    let t0 = Instant::now();
    while sent < cap && t0.elapsed() < DEADLINE {
        match tokio::time::timeout(Duration::from_secs(2), server.write_all(&block)).await {
            Ok(r) => {
                r.unwrap();
                sent += block.len();
            }
            Err(_) => break, // the write blocked: back-pressure reached the server
        }
    }
    // Kernel buffers on both hops plus the proxy's queue (≤ 512 KiB + one chunk).
    assert!(
        sent < 64 * 1024 * 1024,
        "the server could push {sent} bytes"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_keeps_its_cap_and_counts_what_it_dropped() {
    let lat = ToxicConfig::new(
        Toxic::Latency(Latency {
            latency: 1,
            jitter: 0,
        }),
        Stream::Downstream,
    );
    let mut cfg = ProxyConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        echo_server().await,
        vec![lat],
        1,
    );
    cfg.log_capacity = 5;
    let p = Proxy::start_with(cfg).await.unwrap();
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    for _ in 0..10 {
        round_trip(&mut c, b"x").await;
    }
    drop(c);
    let snap = p.stop().await;
    assert_eq!(snap.events.len(), 5);
    assert!(snap.dropped >= 6, "{}", snap.dropped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_logged_and_the_client_closed() {
    let gone = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let p = proxy(gone, vec![], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    let (got, _) = read_to_end(&mut c).await;
    assert!(got.is_empty());
    wait_for_event(&p.log(), |a| matches!(a, Action::ConnectFailed { .. })).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_loopback_listen_addresses_and_valid_toxics_start() {
    let up = "127.0.0.1:9".parse().unwrap();
    let e = Proxy::start("0.0.0.0:0".parse().unwrap(), up, vec![], 1)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProxyErrorKind::NotLoopback);
    let mut bad = ToxicConfig::new(
        Toxic::Latency(Latency {
            latency: 1,
            jitter: 0,
        }),
        Stream::Upstream,
    );
    bad.toxicity = -0.1;
    let e = Proxy::start("127.0.0.1:0".parse().unwrap(), up, vec![bad], 1)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProxyErrorKind::Spec);
    assert!(e.message.contains("0.0..=1.0"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_events_serialise_flat_for_the_report() {
    let lat = ToxicConfig::new(
        Toxic::Latency(Latency {
            latency: 20,
            jitter: 0,
        }),
        Stream::Downstream,
    );
    let p = proxy(echo_server().await, vec![lat], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    let client = c.local_addr().unwrap().to_string();
    round_trip(&mut c, b"abc").await;
    drop(c);
    let snap = wait_closed(&p.log(), 1).await;
    p.stop().await;
    let mut v = serde_json::to_value(&snap).unwrap();
    for e in v["events"].as_array_mut().unwrap() {
        e["at_ms"] = serde_json::json!(0);
        if e.get("held_ms").is_some() {
            e["held_ms"] = serde_json::json!(0);
        }
    }
    assert_eq!(
        v,
        serde_json::json!({
            "events": [
                {"at_ms": 0, "conn": 1, "action": "opened", "client": client},
                {"at_ms": 0, "conn": 1, "toxic": "latency_downstream", "stream": "downstream",
                 "action": "delayed", "bytes": 3, "delay_ms": 20, "held_ms": 0},
                {"at_ms": 0, "conn": 1, "action": "closed", "how": "normal", "request_bytes": 3,
                 "response_bytes_received": 3, "response_bytes_forwarded": 3, "unanswered_request_bytes": 0, "indeterminate": false}
            ],
            "dropped": 0
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_at_once_relay_and_stop_cleanly() {
    let lat = ToxicConfig::new(
        Toxic::Latency(Latency {
            latency: 5,
            jitter: 5,
        }),
        Stream::Downstream,
    );
    let p = proxy(echo_server().await, vec![lat], 9).await;
    let addr = p.addr();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100u32 {
        tasks.spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let msg = i.to_be_bytes().repeat(100);
            round_trip(&mut c, &msg).await;
            c
        });
    }
    let mut open = Vec::new();
    while let Some(c) = tasks.join_next().await {
        open.push(c.unwrap());
    }
    assert_eq!(p.open_connections(), 100);
    let snap = p.stop().await;
    let stopped = snap
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.action,
                Action::Closed {
                    how: CloseHow::ProxyStopped,
                    ..
                }
            )
        })
        .count();
    assert_eq!(stopped, 100);
    for mut c in open {
        let (got, _) = read_to_end(&mut c).await;
        assert!(got.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_that_resets_ends_the_connection() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lat = ToxicConfig::new(
        Toxic::Latency(Latency {
            latency: 50,
            jitter: 0,
        }),
        Stream::Downstream,
    );
    let p = proxy(upstream.local_addr().unwrap(), vec![lat], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    let (server, _) = tokio::time::timeout(DEADLINE, upstream.accept())
        .await
        .unwrap()
        .unwrap();
    c.write_all(b"request").await.unwrap();
    // The proxy is relaying (its upstream connect has completed and it logged the
    // connection open): a reset before that would be a failed connect instead.
    wait_for_event(&p.log(), |a| matches!(a, Action::Opened { .. })).await;
    // The server vanishes with an RST.
    server.set_zero_linger().unwrap();
    drop(server);
    let (got, _) = read_to_end(&mut c).await;
    assert!(got.is_empty());
    let snap = wait_closed(&p.log(), 1).await;
    assert!(
        snap.events.iter().any(|e| matches!(
            e.action,
            Action::Closed {
                how: CloseHow::PeerError,
                ..
            }
        )),
        "{snap:#?}"
    );
    assert_eq!(p.open_connections(), 0);
    p.stop().await;
}
