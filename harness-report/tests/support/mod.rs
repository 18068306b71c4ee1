//! A fixed synthetic run: four scenarios (pass with a warning, fail, skipped, error),
//! histograms with deterministic values, and one gate finding; and a run of realistic
//! size (the 35 shipped scenarios) for the charts.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use harness_model::{
    ClientId, Contracts, Evidence, Metric, RunEvent, RunMeta, ScenarioInfo, ScenarioResult,
    ScenarioStats, Seq, Verdict,
};
use hdrhistogram::Histogram;

/// A deterministic pseudo-random sequence (an LCG), so histograms are the same every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// `n` samples between `lo` and `hi` with a long tail: most near `lo`, a few near `hi`.
pub fn histogram(seed: u64, n: u64, lo: u64, hi: u64) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).unwrap();
    let mut r = Lcg(seed);
    for _ in 0..n {
        let u = (r.next() % 10_000) as f64 / 10_000.0;
        let v = lo as f64 + (hi - lo) as f64 * u.powi(6);
        h.record(v as u64).unwrap();
    }
    h
}

pub fn info(id: &str, title: &str) -> ScenarioInfo {
    ScenarioInfo {
        id: id.into(),
        group: id.split('/').next().unwrap().into(),
        title: title.into(),
        file: format!("scenarios/{}.toml", id.replace('/', "-").to_lowercase()),
    }
}

pub fn meta() -> RunMeta {
    RunMeta {
        seed: 424242,
        target: "http://127.0.0.1:40123".into(),
        insecure_tls: false,
        remote: false,
        protocol: Default::default(),
        embedded: true,
        profile: "spine".into(),
        started_at: "2026-11-23T09:15:00Z".into(),
        harness_version: "0.1.0".into(),
        replay_command: "sse-harness run --embedded --seed 424242".into(),
        limits: Default::default(),
    }
}

