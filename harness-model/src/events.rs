//! The one stream of run events that the runner emits and every reporter consumes
//! (the terminal, JSON, JUnit, Markdown, HTML and HDR writers are all listeners of it).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::model::{ContractId, Finding, Level, Verdict};

/// The latency and rate series the runner measures, each an HDR histogram.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Request sent → `connection_open` (or the first byte of the body) received, in µs.
    ConnectToOpen,
    /// Request sent → status and headers received (when a browser's `EventSource`
    /// fires `open`), in µs: time to open, as `wire.open-time` judges it.
    ConnectToHead,
    /// Publish request sent → the event delivered to a subscriber, in µs (one sample per delivery).
    PublishToDeliver,
    /// Publish acknowledged → the event decodable at a subscriber (its first receipt),
    /// in µs, 0 when it came before the ack: per-event latency, as
    /// `wire.event-latency` judges it.
    AckToDeliver,
    /// Reconnect request sent → the client has every event acked before the reconnect, in µs.
    ReconnectToCaughtUp,
    /// Events per second during a replay (one sample per resumed connection that replayed ≥ 100 events).
    ReplayRate,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 6] = [
        Metric::ConnectToOpen,
        Metric::ConnectToHead,
        Metric::PublishToDeliver,
        Metric::AckToDeliver,
        Metric::ReconnectToCaughtUp,
        Metric::ReplayRate,
    ];

    /// The snake_case name used in files, thresholds and reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::ConnectToOpen => "connect_to_open",
            Metric::ConnectToHead => "connect_to_head",
            Metric::PublishToDeliver => "publish_to_deliver",
            Metric::AckToDeliver => "ack_to_deliver",
            Metric::ReconnectToCaughtUp => "reconnect_to_caught_up",
            Metric::ReplayRate => "replay_rate",
        }
    }

    /// The unit of the recorded values: `us` or `events/s`.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::ReplayRate => "events/s",
            _ => "us",
        }
    }

    /// Parses a snake_case name.
    pub fn from_name(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// What every report says of a target off loopback ([`RunMeta::remote`]).
pub const REMOTE_NOTE: &str = "the target is not on loopback: cuts, resets and slow readers act on the first hop (a proxy or CDN edge may absorb backpressure and hide cuts from the origin)";

/// Facts about the whole run, printed by every report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunMeta {
    /// The seed every random choice of the run came from.
    pub seed: u64,
    /// The target's base URL.
    pub target: String,
    /// Whether the target is the embedded reference server.
    pub embedded: bool,
    /// Whether the target's TLS certificate went unverified (`--insecure`): every
    /// report says so.
    #[serde(default)]
    pub insecure_tls: bool,
    /// Whether the target is off loopback (not 127.0.0.0/8, ::1 or localhost): cuts,
    /// resets and slow readers then act on the first hop, which every report says.
    #[serde(default)]
    pub remote: bool,
    /// The HTTP protocol the streams asked for (`--http2` or the profile's
    /// `[subscribe] http`); what each connection got is in its transcript.
    #[serde(default)]
    pub protocol: crate::transcript::HttpProtocol,
    /// The profile's name.
    pub profile: String,
    /// Wall-clock start, RFC 3339.
    pub started_at: String,
    /// The harness version.
    pub harness_version: String,
    /// A command line that replays this run (same seed, same scenarios).
    pub replay_command: String,
    /// The polite limits the run kept to (`--scale`, `--max-rate`, `--max-clients`).
    #[serde(default)]
    pub limits: RunLimits,
}

/// The limits a run keeps to in a shared environment: every workload scenario's counts
/// scaled by `scale`, its publish rate capped at `max_rate`, its concurrent clients at
/// `max_clients`. Probes keep their own small fixed counts.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunLimits {
    /// The factor on every scenario's clients, events and publishers, in (0, 1].
    pub scale: f64,
    /// At most this many writes per second published, in every scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<u64>,
    /// At most this many concurrent clients in any scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clients: Option<u32>,
}

