//! `report.html` in a real browser: the report of a 35-scenario run is loaded in headless
//! Chromium, which must log nothing to its console (the page runs no script, so any
//! message, such as an uncaught script error, is a fault), and every chart must
//! be drawn: an SVG with a non-zero size holding one curve per scenario that measured
//! the metric, each curve of non-zero length, the three slowest highlighted, and a
//! legend inside its chart with nothing wider than the window.
//!
//! How the browser is driven: one `chromium-headless-shell --dump-dom` process per load,
//! with `--enable-logging=stderr`, which writes each console message to stderr as a
//! `CONSOLE` line. A copy of the page gets a small probe script appended that measures
//! the drawn charts through the DOM (`getBBox`, `getTotalLength`, bounding boxes) and
//! writes the figures as JSON into the DOM that Chromium dumps. A DevTools-protocol
//! crate (chromiumoxide, headless_chrome) could evaluate the same script over a
//! websocket, but brings an async runtime or a long-lived browser session, with its own
//! connection and shutdown handling, into a test that needs one page load. One process
//! that exits by itself, its process group killed when it has not within the deadline, is
//! less to go wrong. The probe adds one element after measuring and logs nothing, so a
//! console message comes from the report, or from the probe failing, which also fails.
//!
//! Without a Chromium binary the test is skipped with a notice, except under `CI=true`,
//! where `.ci/run` installs Debian's `chromium-headless-shell` and a missing browser fails.
#![cfg(unix)]

mod support;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness_model::Metric;
use wait_timeout::ChildExt as _;

/// How long one browser load may take, start-up included, on a loaded machine.
const LOAD_DEADLINE: Duration = Duration::from_secs(120);

/// The browser binaries tried, in order, on `PATH`.
const BROWSERS: [&str; 2] = ["chromium-headless-shell", "chromium"];

/// Measures every chart after the page loaded and writes the figures into the DOM.
const PROBE: &str = r#"<script>
(() => {
  const inside = (a, b) => a.left >= b.left - 0.5 && a.right <= b.right + 0.5;
  const charts = [...document.querySelectorAll(".chart")].map((c) => {
    const box = c.getBoundingClientRect();
    const svg = c.querySelector("svg");
    const svgBox = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
    const curves = svg ? [...svg.querySelectorAll("polyline.curve")] : [];
    const legend = c.querySelector(".legend");
    return {
      title: c.querySelector("h3").textContent,
      svg_width: svgBox.width,
      svg_height: svgBox.height,
      curves: curves.length,
      drawn: curves.filter((p) => p.getTotalLength() > 0 && p.getBBox().width > 0).length,
      slowest: svg ? svg.querySelectorAll("polyline.slowest").length : 0,
      legend_inside: legend ? inside(legend.getBoundingClientRect(), box)
        && legend.scrollWidth <= legend.clientWidth : null,
    };
  });
  const out = document.createElement("script");
  out.type = "application/json";
  out.id = "probe";
  out.textContent = JSON.stringify({
    charts,
    page_width: document.documentElement.scrollWidth,
    window_width: window.innerWidth,
  });
  document.body.appendChild(out);
})();
</script>"#;

/// The first browser binary on `PATH`.
fn browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    BROWSERS.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// What one load of a page left: the DOM after the load, and every console message.
struct Load {
    dom: String,
    console: Vec<String>,
    stderr: String,
}

/// Loads `page` in a fresh headless browser profile under `work`, within [`LOAD_DEADLINE`].
fn load(browser: &Path, page: &Path, work: &Path) -> Load {
    let out = work.join("dom.html");
    let err = work.join("stderr.txt");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,2000",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.join("profile").display()
        ))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        // Its own process group, so the browser's helper processes go with it on a timeout.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", browser.display()));
    let status = child.wait_timeout(LOAD_DEADLINE).unwrap();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    let Some(status) = status else {
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        panic!("the browser did not finish within {LOAD_DEADLINE:?}; stderr:\n{stderr}");
    };
    assert!(
        status.success(),
        "the browser failed: {status}; stderr:\n{stderr}"
    );
    Load {
        dom: std::fs::read_to_string(&out).unwrap(),
        console: stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_owned)
            .collect(),
        stderr,
    }
}

/// The probe's figures from a dumped DOM.
fn probe_figures(load: &Load) -> serde_json::Value {
    let start = r#"<script type="application/json" id="probe">"#;
    let json = load
        .dom
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map(|(json, _)| json)
        .unwrap_or_else(|| panic!("the probe did not run; stderr:\n{}", load.stderr));
    serde_json::from_str(json).unwrap()
}

/// How many scenarios of the run measured each metric, in chart order.
fn expected_curves() -> Vec<(Metric, usize)> {
    let results = support::many_results();
    Metric::ALL
        .into_iter()
        .map(|m| {
            let n = results
                .iter()
                .filter(|r| r.histograms.get(&m).is_some_and(|h| !h.is_empty()))
                .count();
            (m, n)
        })
        .collect()
}

#[test]
fn report_loads_without_console_messages_and_draws_every_chart() {
    let Some(browser) = browser() else {
        let msg = "no Chromium on PATH (Debian package chromium-headless-shell)";
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "{msg}: under CI=true this test must run");
        eprintln!("NOTICE: {msg}; browser test skipped");
        return;
    };
    let dir = support::write_reports_of(support::events_of(support::many_results()));
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let page = dir.path().join("probed.html");
    let (body, end) = html.rsplit_once("</body>").expect("report.html has a body");
    std::fs::write(&page, format!("{body}{PROBE}</body>{end}")).unwrap();

    let load = load(&browser, &page, dir.path());
    assert!(
        load.console.is_empty(),
        "the page logged to the console:\n{}",
        load.console.join("\n")
    );
    let figures = probe_figures(&load);
    let charts = figures["charts"].as_array().unwrap();
    let expected = expected_curves();
    assert_eq!(charts.len(), expected.len(), "one chart per metric");
    for (chart, (metric, n)) in charts.iter().zip(expected) {
        let name = metric.name();
        assert!(
            n > 3,
            "the run measures {name} in more scenarios than are highlighted"
        );
        assert!(
            chart["svg_width"].as_f64().unwrap() > 100.0,
            "{name}: {chart}"
        );
        assert!(
            chart["svg_height"].as_f64().unwrap() > 50.0,
            "{name}: {chart}"
        );
        assert_eq!(
            chart["curves"], n,
            "{name}: one curve per scenario: {chart}"
        );
        assert_eq!(chart["drawn"], n, "{name}: every curve drawn: {chart}");
        assert_eq!(chart["slowest"], 3, "{name}: three highlighted: {chart}");
        assert_eq!(
            chart["legend_inside"], true,
            "{name}: legend overflows: {chart}"
        );
    }
    let width = |key: &str| {
        figures[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {figures}"))
    };
    assert!(
        width("page_width") <= width("window_width"),
        "the page is wider than the window: {figures}"
    );
}