pub fn results() -> Vec<ScenarioResult> {
    let c = Contracts::builtin();
    let pass = ScenarioResult {
        info: info(
            "CT-10/cut-at-random-bytes",
            "Cuts connections at random byte offsets and resumes.",
        ),
        verdict: Verdict::Pass,
        findings: vec![c.finding(
            harness_model::ids::LIFECYCLE_RETRY_FIRST,
            Evidence {
                client: Some(ClientId("cutter#0".into())),
                connection: Some(0),
                byte_offset: Some(0),
                expected: "retry: before the first event".into(),
                seen: "connection_open first".into(),
                ..Evidence::default()
            },
        )],
        duration: Duration::from_millis(2340),
        stats: ScenarioStats {
            clients: 4,
            connections: 37,
            events_received: 4000,
            events_published: 1000,
            cuts: 33,
            cuts_planned: 33,
        },
        histograms: BTreeMap::from([
            (Metric::ConnectToOpen, histogram(1, 37, 400, 2_500)),
            (Metric::PublishToDeliver, histogram(2, 4000, 600, 40_000)),
            (Metric::ReconnectToCaughtUp, histogram(3, 33, 1_500, 30_000)),
        ]),
        replay_command:
            "sse-harness run --embedded --seed 424242 --scenario CT-10/cut-at-random-bytes".into(),
        facts: Default::default(),
    };
    let fail = ScenarioResult {
        info: info(
            "CT-11/slow-reader",
            "A slow reader resumes after the store moved on.",
        ),
        verdict: Verdict::Fail,
        findings: vec![
            c.finding(
                harness_model::ids::RESUME_NO_GAP,
                Evidence {
                    client: Some(ClientId("slow#1".into())),
                    connection: Some(3),
                    seq: Some(Seq(57)),
                    byte_offset: Some(18_233),
                    at_ms: Some(1_204.5),
                    expected: "seq 57 after 56".into(),
                    seen: "seq 58".into(),
                    ..Evidence::default()
                },
            ),
            c.finding(
                harness_model::ids::RESUME_NO_DUPLICATE,
                Evidence {
                    client: Some(ClientId("slow#1".into())),
                    connection: Some(4),
                    seq: Some(Seq(60)),
                    expected: "each seq once".into(),
                    seen: "seq 60 twice <dup> & \"quoted\"".into(),
                    ..Evidence::default()
                },
            ),
        ],
        duration: Duration::from_millis(5120),
        stats: ScenarioStats {
            clients: 2,
            connections: 9,
            events_received: 2411,
            events_published: 1200,
            cuts: 7,
            ..ScenarioStats::default()
        },
        histograms: BTreeMap::from([
            (Metric::ConnectToOpen, histogram(4, 9, 700, 9_000)),
            (Metric::PublishToDeliver, histogram(5, 2411, 900, 120_000)),
            (Metric::ReplayRate, histogram(6, 7, 40_000, 250_000)),
        ]),
        replay_command: "sse-harness run --embedded --seed 424242 --scenario CT-11/slow-reader"
            .into(),
        facts: BTreeMap::from([("network".to_owned(), network_fact())]),
    };
    let skipped = ScenarioResult {
        info: info(
            "CT-12/task-stream",
            "A task stream ends with a terminal event.",
        ),
        verdict: Verdict::Skipped {
            reason: "profile spine does not claim capability task-stream".into(),
        },
        findings: vec![],
        duration: Duration::ZERO,
        stats: ScenarioStats::default(),
        histograms: BTreeMap::new(),
        replay_command: "sse-harness run --embedded --seed 424242 --scenario CT-12/task-stream"
            .into(),
        facts: Default::default(),
    };
    let error = ScenarioResult {
        info: info("LIFECYCLE/headers", "Responses carry the SSE headers."),
        verdict: Verdict::Error {
            reason: "connect to 127.0.0.1:40123: connection refused".into(),
        },
        findings: vec![],
        duration: Duration::from_millis(12),
        stats: ScenarioStats::default(),
        histograms: BTreeMap::new(),
        replay_command: "sse-harness run --embedded --seed 424242 --scenario LIFECYCLE/headers"
            .into(),
        facts: Default::default(),
    };
    let inconclusive = ScenarioResult {
        info: info(
            "CT-10/cut-inside-the-framing",
            "Disconnects aimed inside the framing.",
        ),
        verdict: Verdict::Inconclusive {
            reasons: vec![
                harness_model::Shortfall::CutsNotExecuted {
                    planned: 30,
                    executed: 25,
                    without_place: 0,
                },
                harness_model::Shortfall::ClientsMissing {
                    planned: 2,
                    recorded: 1,
                    missing: vec![harness_model::ClientId("aimed-cutter#1".into())],
                },
            ],
        },
        findings: vec![],
        duration: Duration::from_millis(2500),
        stats: ScenarioStats {
            clients: 1,
            connections: 26,
            events_received: 1500,
            events_published: 1500,
            cuts: 25,
            cuts_planned: 30,
        },
        histograms: BTreeMap::new(),
        replay_command:
            "sse-harness run --embedded --seed 424242 --scenario CT-10/cut-inside-the-framing"
                .into(),
        facts: Default::default(),
    };
    vec![pass, fail, skipped, error, inconclusive]
}

/// The whole event stream of the synthetic run.
pub fn events() -> Vec<RunEvent> {
    events_of(results())
}

/// The event stream of a run that finished `results`, gated by one p99 threshold.
pub fn events_of(results: Vec<ScenarioResult>) -> Vec<RunEvent> {
    let c = Contracts::builtin();
    let thresholds = ["publish_to_deliver.p99 < 50ms".parse().unwrap()];
    let checks = harness_report::gate::check_thresholds(&thresholds, &results);
    let gate = harness_report::gate::threshold_findings(&checks, &c);
    let summary = harness_model::RunSummary {
        outcome: harness_model::Outcome::Fail,
        totals: harness_model::Totals::of(&results),
        reason: None,
        interrupted: None,
    };
    let mut ev = vec![RunEvent::RunStarted {
        meta: meta(),
        scenarios: results.iter().map(|r| r.info.clone()).collect(),
    }];
    for r in results {
        ev.push(RunEvent::ScenarioStarted {
            info: r.info.clone(),
        });
        ev.push(RunEvent::ScenarioFinished(Box::new(r)));
    }
    ev.push(RunEvent::RunGate {
        findings: gate,
        thresholds: checks,
        baselined: Vec::new(),
    });
    ev.push(RunEvent::RunFinished {
        duration: Duration::from_millis(7612),
        summary,
    });
    ev
}

