//! Probes: fixed exchanges that a workload cannot express — a task stream's lifecycle,
//! an unknown job, an idle stream's heartbeats, version streams, malformed and
//! too-high cursors, correlation ids, vanished clients, crashes and graceful
//! shutdowns. Each arranges its situation, records what the clients saw, and states
//! in `Recording::expect` what each client must see, for the checkers to judge.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use harness_model::{ClientId, FrameKind, LivenessProbe, Recording, StreamKind, Transcript};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::client::{self, ClientPlan, Cut, Signals, Until};
use crate::control::ServerControl;
use crate::error::{HarnessError, HarnessErrorKind};
use crate::ledger::Ledger;
use crate::profile::fill;
use crate::publisher::{PublishPlan, publish};
use crate::scenario::{Probe, Scenario};
use crate::target::{Target, encode_segment};

impl Probe {
    /// Whether the probe must kill and restart the target.
    pub fn needs_control(&self) -> bool {
        matches!(
            self,
            Probe::CrashRestart { .. } | Probe::GracefulShutdown { .. }
        )
    }
}

struct Ctx {
    target: Arc<Target>,
    epoch: Instant,
    deadline: Instant,
    ledger: Arc<Ledger>,
    published_tx: watch::Sender<bool>,
    stop_tx: watch::Sender<bool>,
    burst_tx: watch::Sender<bool>,
}

impl Ctx {
    fn plan(&self, id: &str, stream: StreamKind, path: String, until: Until) -> ClientPlan {
        ClientPlan {
            id: ClientId(id.to_owned()),
            stream,
            path,
            channels: Vec::new(),
            initial_cursor: None,
            from_start: true,
            cursor_query: None,
            correlation: None,
            bytes_per_sec: 0,
            slow_for: Duration::ZERO,
            rcvbuf: None,
            pause_after_events: 0,
            pause: Duration::ZERO,
            cuts: VecDeque::new(),
            cut_gap: Duration::ZERO,
            reset: false,
            until,
            reconnect: false,
            deadline: self.deadline,
            strict: self.target.profile.strict,
        }
    }

    fn signals(&self, opened: Option<mpsc::UnboundedSender<ClientId>>) -> Signals {
        Signals {
            published: self.published_tx.subscribe(),
            burst: self.burst_tx.subscribe(),
            opened,
            stop: self.stop_tx.subscribe(),
        }
    }

    async fn client(&self, plan: ClientPlan) -> Transcript {
        client::run(
            self.target.clone(),
            self.ledger.clone(),
            plan,
            self.signals(None),
            self.epoch,
        )
        .await
    }

    fn spawn(
        &self,
        plan: ClientPlan,
        opened: Option<mpsc::UnboundedSender<ClientId>>,
    ) -> crate::tasks::Scoped<Transcript> {
        crate::tasks::spawn(client::run(
            self.target.clone(),
            self.ledger.clone(),
            plan,
            self.signals(opened),
            self.epoch,
        ))
    }

    fn channel_path(&self, ch: &str) -> String {
        fill(
            &self.target.profile.subscribe.path,
            &[("channel", &encode_segment(ch))],
        )
    }

    fn us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    async fn join(&self, tasks: Vec<crate::tasks::Scoped<Transcript>>) -> Vec<Transcript> {
        let mut out = Vec::new();
        for t in tasks {
            if let Ok(Ok(tr)) =
                tokio::time::timeout_at(self.deadline + Duration::from_secs(5), t).await
            {
                out.push(tr);
            }
        }
        out
    }
}

fn need<'a, T>(x: Option<&'a T>, what: &str, target: &Target) -> Result<&'a T, HarnessError> {
    x.ok_or_else(|| {
        HarnessError::new(
            HarnessErrorKind::Profile,
            format!("profile {} has no [{what}] section", target.profile.name),
        )
    })
}

