//! The conformance suite: every scenario file under `scenarios/` becomes one test,
//! named `<group>/<name>` (e.g. `CT-10/cut-at-random-bytes`), played against a fresh
//! reference server on 127.0.0.1 port 0 (one per test, so tests are independent and
//! run in parallel). Filters, `--list` and cargo-nextest work as for any test.
//!
//! The seed comes from `SSE_HARNESS_SEED` (default: random) and is printed; a failing
//! test prints its findings and the command that replays it with the same seed.
//! Durability scenarios run the reference server as a child process (through this
//! package's `sse-harness serve-reference`) so they can SIGKILL it.

use std::sync::Arc;

use harness_model::{Contracts, Verdict};
use libtest_mimic::{Arguments, Failed, Trial};
use sse_harness::control::{CommandControl, ServerControl};
use sse_harness::embedded::EmbeddedServer;
use sse_harness::profile::Profile;
use sse_harness::runner::Runner;
use sse_harness::scenario::{self, Scenario};
use sse_harness::target::Target;

fn seed() -> u64 {
    std::env::var("SSE_HARNESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

async fn play(sc: Scenario, seed: u64) -> Result<(), Failed> {
    let profile = Profile::load("spine").map_err(|e| e.to_string())?;
    let needs_control = sc.probe.as_ref().is_some_and(|p| p.needs_control());
    let mut _keep = None;
    let mut _dir = None;
    let (target, control): (Target, Option<Arc<dyn ServerControl>>) = if needs_control {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port();
        let token = "conformance-token";
        let cmd = format!(
            "exec '{}' serve-reference --addr 127.0.0.1:{port} --data '{}' --token {token} --heartbeat-ms 500",
            env!("CARGO_BIN_EXE_sse-harness"),
            dir.path().display()
        );
        let control = CommandControl::new(cmd);
        control.start().map_err(|e| e.to_string())?;
        _dir = Some(dir);
        let t = Target::new(
            &format!("http://127.0.0.1:{port}"),
            profile,
            Some(token.into()),
        )
        .map_err(|e| e.to_string())?;
        t.wait_until_up(std::time::Duration::from_secs(20))
            .await
            .map_err(|e| e.to_string())?;
        (t, Some(Arc::new(control)))
    } else {
        let server = EmbeddedServer::start(Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let t = Target::new(
            &server.server.url(),
            profile,
            Some(server.server.token().into()),
        )
        .map_err(|e| e.to_string())?;
        _keep = Some(server);
        (t, None)
    };
    let runner = Runner {
        target: Arc::new(target),
        contracts: Contracts::builtin(),
        seed,
        replay_prefix: format!(
            "SSE_HARNESS_SEED={seed} cargo test -p sse-harness --test conformance --"
        ),
        control,
        recordings: None,
    };
    let r = runner.run_scenario(&sc).await;
    if let Some(s) = _keep {
        let _ = s.server.shutdown().await;
    }
    match r.verdict {
        Verdict::Pass | Verdict::Skipped { .. } => Ok(()),
        Verdict::Fail => {
            let mut msg = format!("{} failed (seed {seed}):\n", sc.id());
            for f in r.findings.iter().take(20) {
                msg.push_str(&format!("  {f}\n"));
            }
            if r.findings.len() > 20 {
                msg.push_str(&format!("  ... and {} more\n", r.findings.len() - 20));
            }
            msg.push_str(&format!("replay: {}", r.replay_command));
            Err(msg.into())
        }
        Verdict::Error { reason } => {
            Err(format!("{} could not run (seed {seed}): {reason}", sc.id()).into())
        }
    }
}

fn main() {
    let args = Arguments::from_args();
    let seed = seed();
    if !args.list {
        eprintln!("conformance seed: {seed} (set SSE_HARNESS_SEED={seed} to replay)");
    }
    let scenarios = scenario::builtin().expect("the scenario files parse");
    let trials = scenarios
        .into_iter()
        .map(|sc| {
            let name = sc.id();
            Trial::test(name, move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(play(sc, seed))
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
