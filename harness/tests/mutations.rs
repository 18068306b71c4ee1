//! The mutation test: every row of `contracts/mutations.toml` is one test,
//! `fault/<name>`, that starts a reference server with that deliberate fault, plays
//! the scenarios that must catch it, and requires the named contract to fail in every
//! run (3 out of 3 for faults that show only under load or timing). The clean server
//! passing every scenario is the other half of the proof (`tests/conformance.rs`).

mod support;

use harness_model::Contracts;
use libtest_mimic::{Arguments, Failed, Trial};
use sse_harness::mutation;
use sse_harness::scenario;

fn main() {
    let args = Arguments::from_args();
    let seed = support::seed("mutation", args.list);
    let rows = mutation::table().expect("contracts/mutations.toml parses");
    let mut trials: Vec<Trial> = rows
        .into_iter()
        .map(|m| {
            Trial::test(format!("fault/{}", m.fault), move || {
                let all = scenario::builtin().map_err(|e| e.to_string())?;
                let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_sse-harness"));
                let o = support::block_on(mutation::play(&m, &all, seed, &bin))?;
                if o.passed() {
                    return Ok(());
                }
                let msg = match (&o.error, &o.finding) {
                    (Some(e), _) => format!("fault {} could not be played: {e}", m.fault),
                    (None, f) => format!(
                        "fault {} was caught by {} in {}/{} runs (seed {seed}); other contracts that failed: {:?}; first finding: {}",
                        m.fault,
                        m.catches,
                        o.caught,
                        m.runs,
                        o.also,
                        f.as_ref().map(|f| f.message()).unwrap_or_else(|| "none".into())
                    ),
                };
                Err(Failed::from(msg))
            })
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
