//! `junit.xml`: one `<testsuite>` per contract group (CT-10, ...), one `<testcase>` per
//! scenario; failures carry the finding text, skipped and errored scenarios their reason,
//! SHOULD findings go to the test case's `system-out`. Gate findings, when there are
//! any, are one failing test case of a `gate` suite so CI shows the run failed; an
//! interrupted run is one erroring `run/interrupted` test case.

use harness_model::{Finding, Level, ScenarioResult, Verdict};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::error::{ReportError, ReportErrorKind};
use crate::files::Rendered;
use crate::runlog::RunLog;

fn findings_text(findings: &[&Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        s.push_str(&format!("{} {} ({})\n", f.level, f.message(), f.spec));
    }
    s
}

/// The report as quick-junit's model.
pub(crate) fn report(log: &RunLog) -> Report {
    let mut report = Report::new("sse-harness");
    if let Some(d) = log.duration {
        report.set_time(d);
    }
    let mut groups: Vec<&str> = Vec::new();
    for r in &log.results {
        if !groups.contains(&r.info.group.as_str()) {
            groups.push(&r.info.group);
        }
    }
    let properties: Vec<Property> = log
        .meta
        .iter()
        .flat_map(|m| {
            [
                Property::new("seed", m.seed.to_string()),
                Property::new("target", m.target.as_str()),
                Property::new("profile", m.profile.as_str()),
                Property::new("replay_command", m.replay_command.as_str()),
            ]
        })
        .collect();
    for group in groups {
        let mut suite = TestSuite::new(group);
        suite.add_properties(properties.iter().cloned());
        let mut time = std::time::Duration::ZERO;
        for r in log.results.iter().filter(|r| r.info.group == group) {
            time += r.duration;
            let must: Vec<&Finding> = r
                .findings
                .iter()
                .filter(|f| f.level == Level::Must)
                .collect();
            let should: Vec<&Finding> = r
                .findings
                .iter()
                .filter(|f| f.level == Level::Should)
                .collect();
            let status = status(r, &must);
            let mut case = TestCase::new(r.info.id.as_str(), status);
            case.set_classname(group);
            case.set_time(r.duration);
            if !should.is_empty() {
                case.set_system_out(format!("warnings:\n{}", findings_text(&should)));
            }
            suite.add_test_case(case);
        }
        suite.set_time(time);
        report.add_test_suite(suite);
    }
    if let Some(suite) = interrupted_suite(log) {
        report.add_test_suite(suite);
    }
    if !log.gate.is_empty() {
        let mut suite = TestSuite::new("gate");
        let gate: Vec<&Finding> = log.gate.iter().collect();
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(gate[0].message());
        s.set_type(gate[0].contract.0.as_str());
        s.set_description(findings_text(&gate));
        let mut case = TestCase::new("gate/thresholds-and-baseline", s);
        case.set_classname("gate");
        suite.add_test_case(case);
        report.add_test_suite(suite);
    }
    report
}

pub(crate) fn render(log: &RunLog) -> Result<Vec<Rendered>, ReportError> {
    let xml = report(log).to_string().map_err(|e| {
        ReportError::new(
            ReportErrorKind::Serialize {
                format: "junit.xml",
            },
            e,
        )
    })?;
    Ok(vec![Rendered::new("junit.xml", drop_suites_skipped(xml))])
}

/// Drops the `skipped` count quick-junit writes on `<testsuites>`: the Jenkins JUnit
/// schema (schema/junit.xsd) does not allow it there, while each `<testsuite>` keeps
/// its own count.
fn drop_suites_skipped(xml: String) -> String {
    let Some(start) = xml.find("<testsuites") else {
        return xml;
    };
    let end = xml[start..].find('>').map_or(xml.len(), |e| start + e);
    let tag = &xml[start..end];
    let Some(at) = tag.find(" skipped=\"") else {
        return xml;
    };
    let value_end = tag[at + 10..]
        .find('"')
        .map_or(tag.len(), |e| at + 10 + e + 1);
    format!("{}{}{}", &xml[..start + at], &tag[value_end..], &xml[end..])
}

/// The JUnit status of scenario `r`, whose MUST findings are `must`.
fn status(r: &ScenarioResult, must: &[&Finding]) -> TestCaseStatus {
    match &r.verdict {
        Verdict::Pass => TestCaseStatus::success(),
        Verdict::Fail => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            if let Some(first) = must.first() {
                s.set_message(first.message());
                s.set_type(first.contract.0.as_str());
            } else {
                s.set_message("failed");
            }
            s.set_description(format!(
                "{}replay: {}\n",
                findings_text(must),
                r.replay_command
            ));
            s
        }
        Verdict::Skipped { reason } => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(harness_model::untrusted(reason).as_ref());
            s
        }
        Verdict::Inconclusive { .. } => {
            let reason = r.verdict.reason().unwrap_or_default();
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!("inconclusive: {reason}"));
            s.set_type("inconclusive");
            s.set_description(format!("{reason}\nreplay: {}\n", r.replay_command));
            s
        }
        Verdict::Interrupted => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message("interrupted: the run was stopped while this scenario ran");
            s.set_type("interrupted");
            s.set_description(format!("replay: {}\n", r.replay_command));
            s
        }
        Verdict::NotRun => {
            let mut s = TestCaseStatus::skipped();
            s.set_message("not run: the run was interrupted before it");
            s
        }
        Verdict::Error { reason } => {
            let reason = harness_model::untrusted(reason);
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message(reason.as_ref());
            s.set_type("harness");
            s.set_description(format!("{reason}\nreplay: {}\n", r.replay_command));
            s
        }
    }
}

/// The erroring `run/interrupted` case of an interrupted run, in a `run` suite.
fn interrupted_suite(log: &RunLog) -> Option<TestSuite> {
    let signal = log.summary.as_ref().and_then(|s| s.interrupted)?;
    let mut suite = TestSuite::new("run");
    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
    s.set_message(format!("the run was interrupted by {signal}"));
    s.set_type("interrupted");
    if let Some(reason) = log.summary.as_ref().and_then(|s| s.reason.as_ref()) {
        s.set_description(format!("{reason}\n"));
    }
    let mut case = TestCase::new("run/interrupted", s);
    case.set_classname("run");
    suite.add_test_case(case);
    Some(suite)
}
