//! How a whole run ended, decided in this one place: the engine calls [`decide`] once
//! after the gates, sends the result in the final `RunFinished` event, and every
//! reporter and the binary's exit status only read it.
//!
//! The rule, in order:
//! 0. the run was interrupted (Ctrl-C, SIGTERM) → `Interrupted` (130), whatever the
//!    scenarios that finished found: a partial run never passes a gate;
//! 1. a contract failed (with a baseline: a new failure or a stale entry) → `Fail` (1);
//! 2. else some scenario was inconclusive (it did not do what it set out to do, so its
//!    clean recording proves nothing; no baseline accepts that) → `Fail` (1);
//! 3. else some scenario could not be judged → `CouldNotRun` (2);
//! 4. else a threshold did not hold → `ThresholdFail` (3);
//! 5. else `Pass` (0).
//!
//! A shard of a split run (`run --shard I/N`, N > 1) judges none of its split
//! scenarios: each is `Inconclusive` with the one reason `JudgedByMerge`. Such a
//! scenario does not fail the shard's run under rule 2 (it recorded what it set out to
//! record; `sse-harness merge` judges it), and a shard whose run then passes says so
//! in its reason ("… recorded for merge, judged by none"), never as a silent pass.

use harness_model::{
    Interruption, Outcome, RunSummary, ScenarioResult, ThresholdCheck, Totals, Verdict,
};
use harness_report::BaselineOutcome;

/// Decides the run's outcome from its scenario results, its threshold checks, when a
/// baseline was given how the results compare with it, and the signal that interrupted
/// the run, if one did.
pub fn decide(
    results: &[ScenarioResult],
    thresholds: &[ThresholdCheck],
    baseline: Option<&BaselineOutcome>,
    interrupted: Option<Interruption>,
) -> RunSummary {
    let totals = Totals::of(results);
    let (outcome, reason) = if let Some(signal) = interrupted {
        let during = results
            .iter()
            .find(|r| r.verdict == Verdict::Interrupted)
            .map(|r| format!(" during {}", r.info.id))
            .unwrap_or_default();
        let reason = format!(
            "interrupted by {signal}{during}; {} scenario(s) finished, {} not run",
            results.len() as u64 - totals.interrupted - totals.not_run,
            totals.not_run
        );
        (Outcome::Interrupted, Some(reason))
    } else if let Some(reason) = contract_failure(results, baseline) {
        (Outcome::Fail, Some(reason))
    } else if let Some(reason) = inconclusive(results, totals.inconclusive) {
        (Outcome::Fail, Some(reason))
    } else if let Some(r) = results.iter().find_map(|r| match &r.verdict {
        Verdict::Error { reason } => Some(format!("{}: {reason}", r.info.id)),
        _ => None,
    }) {
        let reason = format!("could not run {} scenario(s); first: {r}", totals.error);
        (Outcome::CouldNotRun, Some(reason))
    } else if let Some(t) = thresholds.iter().find(|t| !t.held) {
        let n = thresholds.iter().filter(|t| !t.held).count();
        (
            Outcome::ThresholdFail,
            Some(format!(
                "{n} threshold(s) did not hold; first: {}",
                t.threshold
            )),
        )
    } else {
        (Outcome::Pass, recorded_for_merge(results))
    };
    RunSummary {
        outcome,
        totals,
        reason,
        interrupted,
    }
}

/// Whether the scenario is a shard's recorded part of a split scenario, which only
/// `sse-harness merge` judges.
fn judged_by_merge(r: &ScenarioResult) -> bool {
    match &r.verdict {
        Verdict::Inconclusive { reasons } => {
            !reasons.is_empty()
                && reasons
                    .iter()
                    .all(|s| matches!(s, harness_model::Shortfall::JudgedByMerge { .. }))
        }
        _ => false,
    }
}