/// Runs one probe and returns its recording.
pub async fn run(
    target: Arc<Target>,
    control: Option<Arc<dyn ServerControl>>,
    sc: &Scenario,
    probe: &Probe,
    rng: &mut ChaCha8Rng,
    tag: &str,
) -> Result<Recording, HarnessError> {
    let epoch = Instant::now();
    let (published_tx, _) = watch::channel(false);
    let (stop_tx, _) = watch::channel(false);
    let (burst_tx, _) = watch::channel(false);
    let cx = Ctx {
        burst_tx,
        target: target.clone(),
        epoch,
        deadline: epoch + Duration::from_secs(sc.deadline_s),
        ledger: Arc::new(Ledger::default()),
        published_tx,
        stop_tx,
    };
    let mut rec = Recording::default();
    match probe {
        Probe::TaskLifecycle {
            steps,
            interval_ms,
            fail_at_step,
            after_end,
            artifact_bytes,
        } => {
            let task = need(target.profile.task.as_ref(), "task", &target)?;
            let body = json!({"steps": steps, "interval_ms": interval_ms,
                "fail_at_step": fail_at_step, "artifact_bytes": artifact_bytes});
            let job = target
                .create(&task.create, Some(body.to_string()), "job")
                .await?;
            let path = fill(&task.path, &[("job", &encode_segment(&job))]);
            let reason = if fail_at_step.is_some() {
                "task_failed"
            } else {
                "task_completed"
            };
            let mut first = cx.plan("task#0", StreamKind::Task, path.clone(), Until::ServerEnds);
            first.channels = vec![job.clone()];
            let t0 = cx.client(first).await;
            rec.expect
                .task_terminal
                .insert(t0.client.clone(), reason.into());
            if *after_end {
                // Resume at the terminal event: the stream must close at once with the reason.
                let last = t0
                    .connections
                    .iter()
                    .flat_map(|c| &c.frames)
                    .filter(|f| matches!(f.kind, FrameKind::Data(_)))
                    .filter_map(|f| f.id.clone())
                    .next_back();
                let mut again =
                    cx.plan("task-resumed#0", StreamKind::Task, path, Until::ServerEnds);
                again.initial_cursor = last;
                again.from_start = false;
                again.channels = vec![job];
                let t1 = cx.client(again).await;
                rec.expect
                    .task_terminal
                    .insert(t1.client.clone(), reason.into());
                rec.transcripts.push(t1);
            }
            rec.transcripts.insert(0, t0);
        }
        Probe::TaskNotFound => {
            let task = need(target.profile.task.as_ref(), "task", &target)?;
            let path = fill(&task.path, &[("job", &format!("no-such-job-{tag}"))]);
            let t = cx
                .client(cx.plan("missing#0", StreamKind::Task, path, Until::ServerEnds))
                .await;
            rec.expect.task_not_found.push(t.client.clone());
            rec.transcripts.push(t);
        }
        Probe::HeartbeatIdle { heartbeats, stream } => {
            let count = u64::from(*heartbeats);
            let until = Until::Frames {
                kind: "heartbeat",
                count,
            };
            let (kind, path) = match stream.as_str() {
                "task" => {
                    let task = need(target.profile.task.as_ref(), "task", &target)?;
                    // A job that waits an hour before its first step: an idle task stream.
                    let body = json!({"steps": 1, "interval_ms": 3_600_000});
                    let job = target
                        .create(&task.create, Some(body.to_string()), "job")
                        .await?;
                    (
                        StreamKind::Task,
                        fill(&task.path, &[("job", &encode_segment(&job))]),
                    )
                }
                "version" => {
                    let v = need(target.profile.version.as_ref(), "version", &target)?;
                    (
                        StreamKind::Version,
                        fill(&v.stream_path, &[("rid", &format!("idle-{tag}"))]),
                    )
                }
                _ => {
                    // A channel nobody publishes to.
                    let ch = target.channel(tag, 0).await?;
                    (StreamKind::Events, cx.channel_path(&ch))
                }
            };
            let t = cx.client(cx.plan("idle#0", kind, path, until)).await;
            rec.expect.idle.push(t.client.clone());
            rec.transcripts.push(t);
        }
        Probe::VersionPending { versions } => {
            let v = need(target.profile.version.as_ref(), "version", &target)?;
            let rid = format!("pending-{tag}");
            for ver in versions {
                notify(&target, &v.notify_path, &rid, ver).await?;
            }
            let path = fill(&v.stream_path, &[("rid", &encode_segment(&rid))]);
            let until = Until::Frames {
                kind: "version",
                count: versions.len() as u64,
            };
            let mut t = cx
                .client(cx.plan("version#0", StreamKind::Version, path, until))
                .await;
            t.jobs = vec![rid];
            rec.expect
                .versions
                .insert(t.client.clone(), versions.clone());
            rec.transcripts.push(t);
        }
        Probe::VersionReplace => {
            let v = need(target.profile.version.as_ref(), "version", &target)?;
            let rid = format!("replace-{tag}");
            let path = fill(&v.stream_path, &[("rid", &encode_segment(&rid))]);
            let (otx, mut orx) = mpsc::unbounded_channel();
            let first = cx.spawn(
                cx.plan(
                    "version-old#0",
                    StreamKind::Version,
                    path.clone(),
                    Until::ServerEnds,
                ),
                Some(otx.clone()),
            );
            wait_opened(&mut orx, 1, cx.deadline).await;
            let second = cx.spawn(
                cx.plan(
                    "version-new#0",
                    StreamKind::Version,
                    path,
                    Until::Frames {
                        kind: "version",
                        count: 2,
                    },
                ),
                Some(otx),
            );
            wait_opened(&mut orx, 1, cx.deadline).await;
            // The old stream must be gone before the notification (it was replaced).
            let old = cx.join(vec![first]).await;
            notify(&target, &v.notify_path, &rid, "2.0.0-after-replace").await?;
            let new = cx.join(vec![second]).await;
            for t in &old {
                rec.expect.replaced.push(t.client.clone());
                rec.expect
                    .versions
                    .insert(t.client.clone(), vec!["*".into()]);
            }
            for t in &new {
                rec.expect.versions.insert(
                    t.client.clone(),
                    vec!["*".into(), "2.0.0-after-replace".into()],
                );
            }
            rec.transcripts.extend(old);
            rec.transcripts.extend(new);
        }
        Probe::InvalidCursor { cursors } => {
            let ch = target.channel(tag, 0).await?;
            for (i, c) in cursors.iter().enumerate() {
                let mut p = cx.plan(
                    &format!("bad-cursor#{i}"),
                    StreamKind::Events,
                    cx.channel_path(&ch),
                    Until::ServerEnds,
                );
                p.initial_cursor = Some(c.clone());
                p.from_start = false;
                // Every other one goes in the query parameter, when the profile has one.
                if i % 2 == 1 {
                    p.cursor_query = target.profile.subscribe.cursor_query.clone();
                }
                p.deadline =
                    Instant::now() + Duration::from_secs(10).min(cx.deadline - Instant::now());
                let t = cx.client(p).await;
                rec.expect.invalid_cursor.push(t.client.clone());
                rec.transcripts.push(t);
            }
        }
        Probe::CursorAhead => {
            let head = target.head_seq().await?.unwrap_or(0);
            let ch = target.channel(tag, 0).await?;
            let mut p = cx.plan(
                "ahead#0",
                StreamKind::Events,
                cx.channel_path(&ch),
                Until::ServerEnds,
            );
            p.initial_cursor = Some(head.saturating_add(1_000_000).to_string());
            p.from_start = false;
            let t = cx.client(p).await;
            rec.expect.cursor_ahead.push(t.client.clone());
            rec.transcripts.push(t);
        }
        Probe::CorrelationId => {
            let task = need(target.profile.task.as_ref(), "task", &target)?;
            let body = json!({"steps": 3, "interval_ms": 20});
            let job = target
                .create(&task.create, Some(body.to_string()), "job")
                .await?;
            let path = fill(&task.path, &[("job", &encode_segment(&job))]);
            let mut with = cx.plan(
                "correlated#0",
                StreamKind::Task,
                path.clone(),
                Until::ServerEnds,
            );
            with.correlation = Some(format!("corr-{tag}"));
            let a = cx.spawn(with, None);
            let b = cx.spawn(
                cx.plan("uncorrelated#0", StreamKind::Task, path, Until::ServerEnds),
                None,
            );
            rec.transcripts = cx.join(vec![a, b]).await;
            for t in &rec.transcripts {
                rec.expect
                    .task_terminal
                    .insert(t.client.clone(), "task_completed".into());
            }
        }
        Probe::Liveness { clients, reset } => {
            let m = need(target.profile.metrics.as_ref(), "metrics", &target)?;
            let gauge = m.active_streams.clone();
            let baseline = target.gauge(&gauge).await?.ok_or_else(|| {
                HarnessError::new(
                    HarnessErrorKind::Target,
                    format!("the target's metrics have no gauge {gauge}"),
                )
            })?;
            let ch = target.channel(tag, 0).await?;
            let (otx, mut orx) = mpsc::unbounded_channel();
            let mut tasks = Vec::new();
            for i in 0..*clients {
                let mut p = cx.plan(
                    &format!("vanishing#{i}"),
                    StreamKind::Events,
                    cx.channel_path(&ch),
                    Until::ServerEnds,
                );
                p.cuts.push_back(Cut::Burst);
                p.reset = *reset;
                tasks.push(cx.spawn(p, Some(otx.clone())));
            }
            wait_opened(&mut orx, *clients as usize, cx.deadline).await;
            let mut samples = vec![(cx.us(), target.gauge(&gauge).await?.unwrap_or(f64::NAN))];
            // Cut every client at once, then watch the gauge.
            let _ = cx.burst_tx.send(true);
            rec.transcripts = cx.join(tasks).await;
            let disconnected_us = cx.us();
            let heartbeat_ms = rec
                .transcripts
                .iter()
                .flat_map(|t| &t.connections)
                .flat_map(|c| &c.frames)
                .find_map(|f| match &f.kind {
                    FrameKind::Lifecycle { name, fields } if name == "connection_open" => {
                        fields.get("heartbeat_ms").and_then(|v| v.as_u64())
                    }
                    _ => None,
                })
                .or(target.profile.heartbeat.interval_ms)
                .map_or(15_000, |ms| target.limits.heartbeat_ms(ms));
            let until =
                Instant::now() + Duration::from_millis(heartbeat_ms.saturating_mul(3) + 1000);
            loop {
                let v = target.gauge(&gauge).await?.unwrap_or(f64::NAN);
                samples.push((cx.us(), v));
                if v <= baseline || Instant::now() >= until {
                    break;
                }
                tokio::time::sleep(Duration::from_millis((heartbeat_ms / 10).clamp(10, 200))).await;
            }
            rec.gauges.insert(gauge.clone(), samples);
            rec.expect.liveness = Some(LivenessProbe {
                gauge,
                baseline,
                disconnected_us,
                heartbeat_ms,
            });
        }
        Probe::CrashRestart {
            cycles,
            events_per_cycle,
            clients,
        } => {
            let control = control.ok_or_else(|| {
                HarnessError::new(HarnessErrorKind::Usage, "crash-restart needs --server-cmd")
            })?;
            rec = crash_restart(
                &cx,
                &*control,
                *cycles,
                *events_per_cycle,
                *clients,
                rng,
                tag,
            )
            .await?;
        }
        Probe::GracefulShutdown { clients, events } => {
            let control = control.ok_or_else(|| {
                HarnessError::new(
                    HarnessErrorKind::Usage,
                    "graceful-shutdown needs --server-cmd",
                )
            })?;
            rec = graceful(&cx, &*control, *clients, *events, tag).await?;
        }
    }
    let (acks, failures) = cx.ledger.take();
    rec.acks.extend(acks);
    if !probe.needs_control() {
        rec.publish_failures.extend(failures);
    }
    Ok(rec)
}

