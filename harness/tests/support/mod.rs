//! What the libtest-mimic suites (conformance, mutations, nchan, ...) share: the seed
//! every random choice comes from, how many trials run at once, a runtime per trial,
//! and one scenario played through the engine's entry point.
#![allow(dead_code)]

use harness_model::{Level, ScenarioResult, Verdict};
use libtest_mimic::{Arguments, Failed};
use sse_harness::{RunConfig, Selection};

/// The seed of this test binary: `SSE_HARNESS_SEED`, else a random one; printed (unless
/// only listing) so a failure can be replayed.
pub fn seed(suite: &str, listing: bool) -> u64 {
    let seed = std::env::var("SSE_HARNESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    if !listing {
        eprintln!("{suite} seed: {seed} (set SSE_HARNESS_SEED={seed} to replay)");
    }
    seed
}

/// Runs at least `n` trials at once (as many as there are cores, if more) unless the
/// command line says how many (`--test-threads`, or `RUST_TEST_THREADS` as the standard
/// harness reads it). libtest-mimic alone runs as many as there are cores, two on CI,
/// but a trial mostly waits: on its servers' streams, on publishes paced by the
/// scenario, on deadlines, so two at a time leave the CPU idle. Each suite picks its
/// `n` from measurements on two cores, lower where its trials judge timings (wire
/// latency, heartbeats) that a busy machine would stretch.
pub fn default_test_threads(args: &mut Arguments, n: usize) {
    let from_env = std::env::var("RUST_TEST_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&v| v > 0);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    args.test_threads = args.test_threads.or(from_env).or(Some(n.max(cores)));
}

/// The command line that replays one trial of `test` with `seed`.
pub fn replay_prefix(test: &str, seed: u64) -> String {
    format!("SSE_HARNESS_SEED={seed} cargo test -p sse-harness --test {test} --")
}

/// Runs `f` on a fresh two-thread runtime (one per trial, so trials are independent).
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, Failed> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(f))
}

/// Plays the one scenario `id` of `cfg`'s scenarios through `sse_harness::run` and
/// returns its result.
pub async fn play(mut cfg: RunConfig, id: &str, seed: u64) -> Result<ScenarioResult, Failed> {
    cfg.selection = Selection {
        dir: cfg.selection.dir.take(),
        globs: Selection::one(id).globs,
    };
    cfg.seed = Some(seed);
    let outcome = sse_harness::run(cfg, &mut |_| {})
        .await
        .map_err(|e| format!("{id} could not start (seed {seed}): {e}"))?;
    outcome
        .results
        .into_iter()
        .next()
        .ok_or_else(|| format!("{id}: no scenario ran").into())
}

/// Ok for a pass or a skip; else the reason it is inconclusive or the MUST findings (at most `shown`) and the replay command.
pub fn expect_pass(r: &ScenarioResult, seed: u64, shown: usize) -> Result<(), Failed> {
    match &r.verdict {
        Verdict::Pass | Verdict::Skipped { .. } => Ok(()),
        Verdict::Fail => {
            let must: Vec<_> = r
                .findings
                .iter()
                .filter(|f| f.level == Level::Must)
                .collect();
            let mut msg = format!("{} failed (seed {seed}):\n", r.info.id);
            for f in must.iter().take(shown) {
                msg.push_str(&format!("  {f}\n"));
            }
            if must.len() > shown {
                msg.push_str(&format!("  ... and {} more\n", must.len() - shown));
            }
            msg.push_str(&format!("replay: {}", r.replay_command));
            Err(msg.into())
        }
        Verdict::Error { reason } => {
            Err(format!("{} could not run (seed {seed}): {reason}", r.info.id).into())
        }
        Verdict::Inconclusive { .. } => Err(format!(
            "{} inconclusive (seed {seed}): {}\nreplay: {}",
            r.info.id,
            r.verdict.reason().unwrap_or_default(),
            r.replay_command
        )
        .into()),
        Verdict::Interrupted | Verdict::NotRun => {
            Err(format!("{} {} (seed {seed})", r.info.id, r.verdict.label()).into())
        }
    }
}
