//! The terminal reporter: a progress bar on stderr naming the running scenario (when
//! asked for and stderr is a terminal), then a summary table with coloured verdicts,
//! the totals, the gate, the seed and the report directory. Plain text without colour
//! when colour is off; one line per finished scenario when there is no progress bar,
//! so CI logs show progress too.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use console::{Style, measure_text_width, pad_str, truncate_str};
use harness_model::{RunEvent, Verdict};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Reporter;
use crate::error::{ReportError, ReportErrorKind};
use crate::gate::Stat;
use crate::metrics::{self, human_duration};
use crate::runlog::RunLog;

/// How the terminal reporter draws.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TerminalStyle {
    /// ANSI colours in the summary (off for `--no-color` or when not a terminal).
    pub color: bool,
    /// A progress bar on stderr while scenarios run.
    pub progress: bool,
}

impl TerminalStyle {
    /// The usual choice: colour when stdout is a terminal, colours are not disabled by the
    /// environment (`NO_COLOR`, `CLICOLOR=0`) and `no_color` is false; a progress bar when
    /// stderr is a terminal.
    pub fn detect(no_color: bool) -> TerminalStyle {
        TerminalStyle {
            color: !no_color && console::Term::stdout().is_term() && console::colors_enabled(),
            progress: console::Term::stderr().is_term(),
        }
    }
}

/// Widest first-finding text in the summary table.
const NOTE_WIDTH: usize = 72;

/// Writes progress and the final summary of a run to a terminal or log.
pub struct TerminalReporter {
    out: Box<dyn Write + Send>,
    style: TerminalStyle,
    bar: Option<ProgressBar>,
    log: RunLog,
    report_dir: Option<PathBuf>,
}

impl TerminalReporter {
    /// A reporter writing its summary (and, without a progress bar, per-scenario lines) to `out`.
    pub fn new(out: Box<dyn Write + Send>, style: TerminalStyle) -> Self {
        TerminalReporter {
            out,
            style,
            bar: None,
            log: RunLog::new(),
            report_dir: None,
        }
    }

