//! Fan-out: N subscribers (sse-wire connections with a parser each, all in this
//! process) on one channel, one publishing side posting events that carry their send
//! time; per (event, subscriber) latency = receive time − send time, throughput =
//! deliveries / wall time from the first publish to the last delivery.
//!
//! The offered load is "as fast as acknowledgements allow" on both servers: the spine
//! gets one publisher posting batches of 100 (each ack means the batch is committed
//! with fsync), nchan has no batch publish and gets [`NCHAN_PUBLISHERS`] concurrent
//! publishers posting one message each (keep-alive connections). All events of one
//! spine batch carry the same send time (the moment the request is sent).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use sse_wire::{Item, Parser, ParserConfig};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::wire::{Flavor, NchanHttp, Spine, extract_t, now_ns, open_stream, payload};

/// Events per spine publish request.
pub const SPINE_BATCH: usize = 100;
/// Concurrent publishers for nchan (one message per POST).
pub const NCHAN_PUBLISHERS: usize = 8;

/// One fan-out run's shape.
#[derive(Debug, Clone)]
pub struct FanoutSpec {
    /// Subscribers on the channel.
    pub subscribers: usize,
    /// Events published.
    pub events: u64,
    /// Payload size in bytes.
    pub payload: usize,
    /// Deadline of the whole run.
    pub limit: Duration,
}

/// What one fan-out run measured.
pub struct FanoutOutcome {
    /// (event, subscriber) deliveries seen.
    pub delivered: u64,
    /// events × subscribers.
    pub expected: u64,
    /// Seconds from the first publish to the last delivery.
    pub secs: f64,
    /// Seconds the publishing side took to get every ack.
    pub publish_secs: f64,
    /// Publish → deliver latency in microseconds.
    pub latency_us: Histogram<u64>,
}

/// Runs one fan-out measurement against the server at `base`.
pub async fn run(flavor: Flavor, base: &str, spec: &FanoutSpec) -> anyhow::Result<FanoutOutcome> {
    let deadline = Instant::now() + spec.limit;
    let (path, publisher) = match flavor {
        Flavor::Spine => {
            let spine = Spine::new(base)?;
            let job = spine.create_job().await?;
            (format!("/v1/events?job_id={job}"), Pub::Spine(spine, job))
        }
        Flavor::Nchan => {
            let ch = format!("bench-{}", now_ns());
            (format!("/sub/{ch}"), Pub::Nchan(NchanHttp::new(base)?, ch))
        }
    };
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(spec.subscribers);
    let mut subs = Vec::new();
    for _ in 0..spec.subscribers {
        let resp = open_stream(flavor, base, &path, None).await?;
        subs.push(tokio::spawn(subscriber(
            flavor,
            resp,
            spec.events,
            deadline,
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    for _ in 0..spec.subscribers {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(())) => {}
            Ok(None) => bail!("a subscriber ended before its first frame"),
            Err(_) => bail!("subscribers not ready before the deadline"),
        }
    }
    let start_ns = now_ns();
    let publish_secs = tokio::time::timeout_at(deadline, publisher.publish_all(spec))
        .await
        .context("publishing did not finish before the deadline")??;
    let mut delivered = 0;
    let mut last_ns = start_ns;
    let mut latency_us = new_histogram();
    for s in subs {
        let got = s.await??;
        delivered += got.count;
        last_ns = last_ns.max(got.last_ns);
        latency_us.add(&got.hist)?;
    }
    Ok(FanoutOutcome {
        delivered,
        expected: spec.events * spec.subscribers as u64,
        secs: (last_ns - start_ns) as f64 / 1e9,
        publish_secs,
        latency_us,
    })
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

enum Pub {
    Spine(Spine, String),
    Nchan(NchanHttp, String),
}

impl Pub {
    /// Publishes `spec.events` events; returns the seconds until the last ack.
    async fn publish_all(&self, spec: &FanoutSpec) -> anyhow::Result<f64> {
        let t0 = std::time::Instant::now();
        match self {
            Pub::Spine(spine, job) => {
                let mut sent = 0;
                while sent < spec.events {
                    let n = (spec.events - sent).min(SPINE_BATCH as u64) as usize;
                    let t = now_ns();
                    let batch: Vec<String> = (0..n).map(|_| payload(t, spec.payload)).collect();
                    sent += spine.publish(job, &batch).await?;
                }
            }
            Pub::Nchan(http, ch) => {
                let next = Arc::new(AtomicU64::new(0));
                let mut tasks = Vec::new();
                for _ in 0..NCHAN_PUBLISHERS {
                    let (http, ch, next) = (http.clone(), ch.clone(), next.clone());
                    let (events, size) = (spec.events, spec.payload);
                    tasks.push(tokio::spawn(async move {
                        while next.fetch_add(1, Ordering::Relaxed) < events {
                            http.publish(&ch, payload(now_ns(), size)).await?;
                        }
                        anyhow::Ok(())
                    }));
                }
                for t in tasks {
                    t.await??;
                }
            }
        }
        Ok(t0.elapsed().as_secs_f64())
    }
}

struct SubOutcome {
    count: u64,
    last_ns: u64,
    hist: Histogram<u64>,
}

async fn subscriber(
    flavor: Flavor,
    mut resp: sse_wire::Response,
    expected: u64,
    deadline: Instant,
    ready: mpsc::Sender<()>,
) -> anyhow::Result<SubOutcome> {
    let mut parser = Parser::new(ParserConfig::default());
    let mut items = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut ready = Some(ready);
    let mut out = SubOutcome {
        count: 0,
        last_ns: 0,
        hist: new_histogram(),
    };
    let mut last_seq = 0u64;
    while out.count < expected {
        let n = match tokio::time::timeout_at(deadline, resp.read_body(&mut buf)).await {
            Err(_) => break,
            Ok(r) => r?,
        };
        if n == 0 {
            break;
        }
        let at = now_ns();
        parser.feed(&buf[..n], &mut items);
        if !items.is_empty()
            && let Some(r) = ready.take()
        {
            let _ = r.send(()).await;
        }
        for it in items.drain(..) {
            let Item::Event(ev) = it else { continue };
            if ev.event_type != flavor.data_event() {
                continue;
            }
            let Some(t) = extract_t(&ev.data) else {
                continue; // the job's own job_started event
            };
            if flavor == Flavor::Spine {
                let seq: u64 = ev.id.as_deref().unwrap_or("").parse().unwrap_or(0);
                if seq <= last_seq {
                    bail!("seq {seq} after {last_seq}: out of order");
                }
                last_seq = seq;
            }
            out.count += 1;
            out.last_ns = at;
            out.hist
                .saturating_record((at.saturating_sub(t) / 1000).max(1));
        }
    }
    resp.reset();
    Ok(out)
}
