//! Run gates: limits the user puts on a run, evaluated after the scenarios.
//!
//! - [`Threshold`]s, like k6's: `publish_to_deliver.p99 < 50ms` over the run's merged
//!   histogram of a metric; a breach is a `gate.threshold` finding.
//! - A [`Baseline`] of expected failures: a new failure and a baselined failure that now
//!   passes (a stale entry) are both `gate.baseline` findings, so gates only tighten.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use harness_model::{
    ContractId, Contracts, Evidence, Finding, KnownContract, Level, Metric, ScenarioResult,
    ThresholdCheck, Verdict, ids,
};
use serde::{Deserialize, Serialize};

use crate::error::{ReportError, ReportErrorKind};
use crate::metrics;
pub use crate::metrics::Stat;

/// How the statistic must compare to the limit.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// Whether `seen <op> limit` holds.
    pub fn holds(self, seen: f64, limit: f64) -> bool {
        match self {
            Op::Lt => seen < limit,
            Op::Le => seen <= limit,
            Op::Gt => seen > limit,
            Op::Ge => seen >= limit,
        }
    }
}

/// A limit on one statistic of one metric over the whole run, e.g. `publish_to_deliver.p99 < 50ms`.
/// In a profile it is that string (serde reads and writes it as one).
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Threshold {
    /// The metric limited.
    pub metric: Metric,
    /// Its statistic.
    pub stat: Stat,
    /// The comparison that must hold.
    pub op: Op,
    /// The limit in the metric's recorded unit (µs for latencies, events/s for rates).
    pub value: f64,
}

/// Why a threshold did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ThresholdErrorKind {
    /// No `<`, `<=`, `>` or `>=`.
    #[error("no comparison operator (one of <, <=, >, >=)")]
    MissingOperator,
    /// The left side is not `<metric>.<stat>`.
    #[error("the left side must be <metric>.<stat>, e.g. publish_to_deliver.p99")]
    MissingStat,
    /// An unknown metric name.
    #[error(
        "unknown metric {0:?} (known: connect_to_open, connect_to_head, publish_to_deliver, ack_to_deliver, reconnect_to_caught_up, replay_rate)"
    )]
    UnknownMetric(String),
    /// An unknown statistic.
    #[error("unknown statistic {0:?} (known: p50, p90, p99, p999, max, mean, min)")]
    UnknownStat(String),
    /// The limit is not a non-negative number.
    #[error("the limit {0:?} is not a non-negative number")]
    BadNumber(String),
    /// A latency limit without a unit, or with an unknown one.
    #[error("a latency limit needs a unit (us, ms or s), got {0:?}")]
    BadLatencyUnit(String),
    /// A rate limit with a unit other than events/s.
    #[error("a rate limit is a plain number of events/s, got unit {0:?}")]
    BadRateUnit(String),
}

/// A threshold that did not parse: the input and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("threshold {input:?}: {kind}")]
pub struct ThresholdError {
    /// The text given.
    pub input: String,
    /// What is wrong with it.
    pub kind: ThresholdErrorKind,
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(input: &str) -> Result<Threshold, ThresholdError> {
        let err = |kind| ThresholdError {
            input: input.to_owned(),
            kind,
        };
        let at = input
            .find(['<', '>'])
            .ok_or_else(|| err(ThresholdErrorKind::MissingOperator))?;
        let (lhs, rest) = input.split_at(at);
        let (op, rhs) = match (rest.as_bytes()[0], rest.as_bytes().get(1)) {
            (b'<', Some(b'=')) => (Op::Le, &rest[2..]),
            (b'>', Some(b'=')) => (Op::Ge, &rest[2..]),
            (b'<', _) => (Op::Lt, &rest[1..]),
            _ => (Op::Gt, &rest[1..]),
        };
        let (metric, stat) = lhs
            .trim()
            .split_once('.')
            .ok_or_else(|| err(ThresholdErrorKind::MissingStat))?;
        let metric = Metric::from_name(metric.trim())
            .ok_or_else(|| err(ThresholdErrorKind::UnknownMetric(metric.trim().to_owned())))?;
        let stat = Stat::parse(stat.trim())
            .ok_or_else(|| err(ThresholdErrorKind::UnknownStat(stat.trim().to_owned())))?;
        let rhs = rhs.trim();
        let split = rhs
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(rhs.len());
        let (number, unit) = rhs.split_at(split);
        let number: f64 = number
            .replace('_', "")
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| err(ThresholdErrorKind::BadNumber(rhs.to_owned())))?;
        let unit = unit.trim();
        let value = match metric {
            Metric::ReplayRate => match unit {
                "" | "/s" | "events/s" => number,
                other => return Err(err(ThresholdErrorKind::BadRateUnit(other.to_owned()))),
            },
            _ => match unit {
                "us" | "µs" => number,
                "ms" => number * 1_000.0,
                "s" => number * 1_000_000.0,
                other => return Err(err(ThresholdErrorKind::BadLatencyUnit(other.to_owned()))),
            },
        };
        Ok(Threshold {
            metric,
            stat,
            op,
            value,
        })
    }
}

