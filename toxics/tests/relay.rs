//! Each toxic's observable effect through a real loopback echo server. Timing is only
//! ever asserted as a lower bound (what the toxic guarantees); every wait has a deadline.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sse_toxics::{
    Action, Bandwidth, CloseHow, Latency, LimitData, ProxyConfig, ResetPeer, Slicer, SlowClose,
    StallMode, Stream, Timeout, Toxic, ToxicConfig,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

fn tc(toxic: Toxic, stream: Stream) -> ToxicConfig {
    ToxicConfig::new(toxic, stream)
}

fn latency(ms: u64, jitter: u64) -> ToxicConfig {
    tc(
        Toxic::Latency(Latency {
            latency: ms,
            jitter,
        }),
        Stream::Downstream,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_toxics_bytes_go_through_unchanged_both_ways() {
    let p = proxy(echo_server().await, vec![], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut r, mut w) = c.split();
    let send = async {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let recv = tokio::time::timeout(DEADLINE, r.read_to_end(&mut back));
    let (_, got) = tokio::join!(send, recv);
    got.expect("deadline").unwrap();
    assert_eq!(back, data);
    let snap = wait_closed(&p.log(), 1).await;
    assert!(
        matches!(
            snap.events.last().unwrap().action,
            Action::Closed {
                how: CloseHow::Normal,
                request_bytes: 1_000_000,
                response_bytes_forwarded: 1_000_000,
                indeterminate: false,
                ..
            }
        ),
        "{snap:#?}"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_adds_at_least_its_delay_and_logs_it() {
    let p = proxy(echo_server().await, vec![latency(300, 0)], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    let t0 = Instant::now();
    round_trip(&mut c, b"ping").await;
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    let snap = p.log().snapshot();
    let ev = snap
        .events
        .iter()
        .find(|e| matches!(e.action, Action::Delayed { .. }))
        .unwrap();
    assert_eq!(ev.conn, 1);
    assert_eq!(ev.toxic.as_deref(), Some("latency_downstream"));
    let Action::Delayed {
        bytes,
        delay_ms,
        held_ms,
    } = ev.action
    else {
        unreachable!()
    };
    assert_eq!((bytes, delay_ms), (4, 300));
    assert!(held_ms >= 300.0);
    p.stop().await;
}

/// The delays drawn for five chunks on connection 1.
async fn jitter_draws(seed: u64) -> Vec<u64> {
    let p = proxy(echo_server().await, vec![latency(50, 40)], seed).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    for _ in 0..5 {
        round_trip(&mut c, b"x").await;
    }
    let snap = p.stop().await;
    snap.events
        .iter()
        .filter_map(|e| match e.action {
            Action::Delayed { delay_ms, .. } => Some(delay_ms),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_is_reproducible_from_the_seed() {
    let a = jitter_draws(7).await;
    let b = jitter_draws(7).await;
    let c = jitter_draws(8).await;
    assert_eq!(a.len(), 5);
    assert_eq!(a, b, "same seed, same draws");
    assert_ne!(a, c, "another seed, other draws");
    assert!(a.iter().all(|d| (10..90).contains(d)), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slicer_cuts_chunks_and_keeps_the_bytes() {
    let s = Slicer {
        average_size: 100,
        size_variation: 30,
        delay: 200,
    };
    let p = proxy(
        echo_server().await,
        vec![tc(Toxic::Slicer(s), Stream::Upstream)],
        3,
    )
    .await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    let data: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
    round_trip(&mut c, &data).await;
    let snap = p.log().snapshot();
    let sliced: Vec<(usize, usize)> = snap
        .events
        .iter()
        .filter_map(|e| match e.action {
            Action::Sliced { bytes, pieces } => Some((bytes, pieces)),
            _ => None,
        })
        .collect();
    assert_eq!(sliced.iter().map(|s| s.0).sum::<usize>(), 4000);
    for (bytes, pieces) in sliced {
        assert!(pieces >= bytes / 130, "{bytes} bytes in {pieces} pieces");
    }
    // The cut itself: every piece within average ± variation (bar a short chunk).
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
    let ends = s.cut(4000, &mut rng);
    let mut start = 0;
    for end in &ends {
        assert!((35..=260).contains(&(end - start)), "{ends:?}");
        start = *end;
    }
    assert_eq!(start, 4000);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_paces_to_its_rate() {
    // 100 KB/s: 50,000 bytes need at least 400 ms after the first 100 ms piece.
    let b = tc(
        Toxic::Bandwidth(Bandwidth { rate: 100 }),
        Stream::Downstream,
    );
    let p = proxy(echo_server().await, vec![b], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    let data = vec![b'z'; 50_000];
    let t0 = Instant::now();
    round_trip(&mut c, &data).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
    wait_for_event(&p.log(), |a| matches!(a, Action::Throttled { .. })).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_data_closes_after_its_bytes() {
    let l = tc(
        Toxic::LimitData(LimitData { bytes: 100 }),
        Stream::Downstream,
    );
    let p = proxy(echo_server().await, vec![l], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    c.write_all(&[b'a'; 1000]).await.unwrap();
    let (got, _) = read_to_end(&mut c).await;
    assert_eq!(got.len(), 100);
    let snap = wait_closed(&p.log(), 1).await;
    assert!(
        snap.events
            .iter()
            .any(|e| e.action == Action::DataLimitReached { bytes: 100 })
    );
    assert!(snap.events.iter().any(|e| matches!(
        e.action,
        Action::Closed {
            how: CloseHow::DataLimit,
            ..
        }
    )));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_close_holds_the_close() {
    let s = tc(
        Toxic::SlowClose(SlowClose { delay: 300 }),
        Stream::Downstream,
    );
    let p = proxy(echo_server().await, vec![s], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    round_trip(&mut c, b"hi").await;
    let t0 = Instant::now();
    c.shutdown().await.unwrap();
    let (rest, err) = read_to_end(&mut c).await;
    assert!(rest.is_empty() && err.is_none());
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    wait_closed(&p.log(), 1).await;
    p.stop().await;
}

/// A server that reads 5-byte requests and answers each with "ok" (a publisher's
/// keep-alive connection in miniature).
async fn answering_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 5];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(b"ok").await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_an_answered_request_marks_only_the_unanswered_one() {
    let r = tc(
        Toxic::ResetPeer(ResetPeer { timeout: 0 }),
        Stream::Downstream,
    );
    let p = proxy(answering_server().await, vec![r], 1).await;
    p.set_enabled("reset_peer_downstream", false).unwrap();
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    c.write_all(b"first").await.unwrap();
    assert_eq!(read_n(&mut c, 2).await, b"ok");
    p.set_enabled("reset_peer_downstream", true).unwrap();
    c.write_all(b"again").await.unwrap();
    let (got, err) = read_to_end(&mut c).await;
    assert!(got.is_empty());
    assert_eq!(
        err.expect("a reset").kind(),
        std::io::ErrorKind::ConnectionReset
    );
    let snap = wait_closed(&p.log(), 1).await;
    assert!(
        matches!(
            snap.events.last().unwrap().action,
            Action::Closed {
                how: CloseHow::Reset,
                request_bytes: 10,
                response_bytes_forwarded: 2,
                unanswered_request_bytes: 5,
                indeterminate: true,
                ..
            }
        ),
        "{snap:#?}"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peer_on_the_first_response_byte_is_an_indeterminate_write() {
    let r = tc(
        Toxic::ResetPeer(ResetPeer { timeout: 0 }),
        Stream::Downstream,
    );
    let p = proxy(answering_server().await, vec![r], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    c.write_all(b"write").await.unwrap();
    let (got, err) = read_to_end(&mut c).await;
    assert!(got.is_empty(), "no response byte reaches the client");
    assert_eq!(
        err.expect("an error").kind(),
        std::io::ErrorKind::ConnectionReset
    );
    let snap = wait_closed(&p.log(), 1).await;
    assert!(
        matches!(
            snap.events.last().unwrap().action,
            Action::Closed {
                how: CloseHow::Reset,
                request_bytes: 5,
                response_bytes_received: 2,
                response_bytes_forwarded: 0,
                unanswered_request_bytes: 5,
                indeterminate: true
            }
        ),
        "{snap:#?}"
    );
    assert_eq!(snap.indeterminate(), vec![1]);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peer_upstream_stops_the_request_and_is_not_indeterminate() {
    let r = tc(
        Toxic::ResetPeer(ResetPeer { timeout: 100 }),
        Stream::Upstream,
    );
    let p = proxy(answering_server().await, vec![r], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    c.write_all(b"write").await.unwrap();
    let (_, err) = read_to_end(&mut c).await;
    assert_eq!(
        err.expect("an error").kind(),
        std::io::ErrorKind::ConnectionReset
    );
    let snap = wait_closed(&p.log(), 1).await;
    assert!(snap.indeterminate().is_empty(), "{snap:#?}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_zero_stalls_without_bytes_or_close_until_the_proxy_stops() {
    let t = tc(
        Toxic::Timeout(Timeout {
            timeout: 0,
            ..Default::default()
        }),
        Stream::Downstream,
    );
    let p = proxy(echo_server().await, vec![t], 1).await;
    let log = p.log();
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    wait_for_event(&log, |a| {
        matches!(a, Action::StallStarted { timeout_ms: 0 })
    })
    .await;
    c.write_all(b"hello").await.unwrap();
    c.shutdown().await.unwrap();
    let mut buf = [0u8; 16];
    let quiet = tokio::time::timeout(Duration::from_millis(1500), c.read(&mut buf)).await;
    assert!(
        quiet.is_err(),
        "neither a byte nor a close during the stall: {quiet:?}"
    );
    let snap = p.stop().await;
    let (got, _) = read_to_end(&mut c).await;
    assert!(got.is_empty());
    assert!(
        matches!(
            snap.events.last().unwrap().action,
            Action::Closed {
                how: CloseHow::ProxyStopped,
                request_bytes: 0,
                ..
            }
        ),
        "{snap:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_closes_after_its_delay() {
    let t = tc(
        Toxic::Timeout(Timeout {
            timeout: 200,
            ..Default::default()
        }),
        Stream::Downstream,
    );
    let p = proxy(echo_server().await, vec![t], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    let t0 = Instant::now();
    c.write_all(b"hello").await.unwrap();
    let (got, _) = read_to_end(&mut c).await;
    assert!(got.is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(200) - Duration::from_millis(5));
    let snap = wait_closed(&p.log(), 1).await;
    assert!(matches!(
        snap.events.last().unwrap().action,
        Action::Closed {
            how: CloseHow::TimedOut,
            ..
        }
    ));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_window_ends_and_forwarding_resumes() {
    let mut t = tc(
        Toxic::Timeout(Timeout {
            timeout: 0,
            ..Default::default()
        }),
        Stream::Downstream,
    );
    t.until_ms = Some(800);
    let p = proxy(echo_server().await, vec![t], 1).await;
    let log = p.log();
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    wait_for_event(&log, |a| matches!(a, Action::StallStarted { .. })).await;
    c.write_all(b"lost").await.unwrap();
    let snap = wait_for_event(&log, |a| matches!(a, Action::StallEnded { .. })).await;
    assert!(
        snap.events
            .iter()
            .any(|e| e.action == Action::StallEnded { dropped_bytes: 4 }),
        "{snap:#?}"
    );
    round_trip(&mut c, b"after").await;
    p.stop().await;
}

/// Writes 64 KiB chunks until `cap` bytes are written or one write makes no progress
/// for `quiet`; returns the bytes written and whether a write stalled. Bounded in bytes
/// and, per write, in time.
async fn write_until_stalled(c: &mut TcpStream, cap: usize, quiet: Duration) -> (usize, bool) {
    let chunk = vec![b'x'; 64 * 1024];
    let mut written = 0;
    while written < cap {
        match tokio::time::timeout(quiet, c.write(&chunk)).await {
            Ok(Ok(n)) => written += n,
            Ok(Err(e)) => panic!("write failed after {written} bytes: {e}"),
            Err(_) => return (written, true),
        }
    }
    (written, false)
}

fn stall(mode: StallMode) -> ToxicConfig {
    tc(
        Toxic::Timeout(Timeout { timeout: 0, mode }),
        Stream::Downstream,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_stall_stops_reading_so_the_senders_writes_stall() {
    let p = proxy(echo_server().await, vec![stall(StallMode::Hold)], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    wait_for_event(&p.log(), |a| matches!(a, Action::StallStarted { .. })).await;
    // Far above what loopback socket buffers plus the proxy's queue can hold.
    let cap = 256 << 20;
    let (written, stalled) = write_until_stalled(&mut c, cap, Duration::from_secs(2)).await;
    assert!(
        stalled,
        "every write completed ({written} bytes): the proxy kept reading"
    );
    assert!(written < cap);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discard_stall_keeps_reading_so_the_senders_writes_complete() {
    let p = proxy(echo_server().await, vec![stall(StallMode::Discard)], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    wait_for_event(&p.log(), |a| matches!(a, Action::StallStarted { .. })).await;
    let cap = 32 << 20;
    let (written, stalled) = write_until_stalled(&mut c, cap, DEADLINE).await;
    assert!(!stalled && written >= cap, "{written} bytes written");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_stall_that_ends_forwards_the_held_bytes_and_drops_none() {
    let mut t = stall(StallMode::Hold);
    t.until_ms = Some(800);
    let p = proxy(echo_server().await, vec![t], 1).await;
    let log = p.log();
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    wait_for_event(&log, |a| matches!(a, Action::StallStarted { .. })).await;
    c.write_all(b"held").await.unwrap();
    assert_eq!(read_n(&mut c, 4).await, b"held");
    let snap = wait_for_event(&log, |a| matches!(a, Action::StallEnded { .. })).await;
    assert!(
        snap.events
            .iter()
            .any(|e| e.action == Action::StallEnded { dropped_bytes: 0 }),
        "{snap:#?}"
    );
    round_trip(&mut c, b"after").await;
    p.stop().await;
}

async fn conns_with_latency(toxicity: f64, seed: u64, n: usize) -> Vec<u64> {
    let mut l = latency(1, 0);
    l.toxicity = toxicity;
    let p = proxy(echo_server().await, vec![l], seed).await;
    for _ in 0..n {
        let mut c = TcpStream::connect(p.addr()).await.unwrap();
        round_trip(&mut c, b"x").await;
    }
    let snap = p.stop().await;
    let mut conns: Vec<u64> = snap
        .events
        .iter()
        .filter(|e| matches!(e.action, Action::Delayed { .. }))
        .map(|e| e.conn)
        .collect();
    conns.dedup();
    conns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxicity_0_never_1_always_and_between_reproducibly() {
    assert!(conns_with_latency(0.0, 5, 10).await.is_empty());
    assert_eq!(
        conns_with_latency(1.0, 5, 10).await,
        (1..=10).collect::<Vec<u64>>()
    );
    let half = conns_with_latency(0.5, 5, 20).await;
    assert!(!half.is_empty() && half.len() < 20, "{half:?}");
    assert_eq!(
        conns_with_latency(0.5, 5, 20).await,
        half,
        "same seed, same connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_and_run_time_switches_turn_a_toxic_on_and_off() {
    let echo = echo_server().await;
    // A window already over on the run's clock: never applied.
    let mut past = latency(1, 0);
    past.until_ms = Some(5_000);
    let mut cfg = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), echo, vec![past], 1);
    cfg.origin = Some(Instant::now() - Duration::from_secs(10));
    let p = sse_toxics::Proxy::start_with(cfg).await.unwrap();
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    round_trip(&mut c, b"x").await;
    p.set_enabled("latency_downstream", false).unwrap();
    assert!(p.set_enabled("nope", true).is_err());
    let mut future = latency(1, 0);
    future.name = Some("later".into());
    future.from_ms = 3_600_000;
    p.add_toxic(future).unwrap();
    round_trip(&mut c, b"y").await;
    assert!(
        !p.log()
            .snapshot()
            .events
            .iter()
            .any(|e| matches!(e.action, Action::Delayed { .. }))
    );
    // Switched on at run time (a window open now): applied to the live connection.
    p.set_toxics(vec![latency(1, 0)]).unwrap();
    round_trip(&mut c, b"z").await;
    wait_for_event(&p.log(), |a| matches!(a, Action::Delayed { bytes: 1, .. })).await;
    p.set_enabled("latency_downstream", false).unwrap();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_on_the_live_clock_waits_for_go_live_then_counts_from_it() {
    let echo = echo_server().await;
    // Live from 0 ms after go_live: nothing before it, whatever the origin says.
    let mut lat = latency(1, 0);
    lat.clock = sse_toxics::WindowClock::Live;
    let mut stall = tc(
        Toxic::Timeout(Timeout {
            timeout: 0,
            ..Default::default()
        }),
        Stream::Upstream,
    );
    stall.clock = sse_toxics::WindowClock::Live;
    stall.from_ms = 200;
    let p = proxy(echo, vec![lat, stall], 1).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    round_trip(&mut c, b"before").await;
    assert_eq!(p.live_ms(), None);
    let acted = |s: &sse_toxics::LogSnapshot| s.events.iter().any(|e| e.toxic.is_some());
    assert!(!acted(&p.log().snapshot()), "{:#?}", p.log().snapshot());
    let switch = p.live_switch();
    switch.go_live();
    let live = p.live_ms().expect("went live");
    switch.go_live();
    assert_eq!(p.live_ms(), Some(live), "only the first go_live counts");
    round_trip(&mut c, b"after").await;
    wait_for_event(&p.log(), |a| matches!(a, Action::Delayed { bytes: 5, .. })).await;
    // The stall's edge, 200 ms after going live, wakes the connection by itself.
    let snap = wait_for_event(&p.log(), |a| matches!(a, Action::StallStarted { .. })).await;
    let at = snap
        .events
        .iter()
        .find(|e| matches!(e.action, Action::StallStarted { .. }))
        .unwrap()
        .at_ms;
    assert!(at >= live + 199.0, "stalled at {at} ms, live at {live} ms");
    p.stop().await;
}
