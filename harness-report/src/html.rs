//! `report.html`: one self-contained page (inline CSS and SVG, no script, no network
//! request): the verdict, a pass/fail table, failures with their evidence, and one
//! percentile-curve chart per metric with one line per scenario, on the log
//! `1/(1-p)` axis HdrHistogram's plotter uses and a logarithmic value axis. So that a
//! run of 35 scenarios stays readable, each chart draws its three slowest scenarios in
//! colour on top and the rest faded grey (named on hover), with a legend of the three and
//! the full percentile table folded under it.
//!
//! The SVG is written by hand: the charts are a few polylines and ticks, and the
//! plotting crates either need a font stack at build time (plotters) or emit scripts.

use std::fmt::Write as _;

use harness_model::{Evidence, Finding, Level, Metric, ScenarioResult, Verdict};
use hdrhistogram::Histogram;

use crate::error::{ReportError, ReportErrorKind};
use crate::files::Rendered;
use crate::metrics::{self, MetricSummary, human_duration};
use crate::runlog::RunLog;

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
:root { --pass:#15803d; --pass-bg:#dcfce7; --fail:#b91c1c; --fail-bg:#fee2e2;
  --skip:#6b7280; --skip-bg:#f3f4f6; --err:#b45309; --err-bg:#fef3c7; --inc:#6d28d9;
  --inc-bg:#ede9fe; --line:#e5e7eb; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  color:#111827; background:#f9fafb; margin:0; padding:24px 32px 48px; }
h1 { font-size:22px; margin:0; }
h2 { font-size:17px; margin:28px 0 10px; padding-bottom:4px; border-bottom:1px solid var(--line); }
h3 { font-size:15px; margin:0 0 6px; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size:12.5px; }
.banner { display:flex; align-items:center; gap:16px; padding:14px 18px; border-radius:10px;
  color:#fff; margin-bottom:14px; }
.banner.pass { background:var(--pass); } .banner.fail { background:var(--fail); }
.banner .big { font-size:26px; font-weight:700; letter-spacing:.04em; }
.facts { display:flex; flex-wrap:wrap; gap:4px 28px; margin:0 0 8px; }
.facts div { white-space:nowrap; }
.facts b { color:#6b7280; font-weight:500; margin-right:6px; }
.totals { display:flex; gap:10px; margin:10px 0 4px; }
.chip { padding:3px 12px; border-radius:999px; font-weight:600; }
.pill { display:inline-block; min-width:62px; text-align:center; padding:1px 8px;
  border-radius:999px; font-weight:600; font-size:12px; text-transform:uppercase; }
.pass-c { color:var(--pass); background:var(--pass-bg); }
.fail-c { color:var(--fail); background:var(--fail-bg); }
.skipped-c { color:var(--skip); background:var(--skip-bg); }
.error-c { color:var(--err); background:var(--err-bg); }
.inconclusive-c { color:var(--inc); background:var(--inc-bg); }
.interrupted-c { color:var(--fail); background:var(--fail-bg); }
.not-run-c { color:var(--skip); background:var(--skip-bg); }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line);
  border-radius:8px; overflow:hidden; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f3f4f6; font-weight:600; font-size:12.5px; color:#374151; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; white-space:nowrap; }
tr:last-child td { border-bottom:none; }
.note { color:#374151; max-width:520px; }
.card { background:#fff; border:1px solid var(--line); border-left:4px solid var(--fail);
  border-radius:8px; padding:12px 16px; margin:10px 0; }
.card.warn { border-left-color:var(--err); }
.finding { margin:8px 0 0; }
.finding .msg { font-weight:600; }
.ev { display:grid; grid-template-columns: max-content 1fr; gap:2px 14px; margin:6px 0 0 8px; }
.ev dt { color:#6b7280; } .ev dd { margin:0; }
.replay { margin-top:8px; color:#374151; }
.replay code { background:#f3f4f6; padding:2px 6px; border-radius:4px; }
.charts { display:grid; grid-template-columns: repeat(auto-fill, minmax(580px, 1fr)); gap:16px; }
.chart { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.chart table { margin-top:8px; font-size:12.5px; }
.chart th, .chart td { padding:4px 7px; }
.chart .sw { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:6px; }
.legend { display:flex; flex-wrap:wrap; gap:2px 16px; margin:4px 0 6px; font-size:12.5px; }
.legend .item { min-width:0; overflow-wrap:anywhere; }
.chart summary { cursor:pointer; color:#374151; font-size:12.5px; }
.muted { color:#6b7280; }
footer { margin-top:32px; color:#6b7280; font-size:12.5px; }
"#;

/// Cuts made, and planned when the scenario planned any: `executed/planned`.
fn cuts(s: &harness_model::ScenarioStats) -> String {
    match s.cuts_planned {
        0 => s.cuts.to_string(),
        planned => format!("{}/{planned}", s.cuts),
    }
}

fn pill(v: &Verdict) -> String {
    format!("<span class=\"pill {0}-c\">{0}</span>", v.label())
}

fn evidence_list(e: &Evidence) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(c) = &e.client {
        rows.push(("client", c.to_string()));
    }
    if let Some(n) = e.connection {
        rows.push(("connection", n.to_string()));
    }
    if let Some(s) = e.seq {
        rows.push(("seq", s.to_string()));
    }
    if let Some(m) = &e.marker {
        rows.push(("marker", m.clone()));
    }
    if let Some(b) = e.byte_offset {
        rows.push(("byte offset", b.to_string()));
    }
    if let Some(t) = e.at_ms {
        rows.push(("at", format!("{} ms", metrics::trim(t, 1))));
    }
    rows.push(("expected", e.expected.clone()));
    rows.push(("seen", e.seen.clone()));
    let mut s = String::from("<dl class=\"ev\">");
    for (k, v) in rows {
        let _ = write!(s, "<dt>{k}</dt><dd class=\"mono\">{}</dd>", esc(&v));
    }
    s.push_str("</dl>");
    s
}

fn finding_block(f: &Finding) -> String {
    format!(
        "<div class=\"finding\"><div><span class=\"pill {}\">{}</span> <code>{}</code> \
         <span class=\"muted\">{}</span></div>{}</div>",
        if f.level == Level::Must {
            "fail-c"
        } else {
            "error-c"
        },
        f.level,
        esc(&f.contract.0),
        esc(&f.spec),
        evidence_list(&f.evidence)
    )
}

/// A y-axis tick: compact for large values (`120k`, `1.5M`).
fn tick_label(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{}M", metrics::trim(v / 1_000_000.0, 2))
    } else if v >= 10_000.0 {
        format!("{}k", metrics::trim(v / 1_000.0, 1))
    } else {
        metrics::trim(v, 3)
    }
}

/// The label of a `1/(1-p)` decade on the x axis: 0%, 90%, 99%, 99.9%, ...
fn decade_label(d: u32) -> String {
    match d {
        0 => "0%".into(),
        1 => "90%".into(),
        d => format!("99.{}%", "9".repeat(d as usize - 2)).replace("99.%", "99%"),
    }
}

/// The logarithmic value axis: whole decades from below the smallest value to above the
/// largest, so a 0.4 ms median and a 3 s tail are both readable on one chart.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LogAxis {
    /// The exponent of the lowest decade line.
    lo: i32,
    /// The exponent of the highest decade line (above `lo`).
    hi: i32,
}

impl LogAxis {
    /// The axis covering positive values from `min` to `max`.
    fn covering(min: f64, max: f64) -> LogAxis {
        let exp = |v: f64| -> Option<f64> { (v.is_finite() && v > 0.0).then(|| v.log10()) };
        let lo = exp(min).map_or(0, |e| e.floor() as i32);
        let hi = exp(max).map_or(lo + 1, |e| e.ceil() as i32);
        LogAxis {
            lo,
            hi: hi.max(lo + 1),
        }
    }

    /// Where `v` sits, from 0 (the bottom) to 1 (the top); values at or below zero sit at
    /// the bottom.
    fn fraction(&self, v: f64) -> f64 {
        if v.is_nan() || v <= 0.0 {
            return 0.0;
        }
        ((v.log10() - f64::from(self.lo)) / f64::from(self.hi - self.lo)).clamp(0.0, 1.0)
    }

    /// The tick values: every decade, plus 2× and 5× of each when the axis spans at most
    /// two decades (otherwise the labels would crowd).
    fn ticks(&self) -> Vec<f64> {
        let mut out = Vec::new();
        for e in self.lo..=self.hi {
            let decade = 10f64.powi(e);
            out.push(decade);
            if self.hi - self.lo <= 2 && e < self.hi {
                out.extend([2.0 * decade, 5.0 * decade]);
            }
        }
        out
    }
}

/// How many of a chart's slowest scenarios are drawn in colour; the others are faded.
const HIGHLIGHTED: usize = 3;

/// The colours of the highlighted curves, slowest first.
const HIGHLIGHT: [&str; HIGHLIGHTED] = ["#dc2626", "#d97706", "#2563eb"];

/// The colour of every curve that is not highlighted.
const FADED: &str = "#9ca3af";

/// One scenario's curve in a chart.
struct Series<'a> {
    result: &'a ScenarioResult,
    hist: &'a Histogram<u64>,
    summary: MetricSummary,
}

/// The colour of the curve at `rank` (0 = slowest).
fn colour(rank: usize) -> &'static str {
    HIGHLIGHT.get(rank).copied().unwrap_or(FADED)
}

/// The points of one percentile curve, in chart coordinates.
fn curve_points(
    h: &Histogram<u64>,
    scale: f64,
    x: impl Fn(f64) -> f64,
    y: impl Fn(f64) -> f64,
) -> String {
    let mut pts = String::new();
    let mut last_x = f64::NAN;
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let xx = x(q);
        let yy = y(v.value_iterated_to() as f64 / scale);
        if xx == last_x && q < 1.0 {
            continue;
        }
        let _ = write!(pts, "{xx:.1},{yy:.1} ");
        last_x = xx;
    }
    pts.trim_end().to_owned()
}

/// One metric's chart: the percentile curve of every scenario that measured it, slowest
/// first in `series`; the slowest are drawn last, on top of the faded rest.
fn chart(metric: Metric, series: &[Series<'_>]) -> String {
    const W: f64 = 560.0;
    const H: f64 = 280.0;
    const L: f64 = 64.0;
    const R: f64 = 28.0;
    const T: f64 = 12.0;
    const B: f64 = 42.0;
    let pw = W - L - R;
    let ph = H - T - B;
    let scale = metrics::display_scale(metric);
    let unit = metrics::display_unit(metric);
    let max_count = series.iter().map(|s| s.hist.len()).max().unwrap_or(1);
    let decades = ((max_count as f64).log10().ceil() as u32).clamp(2, 6);
    let x_max = f64::from(decades);
    // A zero sample (under one recorded unit) is drawn at one recorded unit.
    let min = series
        .iter()
        .map(|s| s.hist.min().max(1) as f64 / scale)
        .fold(f64::INFINITY, f64::min);
    let max = series
        .iter()
        .map(|s| s.hist.max() as f64 / scale)
        .fold(0.0, f64::max);
    let axis = LogAxis::covering(min, max);
    let x = |q: f64| -> f64 {
        let lx = if q >= 1.0 {
            x_max
        } else {
            (1.0 / (1.0 - q)).log10().min(x_max)
        };
        L + lx / x_max * pw
    };
    let y = |v: f64| T + ph - axis.fraction(v) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"100%\" \
         role=\"img\" aria-label=\"{} percentile curves\" font-family=\"system-ui, DejaVu Sans, sans-serif\" font-size=\"11\">",
        esc(metrics::title(metric))
    );
    for v in axis.ticks() {
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1=\"{L}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e5e7eb\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#6b7280\">{}</text>",
            L + pw,
            L - 6.0,
            yy + 4.0,
            tick_label(v)
        );
    }
    for d in 0..=decades {
        let xx = L + f64::from(d) / x_max * pw;
        let _ = write!(
            s,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{T}\" y2=\"{}\" stroke=\"#e5e7eb\"/>\
             <text x=\"{xx:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#6b7280\">{}</text>",
            T + ph,
            T + ph + 15.0,
            decade_label(d)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#374151\">percentile</text>\
         <text transform=\"translate(14 {}) rotate(-90)\" text-anchor=\"middle\" fill=\"#374151\">{} (log)</text>\
         <rect x=\"{L}\" y=\"{T}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#d1d5db\"/>",
        L + pw / 2.0,
        H - 6.0,
        T + ph / 2.0,
        esc(unit)
    );
    for (rank, sr) in series.iter().enumerate().rev() {
        let (class, width, opacity) = if rank < HIGHLIGHTED {
            ("curve slowest", 2.5, 1.0)
        } else {
            ("curve faded", 1.2, 0.6)
        };
        let _ = write!(
            s,
            "<polyline class=\"{class}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\" \
             stroke-opacity=\"{opacity}\" stroke-linejoin=\"round\" points=\"{}\"><title>{}</title></polyline>",
            colour(rank),
            curve_points(sr.hist, scale, x, y),
            esc(&sr.result.info.id)
        );
    }
    s.push_str("</svg>");
    s
}

/// The scenarios that measured `metric`, slowest first (by [`metrics::slowness`]), ties
/// in scenario order.
fn series_of(log: &RunLog, metric: Metric) -> Vec<Series<'_>> {
    let mut series: Vec<Series<'_>> = log
        .results
        .iter()
        .filter_map(|r| {
            let h = r.histograms.get(&metric).filter(|h| !h.is_empty())?;
            Some(Series {
                result: r,
                hist: h,
                summary: MetricSummary::of(metric, h),
            })
        })
        .collect();
    series.sort_by(|a, b| {
        metrics::slowness(metric, b.hist).total_cmp(&metrics::slowness(metric, a.hist))
    });
    series
}

/// The legend under a chart: the highlighted scenarios with the value they are ranked
/// by, then how many others are drawn faded. It wraps, so long ids never overflow.
fn legend(metric: Metric, series: &[Series<'_>]) -> String {
    let stat = metrics::slowness_stat(metric);
    let mut s = String::from("<div class=\"legend\">");
    for (rank, sr) in series.iter().take(HIGHLIGHTED).enumerate() {
        let _ = write!(
            s,
            "<span class=\"item\"><span class=\"sw\" style=\"background:{}\"></span><code>{}</code> \
             <span class=\"muted\">{} {}</span></span>",
            colour(rank),
            esc(&sr.result.info.id),
            stat.name(),
            metrics::format_value(metric, metrics::stat(sr.hist, stat))
        );
    }
    let rest = series.len().saturating_sub(HIGHLIGHTED);
    if rest > 0 {
        let _ = write!(
            s,
            "<span class=\"item muted\"><span class=\"sw\" style=\"background:{FADED}\"></span>\
             {rest} other scenario{} (hover a line for its name)</span>",
            if rest == 1 { "" } else { "s" }
        );
    }
    s.push_str("</div>");
    s
}

/// The percentile table of every scenario in a chart, slowest first; folded away when
/// the chart has more scenarios than fit beside it.
fn chart_table(series: &[Series<'_>]) -> String {
    let mut s = format!(
        "<details{}><summary>Percentiles of {} scenario{}</summary>\
         <table><tr><th>Scenario</th><th class=\"num\">count</th><th class=\"num\">p50</th>\
         <th class=\"num\">p90</th><th class=\"num\">p99</th><th class=\"num\">p99.9</th>\
         <th class=\"num\">max</th></tr>",
        if series.len() <= 2 * HIGHLIGHTED {
            " open"
        } else {
            ""
        },
        series.len(),
        if series.len() == 1 { "" } else { "s" }
    );
    for (rank, sr) in series.iter().enumerate() {
        let st = &sr.summary;
        let f = |v: f64| metrics::trim(v, 3);
        let _ = write!(
            s,
            "<tr><td><span class=\"sw\" style=\"background:{}\"></span><code>{}</code></td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            colour(rank),
            esc(&sr.result.info.id),
            st.count,
            f(st.p50),
            f(st.p90),
            f(st.p99),
            f(st.p999),
            f(st.max)
        );
    }
    s.push_str("</table></details>");
    s
}

fn charts(log: &RunLog) -> String {
    let mut s = String::from("<div class=\"charts\">");
    for m in Metric::ALL {
        let series = series_of(log, m);
        let _ = write!(
            s,
            "<div class=\"chart\"><h3>{} <span class=\"muted\">({})</span></h3>",
            esc(metrics::title(m)),
            metrics::display_unit(m)
        );
        if series.is_empty() {
            s.push_str("<p class=\"muted\">No samples in this run.</p></div>");
            continue;
        }
        s.push_str(&chart(m, &series));
        s.push_str(&legend(m, &series));
        s.push_str(&chart_table(&series));
        s.push_str("</div>");
    }
    s.push_str("</div>");
    s
}

/// The failures (MUST findings, harness errors) and the warnings (SHOULD findings), one
/// card per scenario.
fn failure_cards(log: &RunLog) -> String {
    let mut s = String::new();
    let failed: Vec<&ScenarioResult> = log
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
        s.push_str("<h2>Failures</h2>\n");
        for r in failed {
            let _ = write!(
                s,
                "<div class=\"card\"><h3><code>{}</code> {}</h3><div class=\"muted\">{} · {}</div>",
                esc(&r.info.id),
                pill(&r.verdict),
                esc(&r.info.title),
                esc(&r.info.file)
            );
            if let Verdict::Error { reason } = &r.verdict {
                let _ = write!(s, "<p>Harness error: {}</p>", esc(reason));
            }
            if let Verdict::Inconclusive { reasons } = &r.verdict {
                s.push_str(
                    "<p>Inconclusive: the scenario did not do what it set out to do.</p><ul>",
                );
                for why in reasons {
                    let _ = write!(s, "<li>{}</li>", esc(&why.to_string()));
                }
                s.push_str("</ul>");
            }
            for f in r.findings.iter().filter(|f| f.level == Level::Must) {
                s.push_str(&finding_block(f));
            }
            let _ = write!(
                s,
                "<div class=\"replay\">Replay: <code>{}</code></div></div>",
                esc(&r.replay_command)
            );
        }
    }

    let warned: Vec<&ScenarioResult> = log
        .results
        .iter()
        .filter(|r| r.findings.iter().any(|f| f.level == Level::Should))
        .collect();
    if !warned.is_empty() {
        s.push_str("<h2>Warnings (SHOULD)</h2>\n");
        for r in warned {
            let _ = write!(
                s,
                "<div class=\"card warn\"><h3><code>{}</code></h3>",
                esc(&r.info.id)
            );
            for f in r.findings.iter().filter(|f| f.level == Level::Should) {
                s.push_str(&finding_block(f));
            }
            s.push_str("</div>\n");
        }
    }
    s
}

pub(crate) fn html(log: &RunLog) -> Result<String, ReportError> {
    let meta = log
        .meta
        .as_ref()
        .ok_or_else(|| ReportError::new(ReportErrorKind::NotStarted, "no RunStarted event"))?;
    let t = log.totals();
    let passed = log.passed();
    let verdict = log.label();
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>sse-harness {verdict}: {} on {}</title><style>{CSS}</style></head><body>\n",
        esc(&meta.profile),
        esc(&meta.target)
    );
    let _ = write!(
        s,
        "<div class=\"banner {}\"><span class=\"big\">{verdict}</span><h1>sse-harness report: \
         profile {} against {}</h1></div>",
        if passed { "pass" } else { "fail" },
        esc(&meta.profile),
        esc(&meta.target)
    );
    let mut facts = vec![
        (
            "target",
            format!(
                "{}{}",
                meta.target,
                if meta.embedded { " (embedded)" } else { "" }
            ),
        ),
        ("profile", meta.profile.clone()),
        ("protocol", meta.protocol.to_string()),
        ("seed", meta.seed.to_string()),
        ("started", meta.started_at.clone()),
        ("duration", human_duration(log.duration.unwrap_or_default())),
        ("harness", meta.harness_version.clone()),
        ("limits", meta.limits.to_string()),
    ];
    if meta.insecure_tls {
        let warning = "TLS certificates NOT verified (--insecure)".to_owned();
        facts.insert(1, ("tls", warning));
    }
    if meta.remote {
        facts.push(("note", harness_model::events::REMOTE_NOTE.to_owned()));
    }
    s.push_str("<div class=\"facts\">");
    for (k, v) in facts {
        let _ = write!(
            s,
            "<div><b>{k}</b><span class=\"mono\">{}</span></div>",
            esc(&v)
        );
    }
    s.push_str("</div>\n");
    let _ = write!(
        s,
        "<div class=\"totals\"><span class=\"chip pass-c\">{} passed</span>\
         <span class=\"chip fail-c\">{} failed</span><span class=\"chip skipped-c\">{} skipped</span>\
         <span class=\"chip error-c\">{} error</span>\
         <span class=\"chip inconclusive-c\">{} inconclusive</span></div>",
        t.pass, t.fail, t.skipped, t.error, t.inconclusive
    );
    if let Some(signal) = log.summary.as_ref().and_then(|s| s.interrupted) {
        let _ = write!(
            s,
            "<p class=\"interrupted-c\"><b>Interrupted by {signal}</b>: a partial report \
             ({} scenario(s) interrupted, {} not run); it never passes a gate.</p>",
            t.interrupted, t.not_run
        );
    }

    s.push_str(&scenario_table(log));

    if !log.gate.is_empty() {
        s.push_str("<h2>Gate</h2><div class=\"card\">");
        for f in &log.gate {
            s.push_str(&finding_block(f));
        }
        s.push_str("</div>\n");
    }

    s.push_str(&failure_cards(log));
    s.push_str(&network_cards(log));

    s.push_str(
        "<h2>Latency and replay rate</h2>\n<p class=\"muted\">Percentile curves per scenario; \
                the x axis is logarithmic in 1/(1&#8722;p), as HdrHistogram plots them, and so \
                is the y axis. The three slowest scenarios of each chart (highest p99; lowest \
                median replay rate) are in colour, the others grey. \
                The .hgrm files beside this report hold the full distributions.</p>\n",
    );
    s.push_str(&charts(log));
    let _ = write!(
        s,
        "\n<footer>Replay this run: <code>{}</code></footer>\n</body></html>\n",
        esc(&meta.replay_command)
    );
    Ok(s)
}

/// The toxic timeline of every scenario that had `[[toxics]]` (its `network` fact):
/// each toxic's window and reach, then each client's connections beside what the proxy
/// did to them.
fn network_cards(log: &RunLog) -> String {
    use harness_model::network::Timeline;
    let mut s = String::new();
    let lines: Vec<(&ScenarioResult, Timeline)> = log
        .results
        .iter()
        .filter_map(|r| {
            Some((
                r,
                serde_json::from_value(r.facts.get("network")?.clone()).ok()?,
            ))
        })
        .collect();
    if lines.is_empty() {
        return s;
    }
    s.push_str("<h2>Network toxics</h2>\n");
    for (r, t) in lines {
        let _ = write!(
            s,
            "<div class=\"card net\"><h3><code>{}</code> {}</h3><table><tr><th>Path</th><th>Toxic</th>\
             <th>Kind</th><th>Stream</th><th>Window</th><th class=\"num\">Toxicity</th>\
             <th class=\"num\">Conns hit</th></tr>",
            esc(&r.info.id),
            pill(&r.verdict)
        );
        for w in &t.toxics {
            let until = w.until_ms.map_or("end".to_owned(), |u| format!("{u} ms"));
            let _ = write!(
                s,
                "<tr><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms – {until}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                w.path,
                esc(&w.name),
                esc(&w.kind),
                w.stream.as_str(),
                w.from_ms,
                w.toxicity,
                w.connections
            );
        }
        s.push_str("</table>");
        if let Some(p) = &t.publisher {
            let _ = write!(
                s,
                "<p class=\"muted\">Publisher path: {} connections, {} cut by the proxy, {} indeterminate.</p>",
                p.connections, p.cut_by_proxy, p.indeterminate
            );
        }
        if !t.clients.is_empty() {
            s.push_str(
                "<table><tr><th>Client</th><th class=\"num\">Conn</th><th>Open</th><th>End</th>\
                 <th>What the proxy did</th></tr>",
            );
            for c in &t.clients {
                for conn in &c.connections {
                    let marks: Vec<String> = conn
                        .marks
                        .iter()
                        .map(|m| {
                            let who = m
                                .toxic
                                .as_deref()
                                .map(|t| format!("{} ", esc(t)))
                                .unwrap_or_default();
                            format!("{:.0} ms {who}{}", m.at_ms, esc(&m.what))
                        })
                        .collect();
                    let _ = write!(
                        s,
                        "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td>{}–{} ms</td><td>{}</td>\
                         <td class=\"note\">{}</td></tr>",
                        esc(&c.client),
                        conn.index,
                        conn.opened_ms,
                        conn.ended_ms,
                        esc(&conn.end),
                        if marks.is_empty() {
                            "—".to_owned()
                        } else {
                            marks.join("<br>")
                        }
                    );
                }
            }
            s.push_str("</table>");
        }
        s.push_str("</div>\n");
    }
    s
}

/// The table of scenarios: verdict, time, counts and the first finding or reason.
fn scenario_table(log: &RunLog) -> String {
    let mut s = String::new();
    s.push_str(
        "<h2>Scenarios</h2><table><tr><th>Scenario</th><th>Verdict</th><th class=\"num\">Time</th>\
         <th class=\"num\">Conns</th><th class=\"num\">Events</th><th class=\"num\">Published</th>\
         <th class=\"num\">Cuts</th><th>First finding / reason</th></tr>\n",
    );
    for r in &log.results {
        let note = r.headline();
        let _ = write!(
            s,
            "<tr><td><code>{}</code><div class=\"muted\">{}</div></td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"note\">{}</td></tr>",
            esc(&r.info.id),
            esc(&r.info.title),
            pill(&r.verdict),
            human_duration(r.duration),
            r.stats.connections,
            r.stats.events_received,
            r.stats.events_published,
            cuts(&r.stats),
            esc(&note)
        );
    }
    s.push_str("</table>\n");
    s
}

pub(crate) fn render(log: &RunLog) -> Result<Vec<Rendered>, ReportError> {
    Ok(vec![Rendered::new("report.html", html(log)?)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_spans_whole_decades() {
        let a = LogAxis::covering(0.42, 3_100.0);
        assert_eq!(a, LogAxis { lo: -1, hi: 4 });
        assert_eq!(a.ticks(), [0.1, 1.0, 10.0, 100.0, 1_000.0, 10_000.0]);
        assert_eq!(a.fraction(0.1), 0.0);
        assert_eq!(a.fraction(10_000.0), 1.0);
        assert!((a.fraction(10.0) - 0.4).abs() < 1e-9);
        assert_eq!(a.fraction(0.0), 0.0);
        let narrow = LogAxis::covering(1.5, 40.0);
        assert_eq!(narrow.ticks(), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
        let flat = LogAxis::covering(10.0, 10.0);
        assert_eq!(flat, LogAxis { lo: 1, hi: 2 });
        assert_eq!(LogAxis::covering(0.0, 0.0), LogAxis { lo: 0, hi: 1 });
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(tick_label(120_000.0), "120k");
        assert_eq!(tick_label(2_500_000.0), "2.5M");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(decade_label(0), "0%");
        assert_eq!(decade_label(2), "99%");
        assert_eq!(decade_label(4), "99.99%");
        assert_eq!(
            esc("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
