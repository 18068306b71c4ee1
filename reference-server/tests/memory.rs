//! Memory per stream stays bounded whatever the client's read speed: 1,000 clients
//! that never read while far more is published than their sockets hold.

mod common;

use std::time::Duration;

use common::{DEADLINE, TOKEN, TestServer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

const CLIENTS: usize = 1000;
/// Published volume by default: 20 MiB (batches of 100 events of ~1 KiB), so that the
/// test stays short on a shared machine; `SPINE_MEMORY_TEST_MIB` asks for more
/// (BENCHMARKS.md has the figure with 100).
const DEFAULT_MIB: usize = 20;

fn batches() -> usize {
    let mib = std::env::var("SPINE_MEMORY_TEST_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(DEFAULT_MIB);
    mib * 10
}
/// Generous bound per stream: one page of frames held by hyper while the socket is
/// full (256 KiB), plus connection state, with room to spare.
const PER_STREAM_BOUND: u64 = 512 * 1024;
/// The ring of recent events (32 MiB at most) and SQLite's caches.
const SHARED_BOUND: u64 = 96 * 1024 * 1024;

/// A `/proc/self/status` field in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("{field} missing"))
}

async fn stalled(addr: std::net::SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut sock = sock.connect(addr).await.expect("connect");
    let req =
        format!("GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    sock.write_all(req.as_bytes()).await.expect("request");
    sock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_that_never_read_hold_bounded_memory() {
    reference_server::net::raise_fd_limit().expect("fd limit");
    let s = TestServer::start_with(|c| {
        // Long enough that every stream is still open when measured.
        c.limits.write_stall_timeout = Duration::from_secs(3600);
        c.limits.shutdown_grace = Duration::from_millis(500);
    })
    .await;
    let job = s.open_job().await;
    let addr: std::net::SocketAddr = s.url.trim_start_matches("http://").parse().expect("addr");
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(stalled(addr).await);
    }
    let end = Instant::now() + DEADLINE;
    while s.metric("spine_active_streams").await < CLIENTS as i64 {
        assert!(Instant::now() < end, "the streams never all opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = status_bytes("VmRSS:");
    let pad = "x".repeat(1000);
    let batches = batches();
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
    // Let every stream fill its socket: wait until deliveries stop moving.
    let end = Instant::now() + DEADLINE * 3;
    let mut last = -1;
    loop {
        let now = s.metric("spine_events_delivered_total").await;
        if now == last {
            break;
        }
        last = now;
        if Instant::now() > end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let peak = status_bytes("VmHWM:");
    let grown = peak.saturating_sub(before);
    let bound = CLIENTS as u64 * PER_STREAM_BOUND + SHARED_BOUND;
    eprintln!(
        "{CLIENTS} stalled streams, {} MiB published: RSS grew by {} MiB (peak), {} KiB per stream; bound {} MiB",
        batches * 100 * 1024 / (1024 * 1024),
        grown / (1024 * 1024),
        grown / 1024 / CLIENTS as u64,
        bound / (1024 * 1024)
    );
    assert!(grown < bound, "memory grew by {grown} bytes, bound {bound}");
    assert_eq!(s.metric("spine_active_streams").await, CLIENTS as i64);
    drop(clients);
    s.stop().await;
}
