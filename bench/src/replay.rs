//! Replay and harness drain over one big job log on the reference server.
//!
//! - Replay: a client resumes from 0 (`Last-Event-ID: 0`) on `/v1/events?job_id=<id>`
//!   and counts events (sse-wire + parser) until it has all of them.
//! - Harness drain: the same stream read two ways: (a) a raw tokio `TcpStream` that
//!   only counts bytes up to the known total, (b) the harness's own client
//!   (`sse_harness::client::run`, the code every scenario's subscribers run) with the
//!   spine profile, until it has recorded every data event: sse-wire `read_body`, the
//!   parser, the caps, `classify` (seq, job, marker, the content-fidelity digest) and
//!   the recorded frame of each event. The seq order of what it recorded is checked
//!   afterwards, untimed (the harness checks it after the run too).
//!
//! The raw reader's byte total is learnt once, untimed, by a calibration read that
//! looks for the last event's `id:` line; the stream's bytes are the same on every
//! connection because the bench sends a fixed `X-Correlation-ID`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use harness_model::{FrameKind, Seq};
use sse_harness::client::{self, Counted, Signals, Until};
use sse_harness::ledger::Ledger;
use sse_wire::{Item, Parser, ParserConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::procs::TOKEN;
use super::wire::{CORRELATION, Flavor, Spine, harness_plan, harness_target, open_stream, payload};

/// Events per build request.
const BUILD_BATCH: usize = 1000;
/// Concurrent publishers while building the log.
const BUILD_PUBLISHERS: usize = 4;
/// Payload size of the log's events.
const PAYLOAD: usize = 64;
/// Deadline of one pass over the log.
const PASS_LIMIT: Duration = Duration::from_secs(180);
/// Read buffer of the replay reader (the harness client's largest read).
const HARNESS_BUF: usize = 16 * 1024;
/// Read buffer of the raw reader.
const RAW_BUF: usize = 64 * 1024;

/// A job whose log has been built, and what a full replay of it must deliver.
pub struct Log {
    /// The job.
    pub job: String,
    /// Events in the job's log (the published ones plus `job_started`).
    pub events: u64,
    /// The last seq.
    pub last_seq: u64,
    /// Seconds the build took.
    pub build_secs: f64,
    /// Raw bytes of the stream up to the end of the last event (learnt by [`calibrate`]).
    pub raw_bytes: u64,
}

/// Publishes `events` events into a fresh job (batches of 1000, 4 publishers).
pub async fn build(spine: &Spine, events: u64) -> anyhow::Result<Log> {
    let job = spine.create_job().await?;
    let batches = events.div_ceil(BUILD_BATCH as u64);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..BUILD_PUBLISHERS {
        let (spine, job, next) = (spine.clone(), job.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return anyhow::Ok(());
                }
                let n = (events - b * BUILD_BATCH as u64).min(BUILD_BATCH as u64);
                let items: Vec<String> = (0..n).map(|i| payload(b * 1000 + i, PAYLOAD)).collect();
                spine.publish(&job, &items).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let build_secs = start.elapsed().as_secs_f64();
    let (count, last_seq) = spine.job_counts(&job).await?;
    let mut log = Log {
        job,
        events: count,
        last_seq,
        build_secs,
        raw_bytes: 0,
    };
    log.raw_bytes = calibrate(&spine.base, &log).await?;
    Ok(log)
}

fn path(log: &Log) -> String {
    format!("/v1/events?job_id={}", log.job)
}

/// Replay: events/s of a client that resumes from 0 and parses (no classification).
pub async fn replay(base: &str, log: &Log) -> anyhow::Result<f64> {
    let start = Instant::now();
    let fut = async {
        let mut resp = open_stream(Flavor::Spine, base, &path(log), Some("0")).await?;
        let mut parser = Parser::new(ParserConfig::default());
        let mut items = Vec::new();
        let mut buf = vec![0u8; HARNESS_BUF];
        let mut count = 0u64;
        while count < log.events {
            let n = resp.read_body(&mut buf).await?;
            if n == 0 {
                bail!("stream ended after {count} of {} events", log.events);
            }
            parser.feed(&buf[..n], &mut items);
            for it in items.drain(..) {
                if matches!(&it, Item::Event(ev) if ev.id.is_some()) {
                    count += 1; // not the lifecycle frames
                }
            }
        }
        resp.reset();
        anyhow::Ok(())
    };
    tokio::time::timeout(PASS_LIMIT, fut)
        .await
        .context("replay pass over its deadline")??;
    Ok(log.events as f64 / start.elapsed().as_secs_f64())
}

/// Harness drain: events/s of the harness client (`client::run`) recording the log.
pub async fn harness(base: &str, log: &Log) -> anyhow::Result<f64> {
    let mut target = harness_target(base)?;
    // The caps bound what one scenario records; this pass records the whole log.
    target.limits.frames_per_conn = target.limits.frames_per_conn.max(log.events as usize + 16);
    target.limits.scenario_bytes = u64::MAX;
    let until = Until::Frames {
        kind: Counted::Data,
        count: log.events,
    };
    let deadline = tokio::time::Instant::now() + PASS_LIMIT;
    let plan = harness_plan("drain", path(log), Some("0"), until, deadline);
    let (_published_tx, published) = watch::channel(true);
    let (_burst_tx, burst) = watch::channel(false);
    let (_stop_tx, stop) = watch::channel(false);
    let sig = Signals {
        published,
        burst,
        opened: None,
        stop,
    };
    let start = Instant::now();
    let epoch = tokio::time::Instant::now();
    let transcript = client::run(
        Arc::new(target),
        Arc::new(Ledger::default()),
        plan,
        sig,
        epoch,
    )
    .await;
    let rate = log.events as f64 / start.elapsed().as_secs_f64();
    // Untimed: every data event arrived, in seq order.
    let mut last = 0u64;
    let mut count = 0u64;
    for conn in &transcript.connections {
        for f in &conn.frames {
            match &f.kind {
                FrameKind::Data(d) => match d.seq {
                    Some(Seq(s)) if s > last => last = s,
                    other => bail!("seq {other:?} after {last}"),
                },
                FrameKind::Lifecycle { .. } | FrameKind::Heartbeat { .. } => continue,
                other => bail!("not a data frame: {other:?}"),
            }
            count += 1;
        }
    }
    if count != log.events {
        let ends: Vec<_> = transcript.connections.iter().map(|c| &c.end).collect();
        bail!(
            "the harness client recorded {count} of {} events ({ends:?})",
            log.events
        );
    }
    Ok(rate)
}

async fn raw_connect(base: &str, log: &Log) -> anyhow::Result<TcpStream> {
    let addr = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("{base}: not http://"))?;
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {TOKEN}\r\nX-Correlation-ID: {CORRELATION}\r\n\
         Last-Event-ID: 0\r\nConnection: close\r\n\r\n",
        path(log)
    );
    s.write_all(req.as_bytes()).await?;
    Ok(s)
}

