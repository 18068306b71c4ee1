//! Fan-out: N subscribers (sse-wire connections with a parser each, all in this
//! process) on one channel, one publishing side posting events that carry their send
//! time; per (event, subscriber) latency = receive time − send time, throughput =
//! deliveries / wall time from the first publish to the last delivery.
//!
//! Two offered loads ([`Load`]): the like-for-like one, the same for every server
//! (one event per POST at a fixed offered rate over a fixed number of connections,
//! see [`crate::paced`]), and the spine's own batch publishing as fast as its
//! acknowledgements allow (nchan has no batch publish, so that row is the reference
//! server's only). All events of one spine batch carry the same send time (the moment
//! the request is sent).

use std::time::Duration;

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use sse_wire::{Item, Parser, ParserConfig};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::paced::{self, Schedule, Sink};
use super::wire::{Flavor, Spine, extract_t, now_ns, open_stream, payload};

/// Events per spine publish request in [`Load::Batch`].
pub const SPINE_BATCH: usize = 100;

/// How the events of a fan-out run are offered.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// One publisher posting batches of [`SPINE_BATCH`], each after the previous ack
    /// (the spine only).
    Batch,
    /// One event per POST at `rate` events/s over `connections` keep-alive connections.
    Paced {
        /// Events per second offered.
        rate: f64,
        /// Keep-alive publishing connections.
        connections: usize,
    },
}

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
    /// How the events are offered.
    pub load: Load,
}

/// What one fan-out run measured.
pub struct FanoutOutcome {
    /// (event, subscriber) deliveries seen.
    pub delivered: u64,
    /// events × subscribers.
    pub expected: u64,
    /// Seconds from the first publish to the last delivery.
    pub secs: f64,
    /// Events acknowledged per second on the publishing side.
    pub acked_rate: f64,
    /// Publish → deliver latency in microseconds.
    pub latency_us: Histogram<u64>,
}

/// Runs one fan-out measurement against the server at `base`.
pub async fn run(flavor: Flavor, base: &str, spec: &FanoutSpec) -> anyhow::Result<FanoutOutcome> {
    let deadline = Instant::now() + spec.limit;
    let (path, publisher) = match (flavor, spec.load) {
        (Flavor::Spine, load) => {
            let spine = Spine::new(base)?;
            let job = spine.create_job().await?;
            let path = format!("/v1/events?job_id={job}");
            let publisher = match load {
                Load::Batch => Pub::Batch(spine, job),
                Load::Paced { .. } => Pub::Paced(Sink::Spine {
                    base: base.to_owned(),
                    job,
                }),
            };
            (path, publisher)
        }
        (Flavor::Nchan, Load::Paced { .. }) => {
            let channel = format!("bench-{}", now_ns());
            let sink = Sink::Nchan {
                base: base.to_owned(),
                channel: channel.clone(),
            };
            (format!("/sub/{channel}"), Pub::Paced(sink))
        }
        (Flavor::Nchan, Load::Batch) => bail!("nchan has no batch publish"),
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
    let acked_rate = tokio::time::timeout_at(deadline, publisher.publish_all(spec, deadline))
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
        acked_rate,
        latency_us,
    })
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

enum Pub {
    Batch(Spine, String),
    Paced(Sink),
}

impl Pub {
    /// Publishes `spec.events` events; returns the acknowledged events per second.
    async fn publish_all(&self, spec: &FanoutSpec, deadline: Instant) -> anyhow::Result<f64> {
        match (self, spec.load) {
            (Pub::Batch(spine, job), _) => {
                let t0 = std::time::Instant::now();
                let mut sent = 0;
                while sent < spec.events {
                    let n = (spec.events - sent).min(SPINE_BATCH as u64) as usize;
                    let t = now_ns();
                    let batch: Vec<String> = (0..n).map(|_| payload(t, spec.payload)).collect();
                    sent += spine.publish(job, &batch).await?;
                }
                Ok(spec.events as f64 / t0.elapsed().as_secs_f64().max(1e-9))
            }
            (Pub::Paced(sink), Load::Paced { rate, connections }) => {
                let schedule = Schedule {
                    rate,
                    events: spec.events,
                    connections,
                    payload: spec.payload,
                };
                Ok(paced::publish(sink, schedule, deadline).await?.acked_rate)
            }
            (Pub::Paced(_), Load::Batch) => bail!("a paced publisher given a batch load"),
        }
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