/// The scenario ids of the shipped `scenarios/` directory: a run of realistic size.
pub const MANY_IDS: [&str; 35] = [
    "CT-07/reconnect-with-cursor-query",
    "CT-07/reconnect-with-last-event-id",
    "CT-09/connect-read-disconnect",
    "CT-09/cross-job-replay-order",
    "CT-09/resume-no-gap-no-duplicate-monotonic",
    "CT-10/cut-after-random-event-counts",
    "CT-10/cut-at-random-bytes",
    "CT-10/cut-during-high-rate-publishing",
    "CT-10/cut-inside-the-framing",
    "CT-10/rapid-reconnect-cycles",
    "CT-10/reset-instead-of-close",
    "CT-11/late-join-over-large-backlog",
    "CT-11/one-byte-per-second",
    "CT-11/pause-five-seconds",
    "CT-11/slow-consumers-beside-fast",
    "CT-12/burst-of-fifty-reconnects",
    "CT-12/five-reconnect-while-five-stay",
    "CT-12/stress-sequencing",
    "CT-12/ten-clients-at-once",
    "CURSOR/cursor-ahead-of-head",
    "CURSOR/invalid-last-event-id",
    "DURABILITY/crash-restart",
    "DURABILITY/graceful-shutdown",
    "HEARTBEAT/idle-events-stream",
    "HEARTBEAT/idle-task-stream",
    "HEARTBEAT/idle-version-stream",
    "LIFECYCLE/correlation-id-echoed",
    "LIFECYCLE/task-completed",
    "LIFECYCLE/task-failed",
    "LIFECYCLE/task-not-found",
    "LIFECYCLE/task-resumed-after-the-end",
    "LIVENESS/closed-clients-noticed",
    "LIVENESS/reset-clients-noticed",
    "VERSION/pending-flushed-in-order",
    "VERSION/replaced-by-second-stream",
];

/// A run of every scenario in [`MANY_IDS`], all passing but one, with histograms whose
/// ranges spread over three decades (a few slow scenarios reach seconds), so charts
/// hold 35 curves.
pub fn many_results() -> Vec<ScenarioResult> {
    let c = Contracts::builtin();
    let mut r = Lcg(35);
    MANY_IDS
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let i = i as u64;
            // Connect latency 0.3–1.2 ms at best; the tail reaches 5x to 400x of it.
            let lo = 300 + r.next() % 900;
            let tail = 5 + r.next() % 400;
            let mut histograms = BTreeMap::from([(
                Metric::ConnectToOpen,
                histogram(100 + i, 5 + r.next() % 60, lo, lo * tail / 4),
            )]);
            // Time to open and per-event latency, drawn from the same figures (no
            // new draw, so every other series stays as it was).
            histograms.insert(
                Metric::ConnectToHead,
                histogram(500 + i, 5 + i % 60, lo * 4 / 5, lo * tail / 5),
            );
            if i % 7 != 3 {
                let n = 200 + r.next() % 5000;
                histograms.insert(
                    Metric::PublishToDeliver,
                    histogram(200 + i, n, lo * 2, lo * tail),
                );
                histograms.insert(
                    Metric::AckToDeliver,
                    histogram(600 + i, n / 3 + 1, lo, lo * tail / 2),
                );
            }
            if i < 21 {
                let n = 10 + r.next() % 50;
                histograms.insert(
                    Metric::ReconnectToCaughtUp,
                    histogram(300 + i, n, lo * 4, lo * tail * 3),
                );
            }
            if i < 21 && i.is_multiple_of(3) {
                let lo_rate = 20_000 + r.next() % 60_000;
                histograms.insert(
                    Metric::ReplayRate,
                    histogram(400 + i, 12, lo_rate, lo_rate * 8),
                );
            }
            let failed = *id == "CT-11/one-byte-per-second";
            let findings = if failed {
                vec![c.finding(
                    harness_model::ids::RESUME_NO_GAP,
                    Evidence {
                        client: Some(ClientId("trickle#0".into())),
                        connection: Some(2),
                        seq: Some(Seq(31)),
                        expected: "seq 31 after 30".into(),
                        seen: "seq 32".into(),
                        ..Evidence::default()
                    },
                )]
            } else {
                Vec::new()
            };
            ScenarioResult {
                info: info(id, "A scenario of the shipped set."),
                verdict: if failed { Verdict::Fail } else { Verdict::Pass },
                findings,
                duration: Duration::from_millis(200 + r.next() % 9000),
                stats: ScenarioStats {
                    clients: 1 + r.next() % 50,
                    connections: 1 + r.next() % 200,
                    events_received: r.next() % 100_000,
                    events_published: r.next() % 20_000,
                    cuts: r.next() % 40,
                    ..ScenarioStats::default()
                },
                histograms,
                replay_command: format!("sse-harness run --embedded --seed 424242 --scenario {id}"),
                facts: Default::default(),
            }
        })
        .collect()
}