async fn wait_opened(rx: &mut mpsc::UnboundedReceiver<ClientId>, n: usize, deadline: Instant) {
    for _ in 0..n {
        if tokio::time::timeout_at(deadline, rx.recv()).await.is_err() {
            return;
        }
    }
}

async fn notify(target: &Target, path: &str, rid: &str, version: &str) -> Result<(), HarnessError> {
    let body = json!({"request_id": rid, "version": version, "environment": "test", "git_commit": "0000000"});
    let a = target
        .request(
            "POST",
            path,
            Some(body.to_string()),
            &[("Content-Type".into(), "application/json".into())],
        )
        .await?;
    if a.status != 202 {
        return Err(HarnessError::new(
            HarnessErrorKind::Target,
            format!("POST {path} answered {}: {}", a.status, a.body),
        ));
    }
    Ok(())
}

/// A fresh channel and `n` subscribers of it that resume across restarts until they
/// have every write, connected before this returns.
async fn survivors(
    cx: &Ctx,
    n: u32,
    tag: &str,
) -> Result<(String, Vec<crate::tasks::Scoped<Transcript>>), HarnessError> {
    let ch = cx.target.channel(tag, 0).await?;
    let (otx, mut orx) = mpsc::unbounded_channel();
    let tasks = (0..n)
        .map(|i| {
            let mut p = cx.plan(
                &format!("survivor#{i}"),
                StreamKind::Events,
                cx.channel_path(&ch),
                Until::CaughtUp,
            );
            p.channels = vec![ch.clone()];
            p.reconnect = true;
            cx.spawn(p, Some(otx.clone()))
        })
        .collect();
    wait_opened(&mut orx, n as usize, cx.deadline).await;
    Ok((ch, tasks))
}

