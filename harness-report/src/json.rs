//! `summary.json`: the machine-readable report, schema `sse-harness/summary` version 1
//! (documented in `schema/summary-v1.schema.json`).

use std::collections::BTreeMap;

use harness_model::{
    Evidence, Finding, Level, RunEvent, RunLimits, RunSummary, ScenarioResult, ScenarioStats,
    Shortfall, ThresholdCheck, Totals, Verdict,
};
use serde::Serialize;

use crate::error::{ReportError, ReportErrorKind};
use crate::files::Rendered;
use crate::metrics::MetricSummary;
use crate::runlog::RunLog;

/// The schema's name and version, written into every summary.
pub(crate) const SCHEMA: &str = "sse-harness/summary";
pub(crate) const VERSION: u32 = 1;

#[derive(Serialize)]
struct Summary<'a> {
    schema: &'static str,
    version: u32,
    run: Run<'a>,
    outcome: Option<&'a RunSummary>,
    exit_code: Option<u8>,
    /// Whether a signal stopped the run before its end (the report is partial).
    interrupted: bool,
    totals: Totals,
    scenarios: Vec<Scenario<'a>>,
    gate: Vec<JsonFinding<'a>>,
    thresholds: &'a [ThresholdCheck],
}

#[derive(Serialize)]
struct Run<'a> {
    seed: u64,
    target: &'a str,
    profile: &'a str,
    embedded: bool,
    /// Present (and true) only when the target's certificate went unverified.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    insecure_tls: bool,
    /// Present (and true) only when the target is off loopback.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    remote: bool,
    /// The HTTP protocol the streams asked for: `http/1.1` or `h2`.
    protocol: harness_model::HttpProtocol,
    started_at: &'a str,
    harness_version: &'a str,
    replay_command: &'a str,
    duration_ms: u64,
    limits: &'a RunLimits,
}

#[derive(Serialize)]
struct Scenario<'a> {
    id: &'a str,
    group: &'a str,
    title: &'a str,
    file: &'a str,
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Why an inconclusive scenario proves nothing, one typed entry per reason.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    shortfalls: &'a [Shortfall],
    duration_ms: u64,
    stats: &'a ScenarioStats,
    replay_command: &'a str,
    metrics: BTreeMap<&'static str, MetricSummary>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    facts: &'a BTreeMap<String, serde_json::Value>,
    findings: Vec<JsonFinding<'a>>,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    contract: &'a str,
    level: Level,
    spec: &'a str,
    message: String,
    evidence: &'a Evidence,
}

fn finding(f: &Finding) -> JsonFinding<'_> {
    JsonFinding {
        contract: &f.contract.0,
        level: f.level,
        spec: &f.spec,
        message: f.message(),
        evidence: &f.evidence,
    }
}

fn scenario(r: &ScenarioResult) -> Scenario<'_> {
    Scenario {
        id: &r.info.id,
        group: &r.info.group,
        title: &r.info.title,
        file: &r.info.file,
        verdict: r.verdict.label(),
        reason: match &r.verdict {
            Verdict::Skipped { reason } | Verdict::Error { reason } => Some(reason.clone()),
            Verdict::Inconclusive { reasons } => Some(harness_model::shortfall::one_line(reasons)),
            _ => None,
        },
        shortfalls: match &r.verdict {
            Verdict::Inconclusive { reasons } => reasons,
            _ => &[],
        },
        duration_ms: r.duration.as_millis() as u64,
        stats: &r.stats,
        replay_command: &r.replay_command,
        metrics: r
            .histograms
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(m, h)| (m.name(), MetricSummary::of(*m, h)))
            .collect(),
        facts: &r.facts,
        findings: r.findings.iter().map(finding).collect(),
    }
}