impl TryFrom<String> for Threshold {
    type Error = ThresholdError;

    fn try_from(s: String) -> Result<Threshold, ThresholdError> {
        s.parse()
    }
}

impl From<Threshold> for String {
    fn from(t: Threshold) -> String {
        t.to_string()
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{} {} {}",
            self.metric.name(),
            self.stat.name(),
            self.op.symbol(),
            metrics::format_value(self.metric, self.value)
        )
    }
}

/// Judges every threshold against the run's histogram of its metric, merged over all
/// scenarios: the observed value and whether it held (a threshold over a metric nothing
/// measured does not hold).
pub fn check_thresholds(
    thresholds: &[Threshold],
    results: &[ScenarioResult],
) -> Vec<ThresholdCheck> {
    let merged = metrics::merged(results);
    thresholds
        .iter()
        .map(|t| {
            let observed = merged
                .get(&t.metric)
                .map(|h| (metrics::stat(h, t.stat), h.len()));
            ThresholdCheck {
                threshold: t.to_string(),
                observed: observed.map(|(v, _)| metrics::format_value(t.metric, v)),
                samples: observed.map_or(0, |(_, n)| n),
                held: observed.is_some_and(|(v, _)| t.op.holds(v, t.value)),
            }
        })
        .collect()
}

/// The `gate.threshold` finding of each threshold that did not hold.
pub fn evaluate(
    thresholds: &[Threshold],
    results: &[ScenarioResult],
    contracts: &Contracts,
) -> Vec<Finding> {
    threshold_findings(&check_thresholds(thresholds, results), contracts)
}

/// The `gate.threshold` finding of each check that did not hold.
pub fn threshold_findings(checks: &[ThresholdCheck], contracts: &Contracts) -> Vec<Finding> {
    checks
        .iter()
        .filter(|c| !c.held)
        .map(|c| {
            let label = c.threshold.split_whitespace().next().unwrap_or_default();
            let seen = match &c.observed {
                None => format!("no samples of {}", label.split('.').next().unwrap_or(label)),
                Some(v) => format!("{label} = {v} over {} samples", c.samples),
            };
            gate_finding(
                contracts,
                ids::GATE_THRESHOLD,
                Evidence {
                    expected: c.threshold.clone(),
                    seen,
                    ..Evidence::default()
                },
            )
        })
        .collect()
}

/// One expected failure: a contract known to fail in a scenario.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineEntry {
    /// The scenario id, e.g. `CT-10/cut-at-random-bytes`.
    pub scenario: String,
    /// The contract that fails there.
    pub contract: ContractId,
}

impl fmt::Display for BaselineEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.contract, self.scenario)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineFile {
    #[serde(default)]
    failure: Vec<BaselineEntry>,
}

/// The known failures of a target (`--baseline FILE`), a TOML file of
/// `[[failure]] scenario = "CT-10/x"  contract = "resume.no-gap"` entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baseline {
    entries: BTreeSet<BaselineEntry>,
}

impl Baseline {
    /// Reads a baseline file.
    pub fn load(path: &Path) -> Result<Baseline, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
        let file: BaselineFile = toml::from_str(&text).map_err(|e| {
            ReportError::new(
                ReportErrorKind::Baseline {
                    path: path.to_owned(),
                },
                e,
            )
        })?;
        Ok(Baseline {
            entries: file.failure.into_iter().collect(),
        })
    }

    /// The baseline that accepts exactly a run's failures: every MUST finding of every
    /// failed scenario (for `--write-baseline`).
    pub fn from_results(results: &[ScenarioResult]) -> Baseline {
        Baseline {
            entries: failures(results).into_keys().collect(),
        }
    }

    /// The entries, sorted by scenario then contract.
    pub fn entries(&self) -> impl Iterator<Item = &BaselineEntry> {
        self.entries.iter()
    }

    /// The baseline as a TOML file that [`Baseline::load`] reads back.
    pub fn to_toml(&self) -> String {
        let file = BaselineFile {
            failure: self.entries.iter().cloned().collect(),
        };
        let body = toml::to_string(&file).unwrap_or_default();
        format!(
            "# Known failures of this target, one [[failure]] per contract and scenario.\n\
             # A run fails on a failure not listed here, and on a listed one that now passes.\n\n{body}"
        )
    }
}

