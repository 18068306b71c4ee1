//! The `sse-harness` command line as a user and a CI gate meet it, run as a real
//! process: exit codes (0 pass, 1 contract failed, 2 could not run), the report
//! directory, and the expected-failures baseline that only tightens.

use std::path::Path;
use std::process::{Command, Output};

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sse-harness"))
        .args(args)
        .env_remove("SSE_HARNESS_TOKEN")
        .output()
        .expect("sse-harness runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const QUICK: &str = "HEARTBEAT/idle-events-stream";

#[test]
fn a_clean_run_exits_0_and_writes_every_report() {
    let dir = tempfile::tempdir().unwrap();
    let o = harness(&[
        "run",
        "--seed",
        "5",
        "--scenario",
        QUICK,
        "--report-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for f in ["summary.json", "junit.xml", "report.md", "report.html"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["run"]["seed"], 5);
    assert_eq!(summary["scenarios"][0]["verdict"], "pass");
    assert!(
        stderr(&o).contains("seed: 5"),
        "the seed is printed: {}",
        stderr(&o)
    );
}

#[test]
fn a_broken_contract_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = harness(&[
        "run",
        "--seed",
        "5",
        "--fault",
        "heartbeat-absent",
        "--scenario",
        QUICK,
        "--report-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("[heartbeat.interval] client idle#0"), "{md}");
}

#[test]
fn could_not_run_exits_2_in_one_line() {
    let o = harness(&["run", "--target", "http://127.0.0.1:9", "--scenario", QUICK]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("target unreachable"), "{}", stderr(&o));
    let o = harness(&["run", "--profile", "no-such-profile"]);
    assert_eq!(code(&o), 2);
    let o = harness(&["run", "--scenario", "NO-SUCH/*"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no scenario matches"));
    let o = harness(&["run", "--threshold", "publish_to_deliver.p99 <"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = harness(&[
        "run",
        "--target",
        "http://127.0.0.1:9",
        "--fault",
        "heartbeat-absent",
    ]);
    assert_eq!(code(&o), 2, "--fault needs the embedded server");
}

#[test]
fn a_baseline_accepts_known_failures_and_rejects_stale_ones() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("baseline.toml");
    let rep = |n: &str| dir.path().join(n).display().to_string();
    let b = base.to_str().unwrap();
    // Record the known failure.
    let o = harness(&[
        "run",
        "--seed",
        "5",
        "--fault",
        "heartbeat-absent",
        "--scenario",
        QUICK,
        "--report-dir",
        &rep("r1"),
        "--write-baseline",
        b,
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        std::fs::read_to_string(&base)
            .unwrap()
            .contains("heartbeat.interval")
    );
    // The same failure with the baseline: the run passes, and the report says so.
    let o = harness(&[
        "run",
        "--seed",
        "5",
        "--fault",
        "heartbeat-absent",
        "--scenario",
        QUICK,
        "--report-dir",
        &rep("r2"),
        "--baseline",
        b,
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let md = std::fs::read_to_string(Path::new(&rep("r2")).join("report.md")).unwrap();
    assert!(md.contains("PASS"), "{md}");
    // Fixed server, stale baseline: the gate only tightens.
    let o = harness(&[
        "run",
        "--seed",
        "5",
        "--scenario",
        QUICK,
        "--report-dir",
        &rep("r3"),
        "--baseline",
        b,
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let md = std::fs::read_to_string(Path::new(&rep("r3")).join("report.md")).unwrap();
    assert!(md.contains("gate.baseline"), "{md}");
}

#[test]
fn a_threshold_breach_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let o = harness(&[
        "run",
        "--seed",
        "5",
        "--scenario",
        "CT-07/reconnect-with-last-event-id",
        "--threshold",
        "publish_to_deliver.p50 < 1us",
        "--report-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("gate.threshold"), "{md}");
}

#[test]
fn list_names_every_scenario_and_why_a_profile_skips_it() {
    let o = harness(&["list", "--profile", "nchan"]);
    assert_eq!(code(&o), 0);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("CT-10/cut-at-random-bytes"));
    assert!(
        out.contains("LIFECYCLE/task-completed") && out.contains("needs task-stream"),
        "{out}"
    );
}
