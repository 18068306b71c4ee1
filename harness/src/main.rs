//! `sse-harness`: the command line over the engine (`sse_harness::run`). It parses
//! flags ([`cli`]), builds a run config, attaches the reporters and exits with the
//! status the engine decided: 0 pass, 1 a contract failed, 2 could not run, 3 only a
//! threshold failed, 130 interrupted (Ctrl-C or SIGTERM: a partial report; a second
//! signal exits at once).

mod auth_args;
mod cli;
mod commands;
mod polite_args;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use cli::{Cli, Color, Command, MessageFormat, RunArgs};
use harness_model::RunEvent;
use harness_report::{Baseline, JsonLinesReporter, Reporter, TerminalReporter, TerminalStyle};
use sse_harness::HarnessErrorKind;
use sse_harness::engine::{self, RunConfig, Selection, TargetSpec};
use sse_harness::interrupt::Interrupt;

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
            Command::Run(a) => run(*a).await,
            Command::Merge(a) => commands::merge(a),
            Command::List(a) => commands::list(a).map(|_| 0),
            Command::Mutations(a) => commands::mutations(a).await,
            Command::ServeReference(a) => commands::serve(a).await.map(|_| 0),
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

async fn run(mut a: RunArgs) -> Result<u8> {
    a.with_config(&std::env::current_dir()?)?;
    // Every stream is a descriptor: the soft limit goes up to the hard one (the run
    // checks its largest scenario fits, see `sse_harness::source::check_descriptors`).
    if let Err(e) = sse_harness::limits::raise_fd_limit() {
        eprintln!("sse-harness: could not raise RLIMIT_NOFILE to its hard limit: {e}");
    }
    let faults = sse_harness::embedded::faults(&a.faults)?;
    let variants = sse_harness::embedded::variants(&a.variants)?;
    let target = match a.target.clone() {
        Some(url) if faults.is_empty() && variants.is_empty() => TargetSpec::Url {
            url,
            token: a.token.clone(),
        },
        Some(_) => {
            bail!("--fault and --variant only apply to the embedded reference server (no --target)")
        }
        None => TargetSpec::Embedded { faults },
    };
    let seed = a.seed.unwrap_or_else(rand::random);
    let dir = a.report_dir.clone().unwrap_or_else(|| {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        PathBuf::from("reports").join(harness_report::ReportDir::default_name(seed, &now))
    });
    let mut cfg = RunConfig::new(target);
    cfg.profile = a.profile.clone().unwrap_or_default();
    cfg.selection = Selection {
        dir: a.scenarios_dir.clone(),
        globs: a.scenarios.clone(),
    };
    cfg.seed = Some(seed);
    cfg.thresholds = a.thresholds.clone();
    cfg.baseline = a.baseline.clone();
    cfg.server_cmd = a.server_cmd.clone();
    cfg.tls = a.tls.options();
    cfg.http2 = a.http2;
    cfg.browser_headers = !a.no_browser_headers;
    cfg.source_addrs = a.source_addrs.clone();
    cfg.max_recorded_mib = a.max_recorded_mib;
    if cfg.tls.insecure {
        eprintln!("sse-harness: WARNING: --insecure: the target's TLS certificate is NOT verified");
    }
    cfg.recordings = a.keep_recordings.then(|| dir.join("recordings"));
    cfg.variants = variants;
    cfg.limits = a.polite.limits();
    cfg.headers = a.auth.pairs();
    cfg.interrupt = on_signals()?;
    cfg.start_at = a.shard.start_at.as_deref().map(start_at).transpose()?;
    cfg.shard = shard_run(&a.shard, &dir)?;
    let mut reporters = reporters(&a, &dir);
    let mut report_error = None;
    let outcome = engine::run(cfg, &mut |ev: &RunEvent| {
        for r in reporters.iter_mut() {
            if let Err(e) = r.on_event(ev) {
                report_error.get_or_insert(e.to_string());
            }
        }
    })
    .await;
    let outcome = match outcome {
        Err(e) if e.kind == HarnessErrorKind::Interrupted => {
            eprintln!("sse-harness: {e}");
            return Ok(EXIT_INTERRUPTED);
        }
        o => o?,
    };
    if let Some(p) = &a.write_baseline {
        std::fs::write(p, Baseline::from_results(&outcome.results).to_toml())
            .with_context(|| format!("--write-baseline {}", p.display()))?;
    }
    if let Some(e) = report_error {
        bail!("writing the report: {e}");
    }
    eprintln!("report: {}", dir.display());
    Ok(outcome.exit_code())
}

/// `--start-at`'s time.
fn start_at(text: &str) -> Result<std::time::SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(text).with_context(|| {
        format!("--start-at {text:?}: expected RFC 3339, e.g. 2025-05-01T12:00:00Z")
    })?;
    Ok(std::time::SystemTime::from(t))
}

/// The shard this run plays, when `--shard I/N` splits it (N > 1): a barrier directory
/// is then required. `--shard 0/1` is the whole run, with its shard record all the same.
fn shard_run(a: &cli::ShardArgs, dir: &std::path::Path) -> Result<Option<engine::ShardRun>> {
    let Some(spec) = a.shard else {
        if a.barrier_dir.is_some() {
            bail!("--barrier-dir needs --shard I/N");
        }
        return Ok(None);
    };
    let barrier_dir = match (&a.barrier_dir, spec.is_whole()) {
        (Some(d), _) => d.clone(),
        (None, true) => dir.join("barrier"),
        (None, false) => bail!(
            "--shard {spec} needs --barrier-dir DIR: a directory every shard can write (a fresh one per run), where they wait for each other"
        ),
    };
    Ok(Some(engine::ShardRun {
        spec,
        barrier_dir,
        barrier_timeout: std::time::Duration::from_secs(a.barrier_timeout),
        record_dir: dir.to_owned(),
    }))
}

/// The exit status of a run a signal stopped (128 + SIGINT, as shells report Ctrl-C).
const EXIT_INTERRUPTED: u8 = 130;

/// The first Ctrl-C or SIGTERM interrupts the run (a partial report, exit 130); a
/// second one kills the `--server-cmd` process groups and exits 130 at once.
fn on_signals() -> Result<Interrupt> {
    let (trigger, interrupt) = sse_harness::interrupt::pair();
    sse_harness::interrupt::listen(trigger, || {
        sse_harness::control::kill_all_groups();
        eprintln!("sse-harness: interrupted again; exiting now without a report");
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    })
    .context("listening for Ctrl-C and SIGTERM")?;
    Ok(interrupt)
}

/// The file reporters, the terminal, and with `--message-format json` a JSON line per event.
fn reporters(a: &RunArgs, dir: &std::path::Path) -> Vec<Box<dyn Reporter + Send>> {
    let stderr_tty = std::io::stderr().is_terminal();
    let color = match a.color.unwrap_or(Color::Auto) {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => stderr_tty && std::env::var_os("NO_COLOR").is_none(),
    };
    let style = TerminalStyle {
        color,
        progress: stderr_tty,
    };
    let mut out = harness_report::file_reporters(dir);
    out.push(Box::new(TerminalReporter::new(
        Box::new(std::io::stderr()),
        style,
    )));
    if a.message_format == Some(MessageFormat::Json) {
        out.push(Box::new(JsonLinesReporter::new(
            Box::new(std::io::stdout()),
        )));
    }
    out
}
