//! Probes: fixed exchanges that a workload cannot express — a task stream's lifecycle,
//! an unknown job, an idle stream's heartbeats, version streams, malformed and
//! too-high cursors, resumes from ids the server cannot place, correlation ids,
//! vanished clients, subscribers behind a dead link, crashes and graceful shutdowns. Each arranges its situation, records what the clients saw, and states
//! in `Recording::expect` what each client must see, for the checkers to judge.
//!
//! One file per probe kind, each implementing [`RunProbe`]; [`Probe`] is the registry
//! by name: a scenario's `[probe] kind = "…"` picks the variant (serde's tag), so an
//! unknown kind is a load-time error listing the known ones. A new probe is a new file
//! here and one variant below.

mod correlation_id;
mod crash_restart;
mod cursor_ahead;
mod graceful_shutdown;
mod heartbeat_idle;
mod invalid_cursor;
mod liveness;
mod resume_id;
mod stalled_reader;
mod task_lifecycle;
mod task_not_found;
mod version_pending;
mod version_replace;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use harness_model::{
    ClientId, FrameKind, JobReadBack, ReceiptRead, Recording, ScenarioPlan, StreamKind, Transcript,
};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::client::{self, ClientPlan, Signals, Until};
use crate::control::ServerControl;
use crate::error::{HarnessError, HarnessErrorKind};
use crate::ledger::Ledger;
use crate::profile::{JobSpec, Method, fill};
use crate::target::{Target, encode_segment};

pub use correlation_id::CorrelationId;
pub use crash_restart::CrashRestart;
pub use cursor_ahead::CursorAhead;
pub use graceful_shutdown::GracefulShutdown;
pub use heartbeat_idle::{HeartbeatIdle, IdleStream};
pub use invalid_cursor::InvalidCursor;
pub use liveness::Liveness;
pub use resume_id::ResumeId;
pub use stalled_reader::StalledReader;
pub use task_lifecycle::TaskLifecycle;
pub use task_not_found::TaskNotFound;
pub use version_pending::VersionPending;
pub use version_replace::VersionReplace;

/// A fixed exchange, judged by the scenario's families: the registry of probe kinds.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Probe {
    /// A job on its task stream: progress, terminal, close.
    TaskLifecycle(TaskLifecycle),
    /// The task stream of a job that does not exist.
    TaskNotFound(TaskNotFound),
    /// An idle stream for some heartbeat intervals.
    HeartbeatIdle(HeartbeatIdle),
    /// Versions queued before the stream opens arrive in order.
    VersionPending(VersionPending),
    /// A second stream for the same request id replaces the first.
    VersionReplace(VersionReplace),
    /// Malformed cursors get an error.
    InvalidCursor(InvalidCursor),
    /// A cursor above the head gets error + close.
    CursorAhead(CursorAhead),
    /// X-Correlation-ID is echoed in every frame.
    CorrelationId(CorrelationId),
    /// Clients that vanish are noticed.
    Liveness(Liveness),
    /// Kill the target mid-burst and restart it, over and over.
    CrashRestart(CrashRestart),
    /// SIGTERM: every stream gets the shutdown close, then resume after restart.
    GracefulShutdown(GracefulShutdown),
    /// Resume from an id the server cannot place (garbage, unknown, foreign, evicted,
    /// from before a restart).
    ResumeId(ResumeId),
    /// Subscribers behind a dead link are freed (ended and counted) by the server.
    StalledReader(StalledReader),
}

/// One probe kind.
pub(crate) trait RunProbe {
    /// Whether it must kill and restart the target (needs `--server-cmd`).
    fn needs_control(&self) -> bool {
        false
    }

