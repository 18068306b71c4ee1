//! `sse-harness`: the command line over the engine (`sse_harness::run`). It parses
//! flags ([`cli`]), builds a run config, attaches the reporters and exits with the
//! status the engine decided: 0 pass, 1 a contract failed, 2 could not run, 3 only a
//! threshold failed.

mod cli;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use cli::{Cli, Color, Command, ListArgs, MessageFormat, MutationArgs, RunArgs, ServeArgs};
use harness_model::{Capability, RunEvent};
use harness_report::{Baseline, JsonLinesReporter, Reporter, TerminalReporter, TerminalStyle};
use sse_harness::engine::{self, RunConfig, Selection, TargetSpec};
use sse_harness::{mutation, profile::Profile};

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

async fn run(mut a: RunArgs) -> Result<u8> {
    a.with_config(&std::env::current_dir()?)?;
    let faults = sse_harness::embedded::faults(&a.faults)?;
    let target = match a.target.clone() {
        Some(url) if faults.is_empty() => TargetSpec::Url {
            url,
            token: a.token.clone(),
        },
        Some(_) => bail!("--fault only applies to the embedded reference server (no --target)"),
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
    cfg.recordings = a.keep_recordings.then(|| dir.join("recordings"));
    let mut reporters = reporters(&a, &dir);
    let mut report_error = None;
    let outcome = engine::run(cfg, &mut |ev: &RunEvent| {
        for r in reporters.iter_mut() {
            if let Err(e) = r.on_event(ev) {
                report_error.get_or_insert(e.to_string());
            }
        }
    })
    .await?;
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

fn list(a: ListArgs) -> Result<()> {
    let profile = Profile::load(&a.profile)?;
    let selection = Selection {
        dir: a.scenarios_dir,
        globs: a.scenarios,
    };
    let rows: Vec<serde_json::Value> = selection
        .load()?
        .iter()
        .map(|s| {
            let missing: Vec<&Capability> =
                s.requires.iter().filter(|c| !profile.has(**c)).collect();
            serde_json::json!({ "id": s.id(), "title": s.title, "group": s.group, "file": s.file,
                "runnable": missing.is_empty(), "missing_capabilities": missing })
        })
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    for r in &rows {
        let missing = r["missing_capabilities"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
        let note = if missing == 0 {
            String::new()
        } else {
            let names: Vec<&str> = r["missing_capabilities"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            format!(
                "  (skipped on {}: needs {})",
                profile.name,
                names.join(", ")
            )
        };
        println!(
            "{:<44} {}{note}",
            r["id"].as_str().unwrap_or(""),
            r["title"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

async fn serve(a: ServeArgs) -> Result<()> {
    let mut cfg = reference_server::Config::new(a.data, a.token);
    cfg.addr = a.addr;
    cfg.heartbeat_ms = a.heartbeat_ms;
    cfg.faults = sse_harness::embedded::faults(&a.faults)?;
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

async fn mutations(a: MutationArgs) -> Result<u8> {
    let all = sse_harness::scenario::builtin()?;
    let bin = std::env::current_exe().context("locating sse-harness")?;
    let mut outcomes = Vec::new();
    for m in mutation::table()?
        .into_iter()
        .filter(|m| a.faults.is_empty() || a.faults.contains(&m.fault))
    {
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