/// The reason a shard's passing run gives: how many of its scenarios only merge judges.
fn recorded_for_merge(results: &[ScenarioResult]) -> Option<String> {
    let n = results.iter().filter(|r| judged_by_merge(r)).count();
    (n > 0).then(|| {
        format!(
            "{n} scenario(s) recorded for `sse-harness merge`, judged by none here; the run's verdict is the merge's"
        )
    })
}

/// Why the run fails for want of evidence, if it does: the first inconclusive scenario
/// (a shard's part that only merge judges does not count).
fn inconclusive(results: &[ScenarioResult], n: u64) -> Option<String> {
    let first = results
        .iter()
        .filter(|r| !judged_by_merge(r))
        .find(|r| matches!(r.verdict, Verdict::Inconclusive { .. }))?;
    let n = n - results.iter().filter(|r| judged_by_merge(r)).count() as u64;
    Some(format!(
        "{n} scenario(s) inconclusive; first: {}: {}",
        first.info.id,
        first.headline()
    ))
}

/// Why the run fails on its contracts, if it does.
fn contract_failure(
    results: &[ScenarioResult],
    baseline: Option<&BaselineOutcome>,
) -> Option<String> {
    match baseline {
        Some(b) => {
            let first = b.new_failures.first().or(b.stale.first())?;
            Some(format!(
                "the baseline does not hold ({} new, {} stale); first: {}",
                b.new_failures.len(),
                b.stale.len(),
                first.message()
            ))
        }
        None => {
            let failed: Vec<&ScenarioResult> = results
                .iter()
                .filter(|r| r.verdict == Verdict::Fail)
                .collect();
            let first = failed.first()?;
            Some(format!(
                "{} scenario(s) failed; first: {}: {}",
                failed.len(),
                first.info.id,
                first.headline()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness_model::{Contracts, Evidence, ScenarioInfo, ScenarioStats};

    fn result(id: &str, verdict: Verdict) -> ScenarioResult {
        let c = Contracts::builtin();
        let findings = if verdict == Verdict::Fail {
            vec![c.finding(
                harness_model::ids::RESUME_NO_GAP,
                Evidence {
                    expected: "seq 2".into(),
                    seen: "seq 3".into(),
                    ..Evidence::default()
                },
            )]
        } else {
            Vec::new()
        };
        ScenarioResult {
            info: ScenarioInfo {
                id: id.into(),
                group: "T".into(),
                title: String::new(),
                file: String::new(),
            },
            verdict,
            findings,
            duration: Default::default(),
            stats: ScenarioStats::default(),
            histograms: Default::default(),
            replay_command: String::new(),
            facts: Default::default(),
        }
    }

    fn check(held: bool) -> ThresholdCheck {
        ThresholdCheck {
            threshold: "publish_to_deliver.p99 < 1ms".into(),
            observed: Some("2ms".into()),
            samples: 10,
            held,
        }
    }

    fn error(id: &str) -> ScenarioResult {
        result(
            id,
            Verdict::Error {
                reason: "target unreachable".into(),
            },
        )
    }

    #[test]
    fn passes_only_when_everything_held() {
        let skipped = Verdict::Skipped {
            reason: "no capability".into(),
        };
        let ok = [result("T/a", Verdict::Pass), result("T/b", skipped)];
        let s = decide(&ok, &[check(true)], None, None);
        assert_eq!((s.outcome, s.outcome.exit_code()), (Outcome::Pass, 0));
        assert_eq!(s.totals.skipped, 1);
        assert_eq!(s.reason, None);
    }

    #[test]
    fn a_failed_contract_wins_over_errors_and_thresholds() {
        let r = [result("T/a", Verdict::Fail), error("T/b")];
        let s = decide(&r, &[check(false)], None, None);
        assert_eq!((s.outcome, s.outcome.exit_code()), (Outcome::Fail, 1));
        assert!(s.reason.unwrap().contains("T/a: [resume.no-gap]"));
    }

    #[test]
    fn an_unjudged_scenario_is_could_not_run() {
        let r = [result("T/a", Verdict::Pass), error("T/b")];
        let s = decide(&r, &[check(false)], None, None);
        assert_eq!(
            (s.outcome, s.outcome.exit_code()),
            (Outcome::CouldNotRun, 2)
        );
        assert!(s.reason.unwrap().contains("T/b: target unreachable"));
    }

    #[test]
    fn a_missed_threshold_alone_has_its_own_exit_code() {
        let r = [result("T/a", Verdict::Pass)];
        let s = decide(&r, &[check(true), check(false)], None, None);
        assert_eq!(
            (s.outcome, s.outcome.exit_code()),
            (Outcome::ThresholdFail, 3)
        );
        assert!(s.reason.unwrap().starts_with("1 threshold(s)"));
    }

    fn inconclusive(id: &str) -> ScenarioResult {
        result(
            id,
            Verdict::Inconclusive {
                reasons: vec![harness_model::Shortfall::CutsNotExecuted {
                    planned: 4,
                    executed: 1,
                    without_place: 0,
                }],
            },
        )
    }

    #[test]
    fn an_inconclusive_scenario_fails_the_run_unless_a_failure_explains_it() {
        let r = [
            result("T/a", Verdict::Pass),
            inconclusive("T/b"),
            error("T/c"),
        ];
        let s = decide(&r, &[check(false)], None, None);
        assert_eq!((s.outcome, s.outcome.exit_code()), (Outcome::Fail, 1));
        assert_eq!(s.totals.inconclusive, 1);
        let reason = s.reason.unwrap();
        assert!(
            reason.contains("1 scenario(s) inconclusive; first: T/b: 1 of 4 planned cuts executed"),
            "{reason}"
        );
        let r = [inconclusive("T/b"), result("T/a", Verdict::Fail)];
        let s = decide(&r, &[], None, None);
        assert!(s.reason.unwrap().contains("T/a: [resume.no-gap]"));
        // A baseline that accepts every failure does not accept an inconclusive scenario.
        let known = BaselineOutcome::default();
        assert_eq!(
            decide(&[inconclusive("T/b")], &[], Some(&known), None).outcome,
            Outcome::Fail
        );
    }

    #[test]
    fn an_interrupted_run_never_passes_and_says_what_it_cut_short() {
        let r = [
            result("T/a", Verdict::Pass),
            result("T/b", Verdict::Interrupted),
            result("T/c", Verdict::NotRun),
            result("T/d", Verdict::NotRun),
        ];
        let s = decide(&r, &[check(true)], None, Some(Interruption::Sigint));
        assert_eq!(
            (s.outcome, s.outcome.exit_code()),
            (Outcome::Interrupted, 130)
        );
        assert_eq!((s.totals.interrupted, s.totals.not_run), (1, 2));
        assert_eq!(s.interrupted, Some(Interruption::Sigint));
        assert_eq!(
            s.reason.as_deref(),
            Some("interrupted by SIGINT during T/b; 1 scenario(s) finished, 2 not run")
        );
        // Even when every finished scenario failed: the run stopped, it says so.
        let s = decide(
            &[result("T/a", Verdict::Fail)],
            &[],
            None,
            Some(Interruption::Sigterm),
        );
        assert_eq!(s.outcome, Outcome::Interrupted);
    }

    #[test]
    fn with_a_baseline_only_new_or_stale_entries_fail() {
        let r = [result("T/a", Verdict::Fail)];
        let known = BaselineOutcome::default();
        assert_eq!(decide(&r, &[], Some(&known), None).outcome, Outcome::Pass);
        let c = Contracts::builtin();
        let stale = BaselineOutcome {
            stale: vec![c.finding(
                harness_model::ids::GATE_BASELINE,
                Evidence {
                    expected: "a failure".into(),
                    seen: "none".into(),
                    ..Evidence::default()
                },
            )],
            ..BaselineOutcome::default()
        };
        assert_eq!(decide(&r, &[], Some(&stale), None).outcome, Outcome::Fail);
    }
}
