//! Real loopback servers for the proxy tests, and waits with deadlines.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use sse_toxics::{Action, EventLog, LogSnapshot, Proxy, ProxyHandle, ToxicConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Every wait in these tests.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// An echo server on loopback: writes back what it reads, closes after the client's
/// close. Runs until the test's runtime ends.
pub async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Starts a proxy to `upstream` on 127.0.0.1:0.
pub async fn proxy(upstream: SocketAddr, toxics: Vec<ToxicConfig>, seed: u64) -> ProxyHandle {
    Proxy::start("127.0.0.1:0".parse().unwrap(), upstream, toxics, seed)
        .await
        .unwrap()
}

/// Reads exactly `n` bytes, within the deadline.
pub async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(DEADLINE, s.read_exact(&mut buf))
        .await
        .expect("deadline")
        .expect("read");
    buf
}

/// Reads to EOF (or an error), within the deadline; returns what came and the error.
pub async fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, Option<std::io::Error>) {
    let mut out = Vec::new();
    let r = tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("deadline");
    (out, r.err())
}

/// Waits until the log holds an event matching `f`.
pub async fn wait_for_event(log: &EventLog, f: impl Fn(&Action) -> bool) -> LogSnapshot {
    wait_until(log, |s| s.events.iter().any(|e| f(&e.action))).await
}

/// Waits until the log satisfies `f`.
pub async fn wait_until(log: &EventLog, f: impl Fn(&LogSnapshot) -> bool) -> LogSnapshot {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let snap = log.snapshot();
        if f(&snap) {
            return snap;
        }
        assert!(tokio::time::Instant::now() < end, "not reached: {snap:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the log shows `n` closed connections.
pub async fn wait_closed(log: &EventLog, n: usize) -> LogSnapshot {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let snap = log.snapshot();
        let closed = snap
            .events
            .iter()
            .filter(|e| matches!(e.action, Action::Closed { .. }))
            .count();
        if closed >= n {
            return snap;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "{closed} of {n} closed: {snap:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One round trip of `msg` through an echo.
pub async fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    assert_eq!(read_n(s, msg.len()).await, msg);
}