    /// Names the report directory in the summary.
    pub fn with_report_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.report_dir = Some(dir.into());
        self
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.style.color {
            style.force_styling(true).apply_to(text).to_string()
        } else {
            text.to_owned()
        }
    }

    fn verdict_style(v: &Verdict) -> Style {
        match v {
            Verdict::Pass => Style::new().green().bold(),
            Verdict::Fail => Style::new().red().bold(),
            Verdict::Skipped { .. } => Style::new().dim(),
            Verdict::Error { .. } => Style::new().yellow().bold(),
            Verdict::Inconclusive { .. } => Style::new().magenta().bold(),
            Verdict::Interrupted => Style::new().red().bold(),
            Verdict::NotRun => Style::new().dim(),
        }
    }

    fn write(&mut self, text: &str) -> Result<(), ReportError> {
        let r = match &self.bar {
            Some(bar) => bar.suspend(|| self.out.write_all(text.as_bytes())),
            None => self.out.write_all(text.as_bytes()),
        };
        r.and_then(|()| self.out.flush())
            .map_err(|e| ReportError::new(ReportErrorKind::Terminal, e))
    }

    /// p50 and p99 of each latency metric over the whole run, one line each.
    fn metrics_lines(&self) -> String {
        let mut s = String::new();
        for (m, h) in metrics::merged(&self.log.results) {
            if m.unit() != "us" {
                continue;
            }
            s.push_str(&format!(
                "  {:<24} p50 {:>10}  p99 {:>10}  ({} samples)\n",
                m.name(),
                metrics::format_value(m, metrics::stat(&h, Stat::P50)),
                metrics::format_value(m, metrics::stat(&h, Stat::P99)),
                h.len()
            ));
        }
        s
    }

    /// Every threshold with its observed value, k6 style: `✓ expr (observed)`.
    fn threshold_lines(&self) -> String {
        let mut s = String::new();
        for c in &self.log.thresholds {
            let (mark, style) = if c.held {
                ("✓", Style::new().green())
            } else {
                ("✗", Style::new().red().bold())
            };
            let observed = match &c.observed {
                Some(v) => format!("observed {v} over {} samples", c.samples),
                None => "no samples".to_owned(),
            };
            s.push_str(&format!(
                "{} threshold {}  ({observed})\n",
                self.paint(style, mark),
                c.threshold
            ));
        }
        s
    }

    fn summary(&self, duration: Duration) -> String {
        let log = &self.log;
        let id_w = log
            .results
            .iter()
            .map(|r| measure_text_width(&r.info.id))
            .max()
            .unwrap_or(8)
            .max(8);
        let mut s = String::new();
        s.push('\n');
        let header = format!(
            "{}  {}  {:>9}  {:>8}  {}",
            pad_str("SCENARIO", id_w, console::Alignment::Left, None),
            pad_str("VERDICT", 12, console::Alignment::Left, None),
            "TIME",
            "EVENTS",
            "FIRST FINDING"
        );
        s.push_str(&self.paint(Style::new().bold(), &header));
        s.push('\n');
        for r in &log.results {
            let note = r.headline();
            let label = pad_str(r.verdict.label(), 12, console::Alignment::Left, None);
            s.push_str(&format!(
                "{}  {}  {:>9}  {:>8}  {}\n",
                pad_str(&r.info.id, id_w, console::Alignment::Left, None),
                self.paint(Self::verdict_style(&r.verdict), &label),
                human_duration(r.duration),
                r.stats.events_received,
                truncate_str(&note, NOTE_WIDTH, "…")
            ));
        }
        let t = log.totals();
        s.push('\n');
        let outcome_style = if log.passed() {
            Style::new().green().bold()
        } else {
            Style::new().red().bold()
        };
        let verdict = self.paint(outcome_style, log.label());
        let stopped = if t.interrupted + t.not_run > 0 {
            format!(", {} interrupted, {} not run", t.interrupted, t.not_run)
        } else {
            String::new()
        };
        s.push_str(&format!(
            "{verdict}: {} passed, {} failed, {} skipped, {} error, {} inconclusive{stopped} in {}\n",
            t.pass,
            t.fail,
            t.skipped,
            t.error,
            t.inconclusive,
            human_duration(duration)
        ));
        if let Some(reason) = log.summary.as_ref().and_then(|s| s.reason.as_ref()) {
            s.push_str(&format!("  {reason}\n"));
        }
        s.push_str(&self.metrics_lines());
        s.push_str(&self.threshold_lines());
        for f in log.gate.iter().filter(|f| f.contract.0 != "gate.threshold") {
            s.push_str(&format!(
                "{} {}\n",
                self.paint(Style::new().red().bold(), "gate:"),
                f.message()
            ));
        }
        if let Some(meta) = &log.meta {
            if !meta.limits.is_default() {
                s.push_str(&format!("limits: {}\n", meta.limits));
            }
            if meta.insecure_tls {
                let warning = "warning: TLS certificates NOT verified (--insecure)";
                s.push_str(&format!(
                    "{}\n",
                    self.paint(Style::new().red().bold(), warning)
                ));
            }
            s.push_str(&format!("protocol: {}\n", meta.protocol));
            if meta.remote {
                s.push_str(&format!("note: {}\n", harness_model::events::REMOTE_NOTE));
            }
            s.push_str(&format!("seed: {}\n", meta.seed));
            s.push_str(&format!("replay: {}\n", meta.replay_command));
        }
        if let Some(dir) = &self.report_dir {
            s.push_str(&format!("report: {}\n", dir.display()));
        }
        s
    }
}

impl Reporter for TerminalReporter {
    fn on_event(&mut self, ev: &RunEvent) -> Result<(), ReportError> {
        self.log.record(ev);
        match ev {
            RunEvent::RunStarted { scenarios, meta } => {
                if meta.insecure_tls {
                    let warning = format!(
                        "warning: {} against {}\n",
                        "TLS certificates NOT verified (--insecure)", meta.target
                    );
                    self.write(&self.paint(Style::new().red().bold(), &warning))?;
                }
                if self.style.progress {
                    let bar = ProgressBar::with_draw_target(
                        Some(scenarios.len() as u64),
                        ProgressDrawTarget::stderr(),
                    );
                    let template = if self.style.color {
                        "{spinner:.cyan} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {wide_msg}"
                    } else {
                        "[{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}"
                    };
                    if let Ok(style) = ProgressStyle::with_template(template) {
                        bar.set_style(style.progress_chars("=> "));
                    }
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.bar = Some(bar);
                }
            }
            RunEvent::ScenarioStarted { info } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(info.id.clone());
                }
            }
            RunEvent::ScenarioFinished(r) => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                } else {
                    let n = self.log.results.len();
                    let total = self.log.planned.len().max(n);
                    let label = pad_str(r.verdict.label(), 12, console::Alignment::Left, None);
                    let line = format!(
                        "[{n}/{total}] {} {} ({})\n",
                        self.paint(Self::verdict_style(&r.verdict), &label),
                        r.info.id,
                        human_duration(r.duration)
                    );
                    self.write(&line)?;
                }
            }
            RunEvent::RunGate { .. } => {}
            RunEvent::RunFinished { duration, .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let summary = self.summary(*duration);
                self.write(&summary)?;
            }
        }
        Ok(())
    }
}
