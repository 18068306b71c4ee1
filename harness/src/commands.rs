//! The subcommands besides `run`: `list`, `mutations` and the hidden `serve-reference`.

use anyhow::{Context, Result};
use harness_model::Capability;
use sse_harness::engine::Selection;
use sse_harness::{mutation, profile::Profile};

use crate::cli::{ListArgs, MergeArgs, MutationArgs, ServeArgs};

/// `sse-harness list`: every selected scenario and whether the profile can run it.
pub fn list(a: ListArgs) -> Result<()> {
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
                "runnable": missing.is_empty(), "missing_capabilities": missing,
                "toxics": s.toxics,
                "toxics_described": s.toxics.iter().map(sse_harness::network::describe).collect::<Vec<_>>() })
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
        for t in r["toxics_described"].as_array().into_iter().flatten() {
            println!("{:<44}   toxic: {}", "", t.as_str().unwrap_or(""));
        }
    }
    Ok(())
}

/// `sse-harness serve-reference`: the reference server until SIGTERM or Ctrl-C.
pub async fn serve(a: ServeArgs) -> Result<()> {
    let mut cfg = reference_server::Config::new(a.data, a.token);
    cfg.addr = a.addr;
    cfg.heartbeat_ms = a.heartbeat_ms;
    cfg.limits.write_stall_timeout = std::time::Duration::from_millis(a.write_stall_ms);
    cfg.faults = sse_harness::embedded::faults(&a.faults)?;
    cfg.variants = sse_harness::embedded::variants(&a.variants)?;
    cfg.allow_origins = a.allow_origins;
    cfg.limits.max_connections = a.max_connections;
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

/// `sse-harness mutations`: plays the mutation table (each row on its listed scenarios,
/// or with `--all-scenarios` on every scenario of its contract's family), each run
/// compared with its control; exit 1 if a fault was not caught.
pub async fn mutations(a: MutationArgs) -> Result<u8> {
    let scope = if a.all_scenarios {
        mutation::Scope::Family
    } else {
        mutation::Scope::Listed
    };
    let player = mutation::Player {
        all: sse_harness::scenario::builtin()?,
        seed: a.seed,
        bin: std::env::current_exe().context("locating sse-harness")?,
        scope,
        controls: mutation::Controls::default(),
        jobs: usize::from(a.jobs),
    };
    // SIGINT/SIGTERM: the row in progress is dropped (its server processes killed with
    // it), the table keeps the rows played, exit 130; a second signal exits at once.
    let (trigger, interrupt) = sse_harness::interrupt::pair();
    sse_harness::interrupt::listen(trigger, || std::process::exit(130))?;
    let mut outcomes = Vec::new();
    for m in mutation::table()?
        .into_iter()
        .filter(|m| a.faults.is_empty() || a.faults.contains(&m.fault))
    {
        if m.across_shards {
            eprintln!(
                "fault {}: shows only across client addresses (a split run's merge); proven by harness/tests/shards.rs, not played here",
                m.fault
            );
            continue;
        }
        eprintln!(
            "fault {} → expecting {} ({} run(s))",
            m.fault, m.catches, m.runs
        );
        let o = tokio::select! {
            o = player.play(&m) => o,
            signal = interrupt.wait() => {
                eprintln!("interrupted by {signal}: {} row(s) played", outcomes.len());
                return Ok(130);
            }
        };
        eprintln!(
            "  {} (scenarios {}/{}, control misfires {})",
            if o.passed() { "caught" } else { "NOT CAUGHT" },
            o.scenarios_caught(),
            o.scenarios.len(),
            o.control_misfires()
        );
        outcomes.push(o);
        // The table so far, rewritten after each row: a long matrix that is stopped
        // keeps the rows it played.
        if let Some(p) = &a.out {
            let md = mutation::markdown(&outcomes, a.seed, scope);
            std::fs::write(p, md).with_context(|| format!("--out {}", p.display()))?;
        }
    }
    if a.out.is_none() {
        print!("{}", mutation::markdown(&outcomes, a.seed, scope));
    }
    Ok(if outcomes.iter().all(|o| o.passed()) {
        0
    } else {
        1
    })
}

/// `sse-harness merge`: reads every shard's record, checks they are one run, judges
/// the united recordings and writes the merged report; the exit status is `run`'s.
pub fn merge(a: MergeArgs) -> Result<u8> {
    let contracts = harness_model::Contracts::builtin();
    let records = sse_harness::merge::load(&a.dirs)?;
    let merged = sse_harness::merge::merge(records, &contracts)?;
    let mut reporters = harness_report::file_reporters(&a.report_dir);
    let style = harness_report::TerminalStyle {
        color: false,
        progress: false,
    };
    reporters.push(Box::new(harness_report::TerminalReporter::new(
        Box::new(std::io::stderr()),
        style,
    )));
    if a.message_format == Some(crate::cli::MessageFormat::Json) {
        reporters.push(Box::new(harness_report::JsonLinesReporter::new(Box::new(
            std::io::stdout(),
        ))));
    }
    let mut report_error = None;
    let summary = sse_harness::merge::emit(&merged, &a.thresholds, &contracts, &mut |ev| {
        for r in reporters.iter_mut() {
            if let Err(e) = r.on_event(ev) {
                report_error.get_or_insert(e.to_string());
            }
        }
    });
    if let Some(e) = report_error {
        anyhow::bail!("writing the merged report: {e}");
    }
    eprintln!("report: {}", a.report_dir.display());
    Ok(summary.outcome.exit_code())
}
