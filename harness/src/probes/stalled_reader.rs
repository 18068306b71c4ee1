//! `stalled-reader`: subscribers behind a dead link must be freed by the server
//! (spine §4.3: a peer that stops reading altogether is a slow consumer, ended and
//! counted once its writes make no progress for the server's write-stall bound).
//!
//! The scenario puts a `timeout` toxic in `hold` mode on the subscriber path
//! (`[[toxics]]`): from its `from_ms` the proxy stops reading both sides of every
//! subscriber connection and passes no close on, as a pulled cable or a NAT that forgot
//! the flow. The probe:
//!
//! 1. reads the active-streams gauge (and the slow-consumer counter, when the profile
//!    names one) as baselines, and opens `clients` streams on one channel;
//! 2. waits (bounded) until the proxy's log says it stalled as many connections, then
//!    cuts its own clients (the proxy holds their upstream half-open: the server sees
//!    nothing);
//! 3. publishes `fill_bytes` of padded events to the channel, more than the buffers
//!    between the server and a dead peer hold (a non-reading socket's receive window
//!    stays near its initial size, and Linux's send buffer is at most
//!    `net.ipv4.tcp_wmem`'s 4 MiB by default), so the server's writes to the stalled
//!    streams stop making progress by the time the last publish is acknowledged;
//! 4. samples the gauge and the counter until the streams are freed (the gauge back to
//!    its baseline, the counter up by `clients`) or until the write-stall bound plus a
//!    slack has passed, and states what the checker (`liveness.stalled-reader-freed`)
//!    needs in `Recording::expect.stalled_reader`.
//!
//! The bound is the server's `write_stall_ms` from `connection_open` (spine v1.1), at
//! most the profile's `[write_stall] max_ms`, or the profile's `[write_stall] ms` when
//! the server announces none.

use std::time::Duration;

use harness_model::{Recording, StalledReaderProbe, StreamKind};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use sse_toxics::Action;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Ctx, RunProbe, wait_opened};
use crate::client::{Cut, Until};
use crate::error::{HarnessError, HarnessErrorKind};
use crate::publisher::{PublishPlan, publish};

/// Characters of padding per published event.
const PAD: usize = 16_000;

/// Concurrent publishers of the fill.
const PUBLISHERS: u32 = 4;

/// How often the proxy's log and the metrics are read while waiting.
const POLL: Duration = Duration::from_millis(100);

/// The probe's parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StalledReader {
    /// How many clients sit behind the dead link.
    pub clients: u32,
    /// Bytes of event data to publish after the stall began (default 16 MiB).
    #[serde(default = "default_fill_bytes")]
    pub fill_bytes: u64,
}

fn default_fill_bytes() -> u64 {
    16 << 20
}

impl StalledReader {
    /// Why the probe cannot run on `profile`: it has no active-streams gauge.
    pub fn unmet(&self, profile: &crate::profile::Profile) -> Option<String> {
        profile
            .metrics
            .is_none()
            .then(|| format!("profile {} has no [metrics] gauge", profile.name))
    }
}

impl RunProbe for StalledReader {
    async fn run(&self, cx: &Ctx, _rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        let target = &cx.target;
        let m = cx.need(target.profile.metrics.as_ref(), "metrics")?;
        let log = target
            .route
            .as_ref()
            .and_then(|r| r.subscriber_log.clone())
            .ok_or_else(|| {
                HarnessError::new(
                    HarnessErrorKind::Usage,
                    "the stalled-reader probe needs a subscriber-path `timeout` toxic in hold mode ([[toxics]])",
                )
            })?;
        let gauge = m.active_streams.clone();
        let counter = m.slow_consumer_closes.clone();
        let baseline = cx.target.gauge(&gauge).await?.ok_or_else(|| {
            HarnessError::new(
                HarnessErrorKind::Target,
                format!("the target's metrics have no gauge {gauge}"),
            )
        })?;
        let counter_baseline = match &counter {
            Some(c) => Some(cx.target.gauge(c).await?.unwrap_or(0.0)),
            None => None,
        };
        let ch = target.channel(&cx.tag, 0).await?;
        let (otx, mut orx) = mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for i in 0..self.clients {
            let mut p = cx.plan(
                &format!("stalled#{i}"),
                StreamKind::Events,
                cx.channel_path(&ch),
                Until::ServerEnds,
            );
            p.cuts.push_back(Cut::Burst);
            tasks.push(cx.spawn(p, Some(otx.clone())));
        }
        wait_opened(&mut orx, self.clients as usize, cx.deadline).await;
        let mut samples = Samples::new(&gauge, counter.as_deref());
        samples.take(cx).await?;
        let stalled = wait_stalled(&log, self.clients, cx.deadline).await;
        samples.take(cx).await?;
        // The clients leave; the proxy holds their upstream connections half-open.
        let _ = cx.burst_tx.send(true);
        let mut rec = Recording {
            transcripts: cx.join(tasks).await,
            ..Recording::default()
        };
        let write_stall_ms = write_stall_ms(cx, &rec)?;
        let heartbeat_ms = heartbeat_ms(cx, &rec);
        let published_bytes = self.fill(cx, &ch).await;
        let filled_us = (published_bytes >= self.fill_bytes).then(|| cx.us());
        if filled_us.is_some() {
            let slack = Duration::from_millis(heartbeat_ms.saturating_mul(2).max(2_000));
            let until =
                (Instant::now() + Duration::from_millis(write_stall_ms) + slack).min(cx.deadline);
            samples
                .until_freed(cx, baseline, counter_baseline, self.clients, until)
                .await?;
        }
        samples.into_recording(&mut rec);
        rec.expect.stalled_reader = Some(StalledReaderProbe {
            gauge,
            baseline,
            counter,
            counter_baseline,
            clients: self.clients,
            stalled,
            fill_bytes: self.fill_bytes,
            published_bytes,
            filled_us,
            write_stall_ms,
            heartbeat_ms,
        });
        Ok(rec)
    }
}