impl Default for RunLimits {
    fn default() -> RunLimits {
        RunLimits {
            scale: 1.0,
            max_rate: None,
            max_clients: None,
        }
    }
}

impl RunLimits {
    /// Whether these are no limits at all (full scale, no caps).
    pub fn is_default(&self) -> bool {
        *self == RunLimits::default()
    }
}

impl std::fmt::Display for RunLimits {
    /// `scale 0.5, at most 100 events/s, at most 4 clients per scenario`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scale {}", self.scale)?;
        if let Some(r) = self.max_rate {
            write!(f, ", at most {r} events/s")?;
        }
        if let Some(c) = self.max_clients {
            write!(f, ", at most {c} clients per scenario")?;
        }
        Ok(())
    }
}

/// A scenario as announced before it runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// The test name: `<group>/<name>`, e.g. `CT-10/cut-at-random-bytes`.
    pub id: String,
    /// The contract group from the seed tables, e.g. `CT-10`, or `LIFECYCLE`.
    pub group: String,
    /// One sentence on what it exercises.
    pub title: String,
    /// The scenario file it came from, relative to the repository.
    pub file: String,
}

/// Counters of what a scenario did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScenarioStats {
    /// Scripted clients.
    pub clients: u64,
    /// Connections opened (first connections and reconnects).
    pub connections: u64,
    /// Data events received, over all clients.
    pub events_received: u64,
    /// Writes acknowledged by the target.
    pub events_published: u64,
    /// Deliberate cuts made.
    pub cuts: u64,
    /// Deliberate cuts planned (0 for recordings without a plan).
    #[serde(default)]
    pub cuts_planned: u64,
}

/// The result of one scenario.
#[derive(Clone, Debug)]
pub struct ScenarioResult {
    /// Which scenario.
    pub info: ScenarioInfo,
    /// Its verdict.
    pub verdict: Verdict,
    /// MUST and SHOULD findings (SHOULD ones are warnings).
    pub findings: Vec<Finding>,
    /// How long it ran.
    pub duration: Duration,
    /// Counters.
    pub stats: ScenarioStats,
    /// Latency and rate histograms, by metric (absent when nothing was measured).
    pub histograms: BTreeMap<Metric, Histogram<u64>>,
    /// The command that replays just this scenario with the same seed.
    pub replay_command: String,
    /// What the scenario established beyond pass/fail, by name (e.g. the publish rate it
    /// reached, how far the head ran ahead of a slow reader), for reports.
    pub facts: BTreeMap<String, serde_json::Value>,
}

impl ScenarioResult {
    /// The one line a summary table shows for this scenario: the reason it was
    /// skipped or could not run, else its first MUST finding (or first finding).
    pub fn headline(&self) -> String {
        match &self.verdict {
            Verdict::Skipped { .. }
            | Verdict::Error { .. }
            | Verdict::Inconclusive { .. }
            | Verdict::Interrupted
            | Verdict::NotRun => self.verdict.reason().unwrap_or_default(),
            _ => self
                .findings
                .iter()
                .find(|f| f.level == Level::Must)
                .or(self.findings.first())
                .map(|f| f.message())
                .unwrap_or_default(),
        }
    }
}

/// One event of a run, in the order the runner emits them.
#[derive(Clone, Debug)]
pub enum RunEvent {
    /// The run begins; lists the scenarios it will run, in order.
    RunStarted {
        /// Facts about the run.
        meta: RunMeta,
        /// The scenarios, in order.
        scenarios: Vec<ScenarioInfo>,
    },
    /// A scenario begins.
    ScenarioStarted {
        /// Which one.
        info: ScenarioInfo,
    },
    /// A scenario ended with its verdict.
    ScenarioFinished(Box<ScenarioResult>),
    /// Gate findings on the whole run (threshold breaches, baseline breaches), before it ends.
    RunGate {
        /// Threshold and baseline findings.
        findings: Vec<Finding>,
        /// Every threshold with the value observed, held or not (k6 style).
        thresholds: Vec<ThresholdCheck>,
        /// Failures the baseline expects, as (scenario id, contract): they do not fail the run.
        baselined: Vec<(String, ContractId)>,
    },
    /// The run is over.
    RunFinished {
        /// Wall time of the whole run.
        duration: Duration,
        /// How the run ended, decided once by the engine; reporters only render it.
        summary: RunSummary,
    },
}