/// Runs the file reporters over the synthetic run into a fresh directory.
pub fn write_reports() -> tempfile::TempDir {
    write_reports_of(events())
}

/// Runs the file reporters over `events` into a fresh directory.
pub fn write_reports_of(events: Vec<RunEvent>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut reporters = harness_report::file_reporters(dir.path());
    for e in events {
        for r in reporters.iter_mut() {
            r.on_event(&e).unwrap();
        }
    }
    dir
}

/// insta settings that redact times, durations, ports and seeds.
pub fn redacted() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.add_filter(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "[TIME]",
    );
    s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    s.add_filter(r"424242", "[SEED]");
    s.add_filter(r#"time="[0-9.]+""#, r#"time="[SECS]""#);
    s.add_filter(r#""duration_ms": \d+"#, r#""duration_ms": "[MS]""#);
    s.add_filter(r"\b\d+(\.\d+)? (ms|s)\b", "[DURATION]");
    s.add_filter(r"\b\d+ min \d+ s\b", "[DURATION]");
    s
}

/// A toxic timeline (the `network` fact): a reset storm and a latency toxic on the
/// subscriber path, latency on the publisher path.
pub fn network_fact() -> serde_json::Value {
    serde_json::json!({
        "toxics": [
            {"path": "subscriber", "name": "storm_1", "kind": "reset_peer", "stream": "downstream",
             "from_ms": 500, "until_ms": 2000, "toxicity": 0.6, "connections": 2, "actions": 2},
            {"path": "subscriber", "name": "latency_downstream", "kind": "latency", "stream": "downstream",
             "from_ms": 0, "toxicity": 1.0, "connections": 3, "actions": 41},
            {"path": "publisher", "name": "latency_upstream", "kind": "latency", "stream": "upstream",
             "from_ms": 0, "toxicity": 1.0, "connections": 4, "actions": 400}
        ],
        "clients": [
            {"client": "slow#0", "connections": [
                {"index": 0, "opened_ms": 3, "ended_ms": 814, "end": "failed", "proxy_conn": 1, "marks": [
                    {"at_ms": 120.5, "toxic": "latency_downstream", "what": "delayed ×14 chunks, held up to 61.2 ms"},
                    {"at_ms": 513.9, "toxic": "storm_1", "what": "reset triggered (RST both ways after 300 ms)"},
                    {"at_ms": 814.0, "what": "closed: reset"}
                ]},
                {"index": 1, "opened_ms": 877, "ended_ms": 8066, "end": "finished", "proxy_conn": 4, "marks": [
                    {"at_ms": 879.5, "toxic": "latency_downstream", "what": "delayed ×27 chunks, held up to <b>63.0</b> ms"}
                ]}
            ]}
        ],
        "publisher": {"connections": 4, "cut_by_proxy": 0, "indeterminate": 0}
    })
}
