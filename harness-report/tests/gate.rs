//! Thresholds and the expected-failures baseline (the run outcome rule itself is the
//! engine's: `sse_harness::outcome`).

mod support;

use harness_model::{Contracts, Metric, Verdict};
use harness_report::gate::{self, Baseline, Op, Stat, Threshold, ThresholdErrorKind};

#[test]
fn thresholds_parse_with_units() {
    let t: Threshold = "publish_to_deliver.p99 < 50ms".parse().unwrap();
    assert_eq!(
        t,
        Threshold {
            metric: Metric::PublishToDeliver,
            stat: Stat::P99,
            op: Op::Lt,
            value: 50_000.0
        }
    );
    assert_eq!(t.to_string(), "publish_to_deliver.p99 < 50ms");
    let t: Threshold = "replay_rate.p50>=100000".parse().unwrap();
    assert_eq!(
        (t.metric, t.stat, t.op, t.value),
        (Metric::ReplayRate, Stat::P50, Op::Ge, 100_000.0)
    );
    let t: Threshold = "connect_to_open.max <= 1.5s".parse().unwrap();
    assert_eq!(t.value, 1_500_000.0);
    let t: Threshold = "reconnect_to_caught_up.p99.9 > 250us".parse().unwrap();
    assert_eq!((t.stat, t.op, t.value), (Stat::P999, Op::Gt, 250.0));
}

#[test]
fn thresholds_read_from_a_profile_as_strings() {
    #[derive(serde::Deserialize)]
    struct Profile {
        thresholds: Vec<Threshold>,
    }
    let p: Profile = toml::from_str(
        "thresholds = [\"publish_to_deliver.p99 < 50ms\", \"replay_rate.p50 > 100_000\"]",
    )
    .map_err(|e| e.to_string())
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.thresholds[0].to_string(), "publish_to_deliver.p99 < 50ms");
    let err = toml::from_str::<Profile>("thresholds = [\"latency.p99 < 5ms\"]")
        .err()
        .unwrap();
    assert!(err.to_string().contains("unknown metric"), "{err}");
}

#[test]
fn bad_thresholds_say_what_is_wrong() {
    let kind = |s: &str| s.parse::<Threshold>().unwrap_err().kind;
    assert_eq!(
        kind("publish_to_deliver.p99 50ms"),
        ThresholdErrorKind::MissingOperator
    );
    assert_eq!(
        kind("publish_to_deliver < 50ms"),
        ThresholdErrorKind::MissingStat
    );
    assert_eq!(
        kind("latency.p99 < 50ms"),
        ThresholdErrorKind::UnknownMetric("latency".into())
    );
    assert_eq!(
        kind("publish_to_deliver.p98 < 50ms"),
        ThresholdErrorKind::UnknownStat("p98".into())
    );
    assert_eq!(
        kind("publish_to_deliver.p99 < 50"),
        ThresholdErrorKind::BadLatencyUnit("".into())
    );
    assert_eq!(
        kind("publish_to_deliver.p99 < 50 parsecs"),
        ThresholdErrorKind::BadLatencyUnit("parsecs".into())
    );
    assert_eq!(
        kind("publish_to_deliver.p99 < -5ms"),
        ThresholdErrorKind::BadNumber("-5ms".into())
    );
    assert_eq!(
        kind("publish_to_deliver.p99 <"),
        ThresholdErrorKind::BadNumber("".into())
    );
    assert_eq!(
        kind("replay_rate.p50 > 10ms"),
        ThresholdErrorKind::BadRateUnit("ms".into())
    );
    let msg = "latency.p99 < 5ms"
        .parse::<Threshold>()
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("latency.p99 < 5ms") && msg.contains("publish_to_deliver"),
        "{msg}"
    );
}

#[test]
fn thresholds_evaluate_over_the_merged_run() {
    let results = support::results();
    let c = Contracts::builtin();
    let ts: Vec<Threshold> = [
        "publish_to_deliver.p99 < 50ms",
        "publish_to_deliver.p50 < 10s",
        "connect_to_open.max < 1h",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect();
    assert_eq!(ts.len(), 2, "1h is not a unit");
    let findings = gate::evaluate(&ts, &results, &c);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.contract.0, "gate.threshold");
    assert_eq!(f.evidence.expected, "publish_to_deliver.p99 < 50ms");
    assert!(
        f.evidence.seen.starts_with("publish_to_deliver.p99 = "),
        "{}",
        f.evidence.seen
    );
    assert!(
        f.evidence.seen.ends_with("ms over 6411 samples"),
        "{}",
        f.evidence.seen
    );

    let none = gate::evaluate(&["replay_rate.p50 > 1".parse().unwrap()], &results[..1], &c);
    assert_eq!(none[0].evidence.seen, "no samples of replay_rate");
}

