//! `sse-harness`: the command line over the harness engine. It parses flags, picks
//! the target (an external URL, or the embedded reference server), selects scenarios,
//! runs them, feeds the run events to the reporters, applies the gates and exits
//! 0 (every MUST held), 1 (a contract failed) or 2 (could not run).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use harness_model::{Contracts, RunEvent, RunMeta, Verdict};
use harness_report::gate::{self, Baseline, Threshold};
use harness_report::{Outcome, Reporter, TerminalReporter, TerminalStyle};
use sse_harness::control::{CommandControl, ServerControl};
use sse_harness::embedded::EmbeddedServer;
use sse_harness::profile::Profile;
use sse_harness::runner::Runner;
use sse_harness::scenario::{self, Scenario};
use sse_harness::target::Target;

#[derive(Parser)]
#[command(
    name = "sse-harness",
    version,
    about = "Contract-test and chaos harness for Server-Sent Events servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios against a target and write a report directory.
    Run(RunArgs),
    /// List the scenarios (and whether the profile can run them).
    List(ListArgs),
    /// Play the mutation table: each deliberate server fault against the scenarios that
    /// must catch it; prints the table (fault → contract → finding) as Markdown.
    Mutations(MutationArgs),
    /// Run the reference server as a standalone process (what --server-cmd uses in tests).
    #[command(hide = true)]
    ServeReference(ServeArgs),
}

#[derive(Args)]
struct MutationArgs {
    /// Only this fault (repeatable).
    #[arg(long = "fault", value_name = "NAME")]
    faults: Vec<String>,
    /// Seed for the scenarios' random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the Markdown table to this file (default: stdout).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// Base URL of the target, e.g. http://127.0.0.1:8080. Without it the embedded
    /// reference server is started in-process (temporary data, port 0).
    #[arg(long)]
    target: Option<String>,
    /// Target profile: spine, generic, nchan, or a path to a profile TOML file.
    #[arg(long, default_value = "spine")]
    profile: String,
    /// Bearer token for the target (the profile's [auth] says where it goes).
    #[arg(long, env = "SSE_HARNESS_TOKEN")]
    token: Option<String>,
    /// Run only scenarios whose id (`GROUP/name`) matches this glob; repeatable.
    #[arg(long = "scenario", value_name = "GLOB")]
    scenarios: Vec<String>,
    /// Load scenario files from this folder instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    scenarios_dir: Option<PathBuf>,
    /// Seed for every random choice; printed in every report. Default: random.
    #[arg(long)]
    seed: Option<u64>,
    /// Where to write the report (default: reports/<UTC time>-<seed>/).
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// A gate such as `publish_to_deliver.p99 < 50ms`; repeatable (adds to the profile's).
    #[arg(long = "threshold", value_name = "EXPR")]
    thresholds: Vec<String>,
    /// Known failures: the run fails on any other failure and on entries that now pass.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Write this run's failures as a baseline file.
    #[arg(long, value_name = "FILE")]
    write_baseline: Option<PathBuf>,
    /// Shell command that starts the target (run with `exec`); lets the durability
    /// scenarios kill and restart it. The harness starts it first.
    #[arg(long, value_name = "CMD")]
    server_cmd: Option<String>,
    /// Embedded server only: turn on a deliberate fault (repeatable), to see a contract fail.
    #[arg(long = "fault", value_name = "NAME")]
    faults: Vec<String>,
    /// Also write every scenario's full recording (each frame of each client, with
    /// times and byte offsets) as JSON under <report-dir>/recordings/.
    #[arg(long)]
    keep_recordings: bool,
    /// Plain output without colours.
    #[arg(long)]
    no_color: bool,
}

#[derive(Args)]
struct ListArgs {
    /// Profile used to tell which scenarios would be skipped.
    #[arg(long, default_value = "spine")]
    profile: String,
    /// Load scenario files from this folder instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    scenarios_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: std::net::SocketAddr,
    /// Data folder.
    #[arg(long)]
    data: PathBuf,
    /// Bearer token.
    #[arg(long)]
    token: String,
    /// Heartbeat interval.
    #[arg(long, default_value_t = 500)]
    heartbeat_ms: u64,
    /// A deliberate fault to switch on (repeatable).
    #[arg(long = "fault", value_name = "NAME")]
    faults: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sse-harness: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Run(a) => run(a).await,
            Command::List(a) => list(a).map(|_| 0),
            Command::Mutations(a) => mutations(a).await,
            Command::ServeReference(a) => serve(a).await.map(|_| 0),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("sse-harness: could not run: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn select(dir: &Option<PathBuf>, globs: &[String]) -> Result<Vec<Scenario>> {
    let all = match dir {
        Some(d) => scenario::load_dir(d)?,
        None => scenario::builtin()?,
    };
    if globs.is_empty() {
        return Ok(all);
    }
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        b.add(globset::Glob::new(g).with_context(|| format!("--scenario {g}"))?);
    }
    let set = b.build()?;
    let picked: Vec<Scenario> = all.into_iter().filter(|s| set.is_match(s.id())).collect();
    if picked.is_empty() {
        bail!("no scenario matches {}", globs.join(", "));
    }
    Ok(picked)
}