async fn crash_restart(
    cx: &Ctx,
    control: &dyn ServerControl,
    cycles: u32,
    per_cycle: u64,
    clients: u32,
    rng: &mut ChaCha8Rng,
    tag: &str,
) -> Result<Recording, HarnessError> {
    let target = &cx.target;
    let (ch, tasks) = survivors(cx, clients, tag).await?;
    let mut restarts = Vec::new();
    for cycle in 0..cycles {
        let plan = PublishPlan {
            channels: vec![ch.clone()],
            count: per_cycle,
            publishers: 2,
            rate: 0,
            batch: 10,
            pad: String::new(),
            tag: format!("{tag}c{cycle}"),
        };
        // A short job with an artifact each cycle, so receipts are written while crashes happen.
        if let Some(task) = &target.profile.task {
            let body = json!({"steps": 2, "interval_ms": 5, "artifact_bytes": 2048});
            target
                .create(&task.create, Some(body.to_string()), "job")
                .await?;
        }
        let before = cx.ledger.acked();
        let burst = crate::tasks::spawn(publish(
            target.clone(),
            cx.ledger.clone(),
            plan,
            cx.epoch,
            cx.deadline,
        ));
        // Kill mid-burst: once a random share of the cycle's writes is acknowledged.
        let share = rng.random_range(1..=per_cycle.max(1)) as usize;
        let wait_until = Instant::now() + Duration::from_secs(10);
        while cx.ledger.acked() < before + share
            && Instant::now() < wait_until
            && !burst.is_finished()
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        restarts.push(cx.us());
        control.kill()?;
        let _ = burst.await;
        control.start()?;
        target.wait_until_up(Duration::from_secs(20)).await?;
    }
    let _ = cx.published_tx.send(true);
    let transcripts = cx.join(tasks).await;
    if let Some(task) = &target.profile.task {
        // One last job after the last restart (jobs still running have no receipt yet:
        // the integrity report covers the completed ones).
        let body = json!({"steps": 1, "interval_ms": 0, "artifact_bytes": 1024});
        target
            .create(&task.create, Some(body.to_string()), "job")
            .await?;
    }
    let mut rec = Recording {
        transcripts,
        restarts,
        ..Recording::default()
    };
    if target.profile.name == "spine" || target.profile.has("durability") {
        let a = target
            .request("GET", "/v1/diagnostics/integrity", None, &[])
            .await?;
        rec.integrity = Some(a.json());
    }
    Ok(rec)
}