#[test]
fn baseline_round_trips_and_gates_only_tighten() {
    let results = support::results();
    let c = Contracts::builtin();
    let b = Baseline::from_results(&results);
    let text = b.to_toml();
    assert!(
        text.contains(
            "[[failure]]\nscenario = \"CT-11/slow-reader\"\ncontract = \"resume.no-gap\""
        ),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baseline.toml");
    std::fs::write(&path, &text).unwrap();
    let loaded = Baseline::load(&path).unwrap();
    assert_eq!(loaded, b);

    // The same failures: known; an inconclusive scenario is never accepted.
    let out = gate::compare(&loaded, &results, &c);
    assert!(out.stale.is_empty(), "{out:#?}");
    assert_eq!(out.new_failures.len(), 1, "{out:#?}");
    assert!(
        out.new_failures[0]
            .message()
            .contains("backed by evidence, saw inconclusive: 25 of 30 planned cuts executed"),
        "{}",
        out.new_failures[0]
    );
    assert_eq!(out.known.len(), 2);
    let no_error: Vec<_> = results
        .iter()
        .filter(|r| {
            !matches!(
                r.verdict,
                Verdict::Error { .. } | Verdict::Inconclusive { .. }
            )
        })
        .cloned()
        .collect();
    let known = gate::compare(&loaded, &no_error, &c);
    assert!(known.new_failures.is_empty() && known.stale.is_empty());

    // A baselined failure that now passes is stale; a new one is new.
    std::fs::write(
        &path,
        "[[failure]]\nscenario = \"CT-11/slow-reader\"\ncontract = \"resume.no-gap\"\n\
         [[failure]]\nscenario = \"CT-10/cut-at-random-bytes\"\ncontract = \"resume.monotonic\"\n\
         [[failure]]\nscenario = \"CT-99/not-run\"\ncontract = \"resume.no-gap\"\n",
    )
    .unwrap();
    let out = gate::compare(&Baseline::load(&path).unwrap(), &no_error, &c);
    assert_eq!(out.new_failures.len(), 1);
    assert!(
        out.new_failures[0]
            .message()
            .contains("no failure of resume.no-duplicate in CT-11/slow-reader"),
        "{}",
        out.new_failures[0]
    );
    assert_eq!(
        out.new_failures[0].evidence.seq.map(|s| s.0),
        Some(60),
        "evidence keeps the place"
    );
    assert_eq!(out.stale.len(), 1);
    assert!(
        out.stale[0]
            .message()
            .contains("resume.monotonic in CT-10/cut-at-random-bytes")
    );
    assert_eq!(out.unchecked.len(), 1, "a scenario not run is not judged");
    assert_eq!(out.findings().count(), 2);
}

#[test]
fn malformed_baselines_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.toml");
    std::fs::write(&path, "[[failure]]\nscenario = \"x\"\ncontrat = \"typo\"\n").unwrap();
    let err = Baseline::load(&path).unwrap_err();
    assert!(matches!(
        err.kind(),
        harness_report::ReportErrorKind::Baseline { .. }
    ));
    let chain = std::error::Error::source(&err).unwrap().to_string();
    assert!(chain.contains("contrat"), "{chain}");
    let err = Baseline::load(&dir.path().join("missing.toml")).unwrap_err();
    assert!(matches!(
        err.kind(),
        harness_report::ReportErrorKind::Io { .. }
    ));
}

#[test]
fn threshold_checks_carry_the_observed_value() {
    let results = support::results();
    let pass_only = &results[..1];
    let checks = gate::check_thresholds(
        &[
            "publish_to_deliver.p99 < 1us".parse().unwrap(),
            "publish_to_deliver.p99 < 1000s".parse().unwrap(),
            "replay_rate.p50 > 1".parse().unwrap(),
        ],
        pass_only,
    );
    assert!(!checks[0].held && checks[1].held, "{checks:#?}");
    assert!(checks[0].observed.is_some() && checks[0].samples > 0);
    assert_eq!(checks[2].observed, None, "nothing measured: no value");
    assert!(!checks[2].held, "a threshold over no samples does not hold");
    let findings = gate::threshold_findings(&checks, &Contracts::builtin());
    assert_eq!(findings.len(), 2);
    assert!(
        findings[1].message().contains("no samples of replay_rate"),
        "{}",
        findings[1]
    );
}