    /// Plays the exchange and returns what the clients recorded, with what each must see.
    async fn run(&self, cx: &Ctx, rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError>;
}

/// Applies `$e` to the probe inside whichever variant `$probe` is.
macro_rules! each {
    ($probe:expr, $p:ident => $e:expr) => {
        match $probe {
            Probe::TaskLifecycle($p) => $e,
            Probe::TaskNotFound($p) => $e,
            Probe::HeartbeatIdle($p) => $e,
            Probe::VersionPending($p) => $e,
            Probe::VersionReplace($p) => $e,
            Probe::InvalidCursor($p) => $e,
            Probe::CursorAhead($p) => $e,
            Probe::CorrelationId($p) => $e,
            Probe::Liveness($p) => $e,
            Probe::CrashRestart($p) => $e,
            Probe::GracefulShutdown($p) => $e,
            Probe::ResumeId($p) => $e,
            Probe::StalledReader($p) => $e,
        }
    };
}

impl Probe {
    /// How many browser clients the probe runs (`browsers` of a `task-lifecycle`).
    pub fn browsers(&self) -> u32 {
        match self {
            Probe::TaskLifecycle(p) => p.browsers,
            _ => 0,
        }
    }

    /// Whether the probe must kill and restart the target.
    pub fn needs_control(&self) -> bool {
        each!(self, p => p.needs_control())
    }

    /// Why the probe cannot run on `profile` (a profile that does not say what it
    /// needs): the scenario is skipped with this reason.
    pub fn unmet(&self, profile: &crate::profile::Profile) -> Option<String> {
        match self {
            Probe::ResumeId(p) => p.unmet(profile),
            Probe::StalledReader(p) => p.unmet(profile),
            _ => None,
        }
    }

    async fn play(&self, cx: &Ctx, rng: &mut ChaCha8Rng) -> Result<Recording, HarnessError> {
        each!(self, p => p.run(cx, rng).await)
    }
}

/// Runs one probe, ending its clients at `deadline` from now, and returns its recording.
pub async fn run(
    target: Arc<Target>,
    control: Option<Arc<dyn ServerControl>>,
    deadline: Duration,
    probe: &Probe,
    rng: &mut ChaCha8Rng,
    tag: &str,
) -> Result<Recording, HarnessError> {
    let epoch = target.epoch();
    let cx = Ctx {
        target,
        control,
        tag: tag.to_owned(),
        epoch,
        deadline: epoch + deadline,
        ledger: Arc::new(Ledger::default()),
        published_tx: watch::channel(false).0,
        stop_tx: watch::channel(false).0,
        burst_tx: watch::channel(false).0,
        planned: Default::default(),
    };
    let mut rec = probe.play(&cx, rng).await?;
    rec.plan = std::mem::take(&mut *cx.planned.lock().expect("plan lock"));
    let (acks, failures) = cx.ledger.take();
    rec.acks.extend(acks);
    rec.published = cx.ledger.published(&cx.target.profile);
    // Writes in flight when a probe kills or stops the target are expected to fail
    // or to lose their answer: only the other probes' are judged.
    let indeterminate = cx.ledger.take_indeterminate();
    if !probe.needs_control() {
        rec.publish_failures.extend(failures);
        rec.indeterminate.extend(indeterminate);
    }
    Ok(rec)
}

/// The data text of every data event a client received, over all its connections.
pub(crate) fn data_of(t: &Transcript) -> Vec<String> {
    t.connections
        .iter()
        .flat_map(|c| &c.frames)
        .filter(|f| matches!(f.kind, FrameKind::Data(_)))
        .map(|f| f.data.clone())
        .collect()
}

/// The fields of the first `connection_open` frame any client of `rec` received:
/// where a probe reads what the target announced (`heartbeat_ms`, `write_stall_ms`).
pub(crate) fn first_open_fields(rec: &Recording) -> Option<&serde_json::Value> {
    rec.transcripts
        .iter()
        .flat_map(|t| &t.connections)
        .flat_map(|c| &c.frames)
        .find_map(|f| match &f.kind {
            FrameKind::Lifecycle { name, fields } if name == "connection_open" => Some(fields),
            _ => None,
        })
}

/// What every probe works with: the target, the clock, the ledger and the signals its
/// clients listen to.
pub(crate) struct Ctx {
    pub(crate) target: Arc<Target>,
    /// How to kill and restart the target, when the run may.
    pub(crate) control: Option<Arc<dyn ServerControl>>,
    /// A tag unique to this scenario run, for channel and request names.
    pub(crate) tag: String,
    pub(crate) epoch: Instant,
    pub(crate) deadline: Instant,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) published_tx: watch::Sender<bool>,
    pub(crate) stop_tx: watch::Sender<bool>,
    pub(crate) burst_tx: watch::Sender<bool>,
    /// Every client started so far and its planned cuts: the evidence counts the
    /// transcripts against it, so a client left out by [`Ctx::join`] is never silent.
    planned: std::sync::Mutex<ScenarioPlan>,
}

