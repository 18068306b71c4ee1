//! The run as the reporters see it: every event of the stream folded into one record.

use std::time::Duration;

use harness_model::{
    ContractId, Finding, RunEvent, RunMeta, RunSummary, ScenarioInfo, ScenarioResult,
    ThresholdCheck, Totals,
};

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
    /// Every threshold with its observed value.
    pub thresholds: Vec<ThresholdCheck>,
    /// Failures the baseline expects, as (scenario id, contract).
    pub baselined: Vec<(String, ContractId)>,
    /// Wall time of the run, once it finished.
    pub duration: Option<Duration>,
    /// The outcome the engine decided, once the run finished.
    pub summary: Option<RunSummary>,
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
                thresholds,
                baselined,
            } => {
                self.gate.extend(findings.iter().cloned());
                self.thresholds.extend(thresholds.iter().cloned());
                self.baselined.extend(baselined.iter().cloned());
            }
            RunEvent::RunFinished { duration, summary } => {
                self.duration = Some(*duration);
                self.summary = Some(summary.clone());
            }
        }
    }

    /// Counts of the finished scenarios by verdict.
    pub fn totals(&self) -> Totals {
        Totals::of(&self.results)
    }

    /// Whether the run passed, as the engine decided (false until the run finished).
    pub fn passed(&self) -> bool {
        self.summary.as_ref().is_some_and(|s| s.outcome.passed())
    }

    /// The outcome's label (`PASS`, `FAIL`, …), `UNFINISHED` before the run finished.
    pub fn label(&self) -> &'static str {
        self.summary
            .as_ref()
            .map_or("UNFINISHED", |s| s.outcome.label())
    }
}