/// One run event as one line of JSON (`--message-format json`): `{"event": "<kind>", …}`,
/// with scenarios and findings in the same shape as `summary.json`.
pub fn event_line(ev: &RunEvent) -> String {
    let v = match ev {
        RunEvent::RunStarted { meta, scenarios } => {
            let mut v = serde_json::json!({
                "event": "run_started", "seed": meta.seed, "target": meta.target,
                "profile": meta.profile, "embedded": meta.embedded, "started_at": meta.started_at,
                "protocol": meta.protocol,
                "harness_version": meta.harness_version, "replay_command": meta.replay_command,
                "limits": meta.limits,
                "scenarios": scenarios.iter().map(|s| &s.id).collect::<Vec<_>>(),
            });
            if meta.insecure_tls {
                v["insecure_tls"] = true.into();
            }
            if meta.remote {
                v["remote"] = true.into();
            }
            v
        }
        RunEvent::ScenarioStarted { info } => {
            serde_json::json!({ "event": "scenario_started", "id": info.id })
        }
        RunEvent::ScenarioFinished(r) => {
            serde_json::json!({ "event": "scenario_finished", "scenario": scenario(r) })
        }
        RunEvent::RunGate {
            findings,
            thresholds,
            baselined,
        } => serde_json::json!({
            "event": "run_gate",
            "findings": findings.iter().map(finding).collect::<Vec<_>>(),
            "thresholds": thresholds,
            "baselined": baselined,
        }),
        RunEvent::RunFinished { duration, summary } => serde_json::json!({
            "event": "run_finished", "duration_ms": duration.as_millis() as u64,
            "outcome": summary, "exit_code": summary.outcome.exit_code(),
        }),
    };
    v.to_string()
}

/// Streams every run event as one line of JSON to a writer (`--message-format json`).
pub struct JsonLinesReporter {
    out: Box<dyn std::io::Write + Send>,
}

impl JsonLinesReporter {
    /// A reporter writing one line per event to `out`.
    pub fn new(out: Box<dyn std::io::Write + Send>) -> JsonLinesReporter {
        JsonLinesReporter { out }
    }
}

impl crate::Reporter for JsonLinesReporter {
    fn on_event(&mut self, ev: &RunEvent) -> Result<(), ReportError> {
        let mut line = event_line(ev);
        line.push('\n');
        self.out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|e| ReportError::new(ReportErrorKind::Terminal, e))
    }
}

/// The summary of a finished run, as pretty JSON in schema field order.
pub(crate) fn summary(log: &RunLog) -> Result<String, ReportError> {
    let meta = log
        .meta
        .as_ref()
        .ok_or_else(|| ReportError::new(ReportErrorKind::NotStarted, "no RunStarted event"))?;
    let summary = Summary {
        schema: SCHEMA,
        version: VERSION,
        run: Run {
            seed: meta.seed,
            target: &meta.target,
            profile: &meta.profile,
            embedded: meta.embedded,
            insecure_tls: meta.insecure_tls,
            remote: meta.remote,
            protocol: meta.protocol,
            started_at: &meta.started_at,
            harness_version: &meta.harness_version,
            replay_command: &meta.replay_command,
            duration_ms: log.duration.unwrap_or_default().as_millis() as u64,
            limits: &meta.limits,
        },
        outcome: log.summary.as_ref(),
        exit_code: log.summary.as_ref().map(|s| s.outcome.exit_code()),
        interrupted: log
            .summary
            .as_ref()
            .is_some_and(|s| s.interrupted.is_some()),
        totals: log.totals(),
        scenarios: log.results.iter().map(scenario).collect(),
        gate: log.gate.iter().map(finding).collect(),
        thresholds: &log.thresholds,
    };
    let mut text = serde_json::to_string_pretty(&summary).map_err(|e| {
        ReportError::new(
            ReportErrorKind::Serialize {
                format: "summary.json",
            },
            e,
        )
    })?;
    text.push('\n');
    Ok(text)
}

pub(crate) fn render(log: &RunLog) -> Result<Vec<Rendered>, ReportError> {
    Ok(vec![Rendered::new("summary.json", summary(log)?)])
}