impl Ctx {
    /// A client that reads `path` once (no cuts, no reconnect) until `until`.
    pub(crate) fn plan(
        &self,
        id: &str,
        stream: StreamKind,
        path: String,
        until: Until,
    ) -> ClientPlan {
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
            h2_cut: sse_wire::H2Cut::default(),
            h2_shared: None,
            until,
            reconnect: false,
            through_restarts: false,
            reconnect_on_silence: false,
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

    /// Notes a client about to start in the scenario's plan.
    fn planned(&self, plan: &ClientPlan) {
        let mut p = self.planned.lock().expect("plan lock");
        p.clients.push(plan.id.clone());
        if !plan.cuts.is_empty() {
            p.cuts.insert(plan.id.clone(), plan.cuts.len() as u64);
        }
    }

    /// Runs a client to its end.
    pub(crate) async fn client(&self, plan: ClientPlan) -> Transcript {
        self.planned(&plan);
        client::run(
            self.target.clone(),
            self.ledger.clone(),
            plan,
            self.signals(None),
            self.epoch,
        )
        .await
    }

    /// Runs browser clients (one Chromium) until each caught up, gave up for good or
    /// showed its loop; publishing counts as over.
    pub(crate) async fn browsers(
        &self,
        plans: Vec<crate::browser::BrowserPlan>,
    ) -> Vec<Transcript> {
        for p in &plans {
            self.planned(&p.client);
        }
        self.published_tx.send_replace(true);
        crate::browser::run(
            self.target.clone(),
            self.ledger.clone(),
            plans,
            self.signals(None),
            self.epoch,
        )
        .await
    }

    /// Starts a client in the background; `opened` hears when its stream is open.
    pub(crate) fn spawn(
        &self,
        plan: ClientPlan,
        opened: Option<mpsc::UnboundedSender<ClientId>>,
    ) -> crate::tasks::Scoped<Transcript> {
        self.planned(&plan);
        crate::tasks::spawn(client::run(
            self.target.clone(),
            self.ledger.clone(),
            plan,
            self.signals(opened),
            self.epoch,
        ))
    }

    /// The stream path of channel `ch`.
    pub(crate) fn channel_path(&self, ch: &str) -> String {
        fill(
            &self.target.profile.subscribe.path,
            &[("channel", &encode_segment(ch))],
        )
    }

    /// Microseconds since the probe started.
    pub(crate) fn us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// The transcripts of background clients, each waited for until shortly after the
    /// deadline (a client still running then is left out, never waited on for ever;
    /// the plan still names it, so the evidence reports it missing).
    pub(crate) async fn join(
        &self,
        tasks: Vec<crate::tasks::Scoped<Transcript>>,
    ) -> Vec<Transcript> {
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

    /// The profile section a probe needs, or a profile error naming it.
    pub(crate) fn need<'a, T>(&self, x: Option<&'a T>, what: &str) -> Result<&'a T, HarnessError> {
        x.ok_or_else(|| {
            HarnessError::new(
                HarnessErrorKind::Profile,
                format!(
                    "profile {} has no [{what}] section",
                    self.target.profile.name
                ),
            )
        })
    }

    /// Creates a job with this spec through the profile's task section; returns its
    /// task stream path and its id.
    pub(crate) async fn job(&self, spec: JobSpec) -> Result<(String, String), HarnessError> {
        let task = self.need(self.target.profile.task.as_ref(), "task")?;
        let job = self
            .target
            .create(&task.create, Some(task.job_body(spec)), "job")
            .await?;
        Ok((fill(&task.path, &[("job", &encode_segment(&job))]), job))
    }

