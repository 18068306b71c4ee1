//! `report.md`: a summary a person pastes into a pull request: the verdict, one row per
//! scenario, the gate, the failures with their evidence and replay commands, and the
//! run's latency percentiles.

use std::fmt::Write as _;

use harness_model::{Level, Metric, Verdict};

use crate::error::{ReportError, ReportErrorKind};
use crate::files::Rendered;
use crate::metrics::{self, MetricSummary, human_duration};
use crate::runlog::RunLog;

/// Makes text safe as Markdown prose: angle brackets would be taken for HTML tags.
fn text(s: &str) -> String {
    harness_model::untrusted(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Makes text safe inside a table cell.
fn cell(s: &str) -> String {
    text(s).replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn verdict_badge(v: &Verdict) -> &'static str {
    match v {
        Verdict::Pass => "✅ pass",
        Verdict::Fail => "❌ fail",
        Verdict::Skipped { .. } => "⏭️ skipped",
        Verdict::Error { .. } => "⚠️ error",
        Verdict::Inconclusive { .. } => "❔ inconclusive",
        Verdict::Interrupted => "⛔ interrupted",
        Verdict::NotRun => "⏸️ not run",
    }
}

pub(crate) fn markdown(log: &RunLog) -> Result<String, ReportError> {
    let meta = log
        .meta
        .as_ref()
        .ok_or_else(|| ReportError::new(ReportErrorKind::NotStarted, "no RunStarted event"))?;
    let t = log.totals();
    let mut md = String::new();
    let w = &mut md;
    let head = format!("{} {}", if log.passed() { "✅" } else { "❌" }, log.label());
    let _ = writeln!(w, "## sse-harness: {head}\n");
    if !meta.limits.is_default() {
        let _ = writeln!(w, "Polite limits: {}.\n", meta.limits);
    }
    if let Some(signal) = log.summary.as_ref().and_then(|s| s.interrupted) {
        let _ = writeln!(
            w,
            "**Interrupted by {signal}**: a partial report ({} scenario(s) interrupted, {} not run); it never passes a gate.\n",
            t.interrupted, t.not_run
        );
    }
    let _ = writeln!(
        w,
        "{} passed · {} failed · {} skipped · {} error · {} inconclusive — profile `{}`, target `{}`{} over `{}`, seed `{}`, {}\n",
        t.pass,
        t.fail,
        t.skipped,
        t.error,
        t.inconclusive,
        meta.profile,
        meta.target,
        if meta.embedded { " (embedded)" } else { "" },
        meta.protocol,
        meta.seed,
        human_duration(log.duration.unwrap_or_default()),
    );
    if meta.insecure_tls {
        let _ = writeln!(
            w,
            "> ⚠ **TLS certificates NOT verified (--insecure)**: the target's identity was not checked.\n"
        );
    }
    if meta.remote {
        let _ = writeln!(w, "> Note: {}.\n", harness_model::events::REMOTE_NOTE);
    }
    let _ = writeln!(w, "| Scenario | Verdict | Time | Events | First finding |");
    let _ = writeln!(w, "|---|---|---:|---:|---|");
    for r in &log.results {
        let note = r.headline();
        let _ = writeln!(
            w,
            "| `{}` | {} | {} | {} | {} |",
            r.info.id,
            verdict_badge(&r.verdict),
            human_duration(r.duration),
            r.stats.events_received,
            cell(&note)
        );
    }
    gate(w, log);
    failures(w, log);
    facts(w, log);
    warnings(w, log);
    metrics_table(w, log);
    let _ = writeln!(w, "\nReplay the run: `{}`", meta.replay_command);
    Ok(md)
}

/// The gate: every threshold with its observed value, then threshold and baseline findings.
fn gate(w: &mut String, log: &RunLog) {
    if !log.thresholds.is_empty() {
        let _ = writeln!(w, "\n### Thresholds\n");
        for c in &log.thresholds {
            let observed = match &c.observed {
                Some(v) => format!("observed {v} over {} samples", c.samples),
                None => "no samples".to_owned(),
            };
            let mark = if c.held { "✅" } else { "❌" };
            let _ = writeln!(w, "- {mark} `{}` ({observed})", c.threshold);
        }
    }
    if !log.gate.is_empty() {
        let _ = writeln!(w, "\n### Gate\n");
        for f in &log.gate {
            let _ = writeln!(
                w,
                "- **{}** {} — _{}_",
                f.level,
                text(&f.message()),
                text(&f.spec)
            );
        }
    }
}

/// Each failed or errored scenario with its MUST findings and replay command.
fn failures(w: &mut String, log: &RunLog) {
    let failed: Vec<_> = log
        .results
        .iter()
        .filter(|r| {
            matches!(
                r.verdict,
                Verdict::Fail | Verdict::Error { .. } | Verdict::Inconclusive { .. }
            )
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(w, "\n### Failures\n");
        for r in failed {
            let _ = writeln!(w, "#### `{}` — {}\n", r.info.id, text(&r.info.title));
            if let Verdict::Error { reason } = &r.verdict {
                let _ = writeln!(w, "- harness error: {}", text(reason));
            }
            if let Verdict::Inconclusive { reasons } = &r.verdict {
                for why in reasons {
                    let _ = writeln!(w, "- **inconclusive** {}", text(&why.to_string()));
                }
            }
            for f in r.findings.iter().filter(|f| f.level == Level::Must) {
                let _ = writeln!(w, "- **MUST** {} — _{}_", text(&f.message()), text(&f.spec));
            }
            let _ = writeln!(w, "\nReplay: `{}`\n", r.replay_command);
        }
    }
}

/// What the scenarios established beyond pass/fail.
fn facts(w: &mut String, log: &RunLog) {
    let with_facts: Vec<_> = log.results.iter().filter(|r| !r.facts.is_empty()).collect();
    if !with_facts.is_empty() {
        let _ = writeln!(w, "\n### What the scenarios established\n");
        for r in with_facts {
            let facts: Vec<String> = r
                .facts
                .iter()
                .map(|(k, v)| match k.as_str() {
                    // The toxic timeline is long: it is in summary.json and report.html.
                    "network" => {
                        "network = the toxic timeline (summary.json, report.html)".to_owned()
                    }
                    _ => format!("{k} = {v}"),
                })
                .collect();
            let _ = writeln!(w, "- `{}`: {}", r.info.id, text(&facts.join(", ")));
        }
    }
}

/// SHOULD findings, folded.
fn warnings(w: &mut String, log: &RunLog) {
    let warnings: Vec<_> = log
        .results
        .iter()
        .flat_map(|r| {
            r.findings
                .iter()
                .filter(|f| f.level == Level::Should)
                .map(move |f| (r, f))
        })
        .collect();
    if !warnings.is_empty() {
        let _ = writeln!(
            w,
            "\n<details><summary>{} SHOULD warning(s)</summary>\n",
            warnings.len()
        );
        for (r, f) in warnings {
            let _ = writeln!(
                w,
                "- `{}`: {} — _{}_",
                r.info.id,
                text(&f.message()),
                text(&f.spec)
            );
        }
        let _ = writeln!(w, "\n</details>");
    }
}

/// Percentiles of each metric over the whole run.
fn metrics_table(w: &mut String, log: &RunLog) {
    let merged = metrics::merged(&log.results);
    if !merged.is_empty() {
        let _ = writeln!(w, "\n### Latency and replay rate (whole run)\n");
        let _ = writeln!(
            w,
            "| Metric | Unit | Count | p50 | p90 | p99 | p99.9 | max |"
        );
        let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|");
        for m in Metric::ALL {
            if let Some(h) = merged.get(&m) {
                let s = MetricSummary::of(m, h);
                let f = |v: f64| metrics::trim(v, 3);
                let _ = writeln!(
                    w,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    metrics::title(m),
                    s.unit,
                    s.count,
                    f(s.p50),
                    f(s.p90),
                    f(s.p99),
                    f(s.p999),
                    f(s.max)
                );
            }
        }
    }
}

pub(crate) fn render(log: &RunLog) -> Result<Vec<Rendered>, ReportError> {
    Ok(vec![Rendered::new("report.md", markdown(log)?)])
}