/// How many scenarios ended with each verdict.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Passed.
    pub pass: u64,
    /// Failed (at least one MUST finding).
    pub fail: u64,
    /// Not run for a missing capability.
    pub skipped: u64,
    /// The harness could not run them.
    pub error: u64,
    /// Every MUST held but they did not do what they set out to do.
    #[serde(default)]
    pub inconclusive: u64,
    /// Running when the run was interrupted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interrupted: u64,
    /// Not run because the run was interrupted first.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_run: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Totals {
    /// Counts `results` by verdict.
    pub fn of(results: &[ScenarioResult]) -> Totals {
        let mut t = Totals::default();
        for r in results {
            match r.verdict {
                Verdict::Pass => t.pass += 1,
                Verdict::Fail => t.fail += 1,
                Verdict::Skipped { .. } => t.skipped += 1,
                Verdict::Error { .. } => t.error += 1,
                Verdict::Inconclusive { .. } => t.inconclusive += 1,
                Verdict::Interrupted => t.interrupted += 1,
                Verdict::NotRun => t.not_run += 1,
            }
        }
        t
    }
}

/// How a whole run ended. Each outcome has its own exit status, as nextest and k6 do,
/// so a CI step can tell a broken contract from a missed threshold from a harness that
/// could not run.
#[non_exhaustive]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every MUST held (or failed only as the baseline expects) and every gate held: exit 0.
    Pass,
    /// A contract failed, or the baseline was broken (a new failure or a stale entry): exit 1.
    Fail,
    /// Scenarios could not be judged (target unreachable, setup refused) and none failed: exit 2.
    CouldNotRun,
    /// Every contract held but a threshold did not: exit 3.
    ThresholdFail,
    /// The run was interrupted (Ctrl-C, SIGTERM) before it ended: exit 130, whatever
    /// the scenarios that did finish found. An interrupted run never passes.
    Interrupted,
}

impl Outcome {
    /// The process exit status for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Pass => 0,
            Outcome::Fail => 1,
            Outcome::CouldNotRun => 2,
            Outcome::ThresholdFail => 3,
            Outcome::Interrupted => 130,
        }
    }

    /// Whether the run passed.
    pub fn passed(self) -> bool {
        self == Outcome::Pass
    }

    /// The word reports print: `PASS`, `FAIL`, `ERROR`, `THRESHOLD FAIL`, `INTERRUPTED`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::CouldNotRun => "ERROR",
            Outcome::ThresholdFail => "THRESHOLD FAIL",
            Outcome::Interrupted => "INTERRUPTED",
        }
    }
}

/// The run's outcome with what it was decided from: carried by
/// [`RunEvent::RunFinished`] (the way nextest's final event carries its run stats).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// How the run ended.
    pub outcome: Outcome,
    /// Scenarios by verdict.
    pub totals: Totals,
    /// Why, in one line, when the run did not pass (e.g. the first scenario that could not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The signal that interrupted the run, when one did (then the outcome is
    /// [`Outcome::Interrupted`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Interruption>,
}

/// The signal that stopped a run before its end.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Interruption {
    /// SIGINT (Ctrl-C).
    Sigint,
    /// SIGTERM.
    Sigterm,
}

impl Interruption {
    /// The signal's name: `SIGINT`, `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Interruption::Sigint => "SIGINT",
            Interruption::Sigterm => "SIGTERM",
        }
    }
}

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One threshold as the gate judged it: the limit, the value observed and whether it held.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdCheck {
    /// The threshold as written, e.g. `publish_to_deliver.p99 < 50ms`.
    pub threshold: String,
    /// The observed value in the threshold's unit (e.g. `12.3ms`), None when nothing was measured.
    pub observed: Option<String>,
    /// Samples the value was computed over.
    pub samples: u64,
    /// Whether it held (a threshold over a metric with no samples does not).
    pub held: bool,
}