    /// The job `spec` as the target gives it back: `events` (the data of its task
    /// stream's data events, read by `reader` when a client did) and, when the profile
    /// says where, its receipt with the hash header. A failed or running job's receipt
    /// answer (a 404) is kept too; the checkers judge receipts of completed jobs only.
    pub(crate) async fn read_back(
        &self,
        job: &str,
        spec: JobSpec,
        reader: Option<ClientId>,
        events: Vec<String>,
    ) -> Result<JobReadBack, HarnessError> {
        let task = self.need(self.target.profile.task.as_ref(), "task")?;
        let receipt = match &task.receipt_path {
            Some(path) => {
                let path = fill(path, &[("job", &encode_segment(job))]);
                let a = self
                    .target
                    .request(Method::Get, &path, None, &[])
                    .await?
                    .whole("reading a receipt")?;
                let header = task
                    .receipt_header
                    .as_ref()
                    .and_then(|h| a.headers.get(&h.to_ascii_lowercase()).cloned());
                Some(ReceiptRead {
                    status: a.status,
                    header_sha256: header,
                    body: a.body,
                })
            }
            None => None,
        };
        Ok(JobReadBack {
            job: job.to_owned(),
            reader,
            steps: spec.steps,
            fail_at_step: spec.fail_at_step,
            artifact: spec.artifact_bytes.is_some(),
            events,
            receipt,
        })
    }

    /// The kill/restart control, or a usage error naming the probe.
    pub(crate) fn control(&self, probe: &str) -> Result<&dyn ServerControl, HarnessError> {
        self.control.as_deref().ok_or_else(|| {
            HarnessError::new(
                HarnessErrorKind::Usage,
                format!("{probe} needs --server-cmd"),
            )
        })
    }

    /// Notifies version `version` for request id `rid` through the profile.
    pub(crate) async fn notify(&self, rid: &str, version: &str) -> Result<(), HarnessError> {
        let v = self.need(self.target.profile.version.as_ref(), "version")?;
        let body = fill(&v.notify_body, &[("rid", rid), ("version", version)]);
        let headers = [("Content-Type".into(), "application/json".into())];
        let path = &v.notify_path;
        let a = self
            .target
            .request(Method::Post, path, Some(body), &headers)
            .await?;
        if a.status != v.notify_status {
            return Err(HarnessError::new(
                HarnessErrorKind::Target,
                format!("POST {path} answered {}: {}", a.status, a.body),
            ));
        }
        Ok(())
    }

    /// A fresh channel and `n` subscribers of it that resume across restarts until they
    /// have every write, connected before this returns.
    pub(crate) async fn survivors(
        &self,
        n: u32,
    ) -> Result<(String, Vec<crate::tasks::Scoped<Transcript>>), HarnessError> {
        let ch = self.target.channel(&self.tag, 0).await?;
        let (otx, mut orx) = mpsc::unbounded_channel();
        let tasks = (0..n)
            .map(|i| {
                let mut p = self.plan(
                    &format!("survivor#{i}"),
                    StreamKind::Events,
                    self.channel_path(&ch),
                    Until::CaughtUp,
                );
                p.channels = vec![ch.clone()];
                p.reconnect = true;
                p.through_restarts = true;
                self.spawn(p, Some(otx.clone()))
            })
            .collect();
        wait_opened(&mut orx, n as usize, self.deadline).await;
        Ok((ch, tasks))
    }
}

/// Waits (until `deadline` at most) until `n` clients said their stream is open.
pub(crate) async fn wait_opened(
    rx: &mut mpsc::UnboundedReceiver<ClientId>,
    n: usize,
    deadline: Instant,
) {
    for _ in 0..n {
        if tokio::time::timeout_at(deadline, rx.recv()).await.is_err() {
            return;
        }
    }
}
