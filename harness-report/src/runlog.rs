//! The run as the reporters see it: every event of the stream folded into one record.

use std::time::Duration;

use harness_model::{
    ContractId, Finding, RunEvent, RunMeta, ScenarioInfo, ScenarioResult, Verdict,
};
use serde::Serialize;

/// Everything the event stream said about a run so far.
#[derive(Clone, Debug, Default)]
pub struct RunLog {
    /// Facts about the run, once it started.
    pub meta: Option<RunMeta>,
    /// The scenarios announced at the start, in order.
    pub planned: Vec<ScenarioInfo>,
    /// The finished scenarios, in the order they finished.
    pub results: Vec<ScenarioResult>,
    /// Gate findings (thresholds, baseline) on the whole run.
    pub gate: Vec<Finding>,
    /// Failures the baseline expects, as (scenario id, contract).
    pub baselined: Vec<(String, ContractId)>,
    /// Wall time of the run, once it finished.
    pub duration: Option<Duration>,
}

/// How many scenarios ended with each verdict.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Passed.
    pub pass: u64,
    /// Failed (at least one MUST finding).
    pub fail: u64,
    /// Not run for a missing capability.
    pub skipped: u64,
    /// The harness could not run them.
    pub error: u64,
}

impl RunLog {
    /// An empty log, before `RunStarted`.
    pub fn new() -> RunLog {
        RunLog::default()
    }

    /// Folds one event in.
    pub fn record(&mut self, ev: &RunEvent) {
        match ev {
            RunEvent::RunStarted { meta, scenarios } => {
                self.meta = Some(meta.clone());
                self.planned = scenarios.clone();
            }
            RunEvent::ScenarioStarted { .. } => {}
            RunEvent::ScenarioFinished(result) => self.results.push((**result).clone()),
            RunEvent::RunGate {
                findings,
                baselined,
            } => {
                self.gate.extend(findings.iter().cloned());
                self.baselined.extend(baselined.iter().cloned());
            }
            RunEvent::RunFinished { duration } => self.duration = Some(*duration),
        }
    }

    /// Counts of the finished scenarios by verdict.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for r in &self.results {
            match r.verdict {
                Verdict::Pass => t.pass += 1,
                Verdict::Fail => t.fail += 1,
                Verdict::Skipped { .. } => t.skipped += 1,
                Verdict::Error { .. } => t.error += 1,
            }
        }
        t
    }

    /// Whether the run, as reported, passed: no gate finding, no errored scenario, and
    /// every MUST failure covered by the baseline (when there is one).
    pub fn passed(&self) -> bool {
        if self.baselined.is_empty() {
            return crate::run_outcome(&self.results, &self.gate, None) == crate::Outcome::Pass;
        }
        self.gate.is_empty()
            && self.results.iter().all(|r| match &r.verdict {
                Verdict::Error { .. } => false,
                Verdict::Fail => r
                    .findings
                    .iter()
                    .filter(|f| f.level == harness_model::Level::Must)
                    .all(|f| {
                        self.baselined
                            .iter()
                            .any(|(s, c)| *s == r.info.id && *c == f.contract)
                    }),
                _ => true,
            })
    }
}
