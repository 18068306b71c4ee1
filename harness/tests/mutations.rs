//! The mutation test: every row of `contracts/mutations.toml` is one test,
//! `fault/<name>`, that starts a reference server with that deliberate fault, plays
//! the scenarios its row lists, and requires the named contract to fail in every run
//! (3 out of 3 for faults that show only under load or timing), each time in a
//! scenario whose control (the same scenario and seed, no fault) does not fail it. The
//! controls are played once per scenario and seed and shared by every row. The whole
//! matrix (every scenario of the contract's family) is `sse-harness mutations
//! --all-scenarios`, committed as docs/MUTATIONS.md. The clean server passing every
//! scenario is the other half of the proof (`tests/conformance.rs`).

mod support;

use std::sync::Arc;

use harness_model::Contracts;
use libtest_mimic::{Arguments, Failed, Trial};
use sse_harness::mutation;
use sse_harness::scenario;

fn main() {
    let mut args = Arguments::from_args();
    // Six rows at once: a row mostly waits (on its servers' streams and the scenarios'
    // pace and deadlines). Measured on two cores: two at a time used 38 % of one core
    // for 612 s; six, 94 % for 246 s, each row taking as long as beside one other.
    support::default_test_threads(&mut args, 6);
    let seed = support::seed("mutation", args.list);
    let rows = mutation::table().expect("contracts/mutations.toml parses");
    let player = Arc::new(mutation::Player {
        all: scenario::builtin().expect("the scenario files parse"),
        seed,
        bin: std::path::PathBuf::from(env!("CARGO_BIN_EXE_sse-harness")),
        scope: mutation::Scope::Listed,
        controls: mutation::Controls::default(),
        jobs: 1,
    });
    // Rows whose scenarios need Chromium are ignored without it (a notice; under
    // CI=true they run, and fail).
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let no_browser = sse_harness::browser::chromium().is_none() && !ci;
    let needs_browser = |m: &mutation::Mutation| {
        player
            .all
            .iter()
            .any(|sc| sc.has_browsers() && m.scenarios.iter().any(|g| g == &sc.id()))
    };
    let mut trials: Vec<Trial> = rows
        .into_iter()
        .map(|m| {
            let ignored = (no_browser && needs_browser(&m)) || m.across_shards;
            if ignored && !args.list {
                let why = if m.across_shards {
                    "it shows only across client addresses: tests/shards.rs proves it"
                } else {
                    "no Chromium"
                };
                eprintln!("NOTICE: fault/{} ignored: {why}", m.fault);
            }
            let player = player.clone();
            Trial::test(format!("fault/{}", m.fault), move || {
                let o = support::block_on(player.play(&m))?;
                if o.passed() {
                    return Ok(());
                }
                let msg = match (&o.error, &o.finding) {
                    (Some(e), _) => format!("fault {} could not be played: {e}", m.fault),
                    (None, f) => format!(
                        "fault {} was caught by {} in {}/{} runs (seed {seed}; runs where the control failed it too: {}); other contracts that failed: {:?}; first finding: {}; first faulty run that could not be played: {}",
                        m.fault,
                        m.catches,
                        o.caught,
                        m.runs,
                        o.control_misfires(),
                        o.also,
                        f.as_ref().map(|f| f.message()).unwrap_or_else(|| "none".into()),
                        o.fault_error.as_deref().unwrap_or("none")
                    ),
                };
                Err(Failed::from(msg))
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    trials.push(Trial::test("every-contract-has-a-mutation", || {
        let missing = mutation::unproven(&Contracts::builtin()).map_err(|e| e.to_string())?;
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("contracts no fault proves: {}", missing.join(", ")).into())
        }
    }));
    libtest_mimic::run(&args, trials).exit();
}