/// Untimed: reads the raw stream until the end of the frame with the last seq and
/// returns how many bytes that is.
async fn calibrate(base: &str, log: &Log) -> anyhow::Result<u64> {
    let fut = async {
        let mut s = raw_connect(base, log).await?;
        let pat = format!("\nid: {}\n", log.last_seq).into_bytes();
        let finder = memchr::memmem::Finder::new(&pat);
        let mut window: Vec<u8> = Vec::new();
        let mut window_start = 0u64; // absolute offset of window[0]
        let mut found: Option<usize> = None; // index in window of the pattern
        let mut buf = vec![0u8; RAW_BUF];
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                bail!("stream ended before seq {}", log.last_seq);
            }
            window.extend_from_slice(&buf[..n]);
            if found.is_none() {
                found = finder.find(&window);
            }
            if let Some(p) = found {
                if let Some(e) = memchr::memmem::find(&window[p + 1..], b"\n\n") {
                    return anyhow::Ok(window_start + (p + 1 + e + 2) as u64);
                }
            } else if window.len() > pat.len() {
                let keep = pat.len() - 1;
                let drop = window.len() - keep;
                window.drain(..drop);
                window_start += drop as u64;
            }
        }
    };
    tokio::time::timeout(PASS_LIMIT, fut)
        .await
        .context("calibration read over its deadline")?
}

/// Raw reader: events/s when the stream's bytes are only counted.
pub async fn raw(base: &str, log: &Log) -> anyhow::Result<f64> {
    let start = Instant::now();
    let fut = async {
        let mut s = raw_connect(base, log).await?;
        let mut buf = vec![0u8; RAW_BUF];
        let mut total = 0u64;
        while total < log.raw_bytes {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                bail!("stream ended after {total} of {} bytes", log.raw_bytes);
            }
            total += n as u64;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(PASS_LIMIT, fut)
        .await
        .context("raw pass over its deadline")??;
    Ok(log.events as f64 / start.elapsed().as_secs_f64())
}