async fn graceful(
    cx: &Ctx,
    control: &dyn ServerControl,
    clients: u32,
    events: u64,
    tag: &str,
) -> Result<Recording, HarnessError> {
    let target = &cx.target;
    let (ch, tasks) = survivors(cx, clients, tag).await?;
    let plan = |n: u64, t: String| PublishPlan {
        channels: vec![ch.clone()],
        count: n,
        publishers: 1,
        rate: 0,
        batch: 10,
        pad: String::new(),
        tag: t,
    };
    publish(
        target.clone(),
        cx.ledger.clone(),
        plan(events, format!("{tag}a")),
        cx.epoch,
        cx.deadline,
    )
    .await;
    let restart = cx.us();
    control.terminate()?;
    control.start()?;
    target.wait_until_up(Duration::from_secs(20)).await?;
    publish(
        target.clone(),
        cx.ledger.clone(),
        plan(events, format!("{tag}b")),
        cx.epoch,
        cx.deadline,
    )
    .await;
    let _ = cx.published_tx.send(true);
    let transcripts = cx.join(tasks).await;
    let mut rec = Recording {
        restarts: vec![restart],
        ..Recording::default()
    };
    rec.expect.shutdown = transcripts.iter().map(|t| t.client.clone()).collect();
    rec.transcripts = transcripts;
    Ok(rec)
}