impl StalledReader {
    /// Publishes `fill_bytes` of padded events to `ch`; returns the padding bytes
    /// acknowledged.
    async fn fill(&self, cx: &Ctx, ch: &str) -> u64 {
        let count = self.fill_bytes.div_ceil(PAD as u64);
        let plan = PublishPlan {
            channels: vec![ch.to_owned()],
            count,
            publishers: PUBLISHERS,
            rate: 0,
            every: None,
            batch: 1,
            pad: "x".repeat(PAD),
            event_type: crate::publisher::DEFAULT_EVENT_TYPE.to_owned(),
            tag: format!("{}f", cx.tag),
            shard: crate::shard::ShardSpec::WHOLE,
        };
        let from = cx.ledger.acked();
        publish(
            cx.target.clone(),
            cx.ledger.clone(),
            plan,
            cx.epoch,
            cx.deadline,
        )
        .await;
        cx.ledger.acked_since(from).len() as u64 * PAD as u64
    }
}

/// Waits until the proxy's log has stalled `n` connections (or `deadline`); returns
/// how many it stalled.
async fn wait_stalled(log: &sse_toxics::EventLog, n: u32, deadline: Instant) -> u32 {
    loop {
        let stalled = log
            .snapshot()
            .events
            .iter()
            .filter(|e| matches!(e.action, Action::StallStarted { .. }))
            .count() as u32;
        if stalled >= n || Instant::now() >= deadline {
            return stalled;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The longest announced `write_stall_ms` taken when the profile sets no `max_ms`:
/// one hour. The value comes from the target and is untrusted; like
/// [`harness_model::heartbeat::MAX_MS`], this keeps a huge announcement from
/// overflowing the deadlines computed from it or holding the probe for days.
const WRITE_STALL_CEILING_MS: u64 = 3_600_000;

/// The bound to judge at: the announced `write_stall_ms` (at most the profile's
/// `max_ms`, or [`WRITE_STALL_CEILING_MS`]), else the profile's `ms`.
fn write_stall_ms(cx: &Ctx, rec: &Recording) -> Result<u64, HarnessError> {
    let p = &cx.target.profile.write_stall;
    let announced = super::first_open_fields(rec)
        .and_then(|f| f.get("write_stall_ms"))
        .and_then(serde_json::Value::as_u64);
    match announced {
        Some(a) => Ok(a.min(p.max_ms.unwrap_or(WRITE_STALL_CEILING_MS))),
        None => p.ms.ok_or_else(|| {
            HarnessError::new(
                HarnessErrorKind::Profile,
                format!(
                    "the target announces no write_stall_ms in connection_open and profile {} declares no [write_stall] ms",
                    cx.target.profile.name
                ),
            )
        }),
    }
}

/// The heartbeat interval: announced (clamped like every reader of it does), else
/// the profile's, else the spine's default.
fn heartbeat_ms(cx: &Ctx, rec: &Recording) -> u64 {
    super::first_open_fields(rec)
        .and_then(harness_model::heartbeat::interval_ms)
        .or(cx.target.profile.heartbeat.interval_ms)
        .unwrap_or(15_000)
}

/// The gauge's and the counter's samples (µs since the start, value).
struct Samples {
    gauge: (String, Vec<(u64, f64)>),
    counter: Option<(String, Vec<(u64, f64)>)>,
}

impl Samples {
    fn new(gauge: &str, counter: Option<&str>) -> Samples {
        Samples {
            gauge: (gauge.to_owned(), Vec::new()),
            counter: counter.map(|c| (c.to_owned(), Vec::new())),
        }
    }

    /// Reads both now; returns the values read.
    async fn take(&mut self, cx: &Ctx) -> Result<(f64, Option<f64>), HarnessError> {
        let g = cx.target.gauge(&self.gauge.0).await?.unwrap_or(f64::NAN);
        self.gauge.1.push((cx.us(), g));
        let mut c = None;
        if let Some((name, s)) = &mut self.counter {
            let v = cx.target.gauge(name).await?.unwrap_or(0.0);
            s.push((cx.us(), v));
            c = Some(v);
        }
        Ok((g, c))
    }

    /// Samples until the gauge is back to `baseline` and the counter (if any) has
    /// risen by `clients`, or until `until`.
    async fn until_freed(
        &mut self,
        cx: &Ctx,
        baseline: f64,
        counter_baseline: Option<f64>,
        clients: u32,
        until: Instant,
    ) -> Result<(), HarnessError> {
        loop {
            let (g, c) = self.take(cx).await?;
            let counted = match (c, counter_baseline) {
                (Some(v), Some(c0)) => v >= c0 + f64::from(clients),
                _ => true,
            };
            if (g <= baseline && counted) || Instant::now() >= until {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Puts the samples into the recording's gauges.
    fn into_recording(self, rec: &mut Recording) {
        rec.gauges.insert(self.gauge.0, self.gauge.1);
        if let Some((name, s)) = self.counter {
            rec.gauges.insert(name, s);
        }
    }
}
