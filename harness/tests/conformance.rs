//! The conformance suite: every scenario file under `scenarios/` becomes one test,
//! named `<group>/<name>` (e.g. `CT-10/cut-at-random-bytes`), played through the
//! engine's entry point against a fresh reference server on 127.0.0.1 port 0 (one per
//! test, so tests are independent and run in parallel). Filters, `--list` and
//! cargo-nextest work as for any test.
//!
//! The seed comes from `SSE_HARNESS_SEED` (default: random) and is printed; a failing
//! test prints its findings and the command that replays it with the same seed.
//! Durability scenarios run the reference server as a child process (through this
//! package's `sse-harness serve-reference`) so they can SIGKILL it.

mod support;

use libtest_mimic::{Arguments, Failed, Trial};
use sse_harness::embedded::ReferenceProcess;
use sse_harness::scenario::{self, Scenario};
use sse_harness::{RunConfig, TargetSpec};

async fn play(sc: Scenario, seed: u64) -> Result<(), Failed> {
    let needs_control = sc.probe.as_ref().is_some_and(|p| p.needs_control());
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_sse-harness"));
    let child = needs_control
        .then(|| ReferenceProcess::plan(bin, &Default::default()))
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut cfg = match &child {
        Some(c) => RunConfig::against_process(c),
        None => RunConfig::new(TargetSpec::Embedded {
            faults: Default::default(),
        }),
    };
    cfg.replay_prefix = Some(support::replay_prefix("conformance", seed));
    let r = support::play(cfg, &sc.id(), seed).await?;
    support::expect_pass(&r, seed, 20)
}

fn main() {
    let mut args = Arguments::from_args();
    // Three at once: the scenarios wait on their pace and deadlines, but they also judge
    // timings (wire latency, heartbeats) on a server in this process, and the suite is
    // busier than the others. Measured on two cores: two at a time, 84 % of one core for
    // 108 s; three, 104 % for 80 s; four, 125 % for 71 s.
    support::default_test_threads(&mut args, 3);
    let seed = support::seed("conformance", args.list);
    let scenarios = scenario::builtin().expect("the scenario files parse");
    let trials = scenarios
        .into_iter()
        .map(|sc| Trial::test(sc.id(), move || support::block_on(play(sc, seed))?))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