fn list(a: ListArgs) -> Result<()> {
    let profile = Profile::load(&a.profile)?;
    for s in select(&a.scenarios_dir, &[])? {
        let missing: Vec<&String> = s.requires.iter().filter(|c| !profile.has(c)).collect();
        let note = if missing.is_empty() {
            String::new()
        } else {
            format!(
                "  (skipped on {}: needs {})",
                profile.name,
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        println!("{:<44} {}{note}", s.id(), s.title);
    }
    Ok(())
}

async fn serve(a: ServeArgs) -> Result<()> {
    let mut cfg = reference_server::Config::new(a.data, a.token);
    cfg.addr = a.addr;
    cfg.heartbeat_ms = a.heartbeat_ms;
    cfg.faults = parse_faults(&a.faults)?;
    let server = reference_server::RunningServer::start(cfg).await?;
    println!("listening on {}", server.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    server.shutdown().await?;
    Ok(())
}

async fn run(a: RunArgs) -> Result<u8> {
    let contracts = Contracts::builtin();
    let profile = Profile::load(&a.profile)?;
    let scenarios = select(&a.scenarios_dir, &a.scenarios)?;
    let mut thresholds = Vec::new();
    for t in profile.thresholds.gates.iter().chain(&a.thresholds) {
        thresholds.push(
            t.parse::<Threshold>()
                .map_err(|e| anyhow::anyhow!("threshold {t:?}: {e}"))?,
        );
    }
    let baseline = match &a.baseline {
        Some(p) => Some(Baseline::load(p).with_context(|| format!("--baseline {}", p.display()))?),
        None => None,
    };
    let seed = a.seed.unwrap_or_else(rand::random);
    if a.target.is_some() && !a.faults.is_empty() {
        bail!("--fault only applies to the embedded reference server (no --target)");
    }
    let faults = parse_faults(&a.faults)?;
    let control: Option<Arc<dyn ServerControl>> = match &a.server_cmd {
        Some(cmd) => {
            let c = CommandControl::new(cmd.clone());
            c.start()?;
            Some(Arc::new(c))
        }
        None => None,
    };
    let (embedded, base, token) = match &a.target {
        Some(t) => (None, t.clone(), a.token.clone()),
        None => {
            let e = EmbeddedServer::start(faults).await?;
            let (u, t) = (e.server.url(), e.server.token().to_owned());
            (Some(e), u, Some(t))
        }
    };
    let target = Arc::new(Target::new(&base, profile.clone(), token)?);
    if control.is_some() {
        // The target was just started by --server-cmd: give it time to listen.
        target
            .wait_until_up(std::time::Duration::from_secs(20))
            .await?;
    } else if embedded.is_none() {
        // Any HTTP answer will do; no answer at all means the run cannot be judged.
        let path = profile
            .subscribe
            .head_path
            .clone()
            .unwrap_or_else(|| "/".into());
        target
            .request("GET", &path, None, &[])
            .await
            .map_err(|e| anyhow::anyhow!("target unreachable: {e}"))?;
    }
    let mut replay = format!("sse-harness run --profile {} --seed {seed}", a.profile);
    if let Some(t) = &a.target {
        replay.push_str(&format!(" --target {t}"));
    }
    let now = chrono::Utc::now();
    let dir = a.report_dir.clone().unwrap_or_else(|| {
        PathBuf::from("reports").join(harness_report::ReportDir::default_name(
            seed,
            &now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ))
    });
    let style = TerminalStyle {
        color: !a.no_color
            && std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none(),
        progress: std::io::stderr().is_terminal(),
    };
    let mut reporters: Vec<Box<dyn Reporter + Send>> = harness_report::file_reporters(&dir);
    reporters.push(Box::new(TerminalReporter::new(
        Box::new(std::io::stderr()),
        style,
    )));
    let mut report_error = None;
    let mut emit = |ev: &RunEvent| {
        for r in reporters.iter_mut() {
            if let Err(e) = r.on_event(ev)
                && report_error.is_none()
            {
                report_error = Some(e.to_string());
            }
        }
    };
    let meta = RunMeta {
        seed,
        target: base.clone(),
        embedded: embedded.is_some(),
        profile: profile.name.clone(),
        started_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        harness_version: env!("CARGO_PKG_VERSION").into(),
        replay_command: replay.clone(),
    };
    emit(&RunEvent::RunStarted {
        meta,
        scenarios: scenarios.iter().map(Runner::info).collect(),
    });
    let runner = Runner {
        target,
        contracts: contracts.clone(),
        seed,
        replay_prefix: replay,
        control,
        recordings: a.keep_recordings.then(|| dir.join("recordings")),
    };
    let started = Instant::now();
    let results = runner.run_all(&scenarios, &mut emit).await;
    let mut gate_findings = gate::evaluate(&thresholds, &results, &contracts);
    let outcome_baseline = baseline
        .as_ref()
        .map(|b| gate::compare(b, &results, &contracts));
    if let Some(o) = &outcome_baseline {
        gate_findings.extend(o.new_failures.iter().cloned());
        gate_findings.extend(o.stale.iter().cloned());
    }
    emit(&RunEvent::RunGate {
        findings: gate_findings.clone(),
        baselined: outcome_baseline
            .as_ref()
            .map(|o| {
                o.known
                    .iter()
                    .map(|k| (k.scenario.clone(), k.contract.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    });
    emit(&RunEvent::RunFinished {
        duration: started.elapsed(),
    });
    if let Some(p) = &a.write_baseline {
        std::fs::write(p, Baseline::from_results(&results).to_toml())
            .with_context(|| format!("--write-baseline {}", p.display()))?;
    }
    if let Some(e) = embedded {
        let _ = e.server.shutdown().await;
    }
    if let Some(e) = report_error {
        bail!("writing the report: {e}");
    }
    eprintln!("report: {}", dir.display());
    let failed = results.iter().any(|r| r.verdict == Verdict::Fail) || !gate_findings.is_empty();
    let errors: Vec<_> = results
        .iter()
        .filter_map(|r| match &r.verdict {
            Verdict::Error { reason } => Some(format!("{}: {reason}", r.info.id)),
            _ => None,
        })
        .collect();
    Ok(
        match harness_report::run_outcome(&results, &gate_findings, outcome_baseline.as_ref()) {
            Outcome::Pass => 0,
            // Nothing failed, but some scenarios could not be judged: the run could not run.
            Outcome::Fail if !failed && !errors.is_empty() => {
                eprintln!(
                    "sse-harness: could not run {} scenario(s); first: {}",
                    errors.len(),
                    errors[0]
                );
                2
            }
            Outcome::Fail => 1,
        },
    )
}

fn parse_faults(names: &[String]) -> Result<reference_server::faults::FaultSet> {
    let mut faults = Vec::new();
    for f in names {
        faults.push(
            f.parse::<reference_server::faults::Fault>()
                .map_err(|e| anyhow::anyhow!("--fault {f}: {e}"))?,
        );
    }
    Ok(reference_server::faults::FaultSet::new(faults))
}

async fn mutations(a: MutationArgs) -> Result<u8> {
    use sse_harness::mutation;
    let all = scenario::builtin()?;
    let bin = std::env::current_exe().context("locating sse-harness")?;
    let mut outcomes = Vec::new();
    for m in mutation::table()? {
        if !a.faults.is_empty() && !a.faults.contains(&m.fault) {
            continue;
        }
        eprintln!(
            "fault {} → expecting {} ({} run(s))",
            m.fault, m.catches, m.runs
        );
        let o = mutation::play(&m, &all, a.seed, &bin).await;
        eprintln!("  {}", if o.passed() { "caught" } else { "NOT CAUGHT" });
        outcomes.push(o);
    }
    let md = mutation::markdown(&outcomes, a.seed);
    match &a.out {
        Some(p) => std::fs::write(p, &md).with_context(|| format!("--out {}", p.display()))?,
        None => print!("{md}"),
    }
    Ok(if outcomes.iter().all(|o| o.passed()) {
        0
    } else {
        1
    })
}
