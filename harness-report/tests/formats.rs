//! Every file format over a fixed synthetic run: snapshots (times, ports and seeds
//! redacted) plus checks against the formats' own schemas and parsers.

mod support;

use std::path::Path;
use std::process::Command;

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn writes_every_file() {
    let dir = support::write_reports();
    let mut names: Vec<String> = walk(dir.path(), dir.path());
    names.sort();
    assert_eq!(
        names,
        [
            "hgrm/CT-10_cut-at-random-bytes.connect_to_open.hgrm",
            "hgrm/CT-10_cut-at-random-bytes.publish_to_deliver.hgrm",
            "hgrm/CT-10_cut-at-random-bytes.reconnect_to_caught_up.hgrm",
            "hgrm/CT-11_slow-reader.connect_to_open.hgrm",
            "hgrm/CT-11_slow-reader.publish_to_deliver.hgrm",
            "hgrm/CT-11_slow-reader.replay_rate.hgrm",
            "junit.xml",
            "report.html",
            "report.md",
            "summary.json",
        ]
    );
}

fn walk(root: &Path, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(root, &p));
        } else {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn summary_json_snapshot_and_schema() {
    let dir = support::write_reports();
    let text = read(dir.path(), "summary.json");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema/summary-v1.schema.json")).unwrap();
    let validator = jsonschema::draft202012::new(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "summary.json violates its schema: {errors:#?}"
    );
    assert_eq!(value["totals"]["fail"], 1);
    assert_eq!(
        value["scenarios"][1]["findings"][0]["contract"],
        "resume.no-gap"
    );
    assert_eq!(value["gate"][0]["contract"], "gate.threshold");
    support::redacted().bind(|| insta::assert_snapshot!("summary.json", text));
}

#[test]
fn schema_rejects_a_broken_summary() {
    let dir = support::write_reports();
    let mut value: serde_json::Value =
        serde_json::from_str(&read(dir.path(), "summary.json")).unwrap();
    value["scenarios"][0]["verdict"] = "maybe".into();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema/summary-v1.schema.json")).unwrap();
    assert!(
        !jsonschema::draft202012::new(&schema)
            .unwrap()
            .is_valid(&value)
    );
}

#[test]
fn junit_snapshot_parses_back() {
    let dir = support::write_reports();
    let text = read(dir.path(), "junit.xml");
    let report = quick_junit::Report::deserialize_from_str(&text).expect("junit.xml parses back");
    let suites: Vec<&str> = report.test_suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(suites, ["CT-10", "CT-11", "CT-12", "LIFECYCLE", "gate"]);
    let ct11 = &report.test_suites[1];
    assert_eq!(ct11.failures, 1);
    match &ct11.test_cases[0].status {
        quick_junit::TestCaseStatus::NonSuccess {
            message,
            description,
            ..
        } => {
            assert!(
                message
                    .as_ref()
                    .unwrap()
                    .as_str()
                    .contains("[resume.no-gap]")
            );
            assert!(
                description
                    .as_ref()
                    .unwrap()
                    .as_str()
                    .contains("resume.no-duplicate")
            );
        }
        other => panic!("CT-11 should fail: {other:?}"),
    }
    assert!(matches!(
        report.test_suites[2].test_cases[0].status,
        quick_junit::TestCaseStatus::Skipped { .. }
    ));
    assert_eq!(report.test_suites[3].errors, 1);
    support::redacted().bind(|| insta::assert_snapshot!("junit.xml", text));
}

#[test]
fn junit_validates_against_jenkins_xsd() {
    let Ok(out) = Command::new("xmllint").arg("--version").output() else {
        eprintln!(
            "NOTICE: xmllint not found (Debian package libxml2-utils); JUnit XSD check skipped"
        );
        return;
    };
    assert!(out.status.success());
    let dir = support::write_reports();
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/junit.xsd");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(dir.path().join("junit.xml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "junit.xml does not validate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn markdown_snapshot() {
    let dir = support::write_reports();
    support::redacted()
        .bind(|| insta::assert_snapshot!("report.md", read(dir.path(), "report.md")));
}

#[test]
fn html_is_self_contained() {
    let dir = support::write_reports();
    let html = read(dir.path(), "report.html");
    for forbidden in ["<script", "<link", "src=", "@import", "url("] {
        assert!(
            !html.contains(forbidden),
            "report.html contains {forbidden}"
        );
    }
    assert!(!html.contains("http://") || html.matches("http://").all(|_| true));
    let svgs = html.matches("<svg").count();
    assert_eq!(svgs, 4, "one chart per metric");
    assert!(html.contains("seq 60 twice &lt;dup&gt; &amp; &quot;quoted&quot;"));
    // Every http(s) address in the page is either the SVG namespace or run data shown as text.
    for (i, _) in html.match_indices("http") {
        let rest = &html[i..];
        assert!(
            rest.starts_with("http://www.w3.org/2000/svg")
                || rest.starts_with("http://127.0.0.1")
                || rest.starts_with("http/1.1"),
            "unexpected address at {}",
            &rest[..40.min(rest.len())]
        );
    }
    support::redacted().bind(|| insta::assert_snapshot!("report.html", html));
}

#[test]
fn hgrm_snapshot() {
    let dir = support::write_reports();
    let text = read(dir.path(), "hgrm/CT-11_slow-reader.publish_to_deliver.hgrm");
    assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
    assert!(text.contains("Total count    =         2411]"));
    support::redacted().bind(|| insta::assert_snapshot!("publish_to_deliver.hgrm", text));
}

#[test]
fn reporting_into_an_unwritable_place_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let mut reporters = harness_report::file_reporters(&blocker.join("sub"));
    let mut err = None;
    for e in support::events() {
        if let Err(e) = reporters[0].on_event(&e) {
            err = Some(e);
        }
    }
    let err = err.expect("writing under a file fails");
    assert!(
        matches!(err.kind(), harness_report::ReportErrorKind::Io { .. }),
        "{err}"
    );
}

#[test]
fn finishing_without_starting_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut reporters = harness_report::file_reporters(dir.path());
    let end = harness_report::RunEvent::RunFinished {
        duration: std::time::Duration::ZERO,
        summary: harness_model::RunSummary {
            outcome: harness_model::Outcome::Pass,
            totals: Default::default(),
            reason: None,
            interrupted: None,
        },
    };
    let err = reporters[0].on_event(&end).unwrap_err();
    assert_eq!(err.kind(), &harness_report::ReportErrorKind::NotStarted);
}

#[test]
fn a_target_off_loopback_is_noted_in_every_file_report() {
    let mut events = support::events();
    if let harness_model::RunEvent::RunStarted { meta, .. } = &mut events[0] {
        meta.remote = true;
        meta.target = "https://sse.example.com/api".into();
    }
    let dir = support::write_reports_of(events);
    let note = harness_model::events::REMOTE_NOTE;
    assert!(read(dir.path(), "report.md").contains(note));
    assert!(read(dir.path(), "report.html").contains(note));
    let summary: serde_json::Value =
        serde_json::from_str(&read(dir.path(), "summary.json")).unwrap();
    assert_eq!(summary["run"]["remote"], true);
    let plain: serde_json::Value =
        serde_json::from_str(&read(support::write_reports().path(), "summary.json")).unwrap();
    assert!(plain["run"].get("remote").is_none(), "absent on loopback");
}
