//! `NETWORK/lost-publish-acks` proves something only when a publish really lost its
//! answer: played with its reset windows moved past the end of publishing (the proxy
//! is there, the toxics never act), a clean reference server must leave it
//! inconclusive, never a pass. (That it passes as shipped is the conformance suite's;
//! that it catches `idempotency-ignored` is the mutation suite's.)
#![cfg(feature = "embedded")]

mod support;

use harness_model::{Shortfall, Verdict};
use sse_harness::{RunConfig, Selection, TargetSpec};

const SCENARIO: &str = include_str!("../../scenarios/network/lost-publish-acks.toml");

/// The scenario with every toxic window `shift_ms` later.
fn shifted(shift_ms: u64) -> String {
    SCENARIO
        .lines()
        .map(|l| match l.split_once(" = ") {
            Some((k @ ("from_ms" | "until_ms"), v)) => {
                format!("{k} = {}", v.parse::<u64>().unwrap() + shift_ms)
            }
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn without_a_lost_answer_the_scenario_is_inconclusive() {
    let seed = support::seed("lost_acks", false);
    let dir = tempfile::tempdir().unwrap();
    let text = shifted(50_000);
    assert_ne!(text, SCENARIO);
    std::fs::write(dir.path().join("late.toml"), text).unwrap();
    let mut cfg = RunConfig::new(TargetSpec::Embedded {
        faults: Default::default(),
    });
    cfg.selection = Selection {
        dir: Some(dir.path().to_path_buf()),
        globs: Vec::new(),
    };
    let r = support::block_on(support::play(cfg, "NETWORK/lost-publish-acks", seed))
        .unwrap()
        .unwrap();
    let Verdict::Inconclusive { reasons } = &r.verdict else {
        panic!("seed {seed}: expected inconclusive, got {:?}", r.verdict);
    };
    assert!(
        reasons
            .iter()
            .any(|s| matches!(s, Shortfall::NoIndeterminateWrite { writes: 800 })),
        "seed {seed}: {reasons:?}"
    );
}