/// What a run's failures are, measured against a baseline.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BaselineOutcome {
    /// Failures the baseline does not list (`gate.baseline` findings).
    pub new_failures: Vec<Finding>,
    /// Listed failures whose scenario ran and no longer fails that way (`gate.baseline` findings).
    pub stale: Vec<Finding>,
    /// Listed failures that failed again, as expected.
    pub known: Vec<BaselineEntry>,
    /// Listed failures whose scenario did not run (filtered out, skipped or errored): not judged.
    pub unchecked: Vec<BaselineEntry>,
}

impl BaselineOutcome {
    /// The findings to report in the run's gate: new failures, then stale entries.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.new_failures.iter().chain(&self.stale)
    }
}

/// The MUST findings of failed scenarios, by (scenario, contract), first one kept.
fn failures(results: &[ScenarioResult]) -> BTreeMap<BaselineEntry, &Finding> {
    let mut out = BTreeMap::new();
    for r in results.iter().filter(|r| r.verdict == Verdict::Fail) {
        for f in r.findings.iter().filter(|f| f.level == Level::Must) {
            out.entry(BaselineEntry {
                scenario: r.info.id.clone(),
                contract: f.contract.clone(),
            })
            .or_insert(f);
        }
    }
    out
}

/// Compares a run's failures with the baseline.
pub fn compare(b: &Baseline, results: &[ScenarioResult], contracts: &Contracts) -> BaselineOutcome {
    let actual = failures(results);
    let ran: BTreeSet<&str> = results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Pass | Verdict::Fail))
        .map(|r| r.info.id.as_str())
        .collect();
    let mut out = BaselineOutcome::default();
    for (entry, f) in &actual {
        if b.entries.contains(entry) {
            out.known.push(entry.clone());
        } else {
            let e = &f.evidence;
            out.new_failures.push(gate_finding(
                contracts,
                ids::GATE_BASELINE,
                Evidence {
                    expected: format!("no failure of {entry} (not in the baseline)"),
                    seen: format!("{}: expected {}, saw {}", f.contract, e.expected, e.seen),
                    ..e.clone()
                },
            ));
        }
    }
    // A baseline lists failures; a scenario without evidence is never accepted as a pass.
    for r in results.iter() {
        if let Verdict::Inconclusive { .. } = &r.verdict {
            out.new_failures.push(gate_finding(
                contracts,
                ids::GATE_BASELINE,
                Evidence {
                    expected: format!("scenario {} backed by evidence", r.info.id),
                    seen: format!("inconclusive: {}", r.verdict.reason().unwrap_or_default()),
                    ..Evidence::default()
                },
            ));
        }
    }
    for r in results.iter().filter(|r| r.verdict == Verdict::Fail) {
        if !r.findings.iter().any(|f| f.level == Level::Must) {
            out.new_failures.push(gate_finding(
                contracts,
                ids::GATE_BASELINE,
                Evidence {
                    expected: format!("scenario {} passes or fails with a MUST finding", r.info.id),
                    seen: "verdict fail without a MUST finding".into(),
                    ..Evidence::default()
                },
            ));
        }
    }
    for entry in &b.entries {
        if actual.contains_key(entry) {
            continue;
        }
        if ran.contains(entry.scenario.as_str()) {
            out.stale.push(gate_finding(
                contracts,
                ids::GATE_BASELINE,
                Evidence {
                    expected: format!("failure of {entry}, as the baseline lists"),
                    seen: "it held: remove the entry from the baseline".into(),
                    ..Evidence::default()
                },
            ));
        } else {
            out.unchecked.push(entry.clone());
        }
    }
    out
}

/// A finding of a gate contract.
fn gate_finding(contracts: &Contracts, id: KnownContract, evidence: Evidence) -> Finding {
    contracts.finding(id, evidence)
}
