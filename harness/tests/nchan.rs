//! The generic profile proven on a real third-party server: nginx + nchan, started on a
//! free loopback port by `targets/nchan/nchan.sh` (its own prefix, config, pid file and
//! logs), with `contracts/profiles/nchan.toml`. One test per scenario:
//!
//! - `nchan/<scenario>`: the scenarios nchan can run (resume after cuts, rapid
//!   reconnects, bursts, slow readers, order by markers) pass, MUST-wise;
//! - `nchan-cleans-up/channels-deleted`: the channels a scenario made are deleted when
//!   it ends (the profile's `[channels] delete`);
//! - `nchan-skips/<scenario>`: scenarios needing what nchan does not claim are skipped
//!   with the reason, not failed;
//! - `nchan-breaks/resume-after-buffer-eviction`: where nchan truly breaks a contract
//!   (a resume from an evicted id silently skips messages, BEHAVIOUR.md §9), the exact
//!   finding is asserted; likewise `nchan-breaks/bare-carriage-return` (a bare CR in a
//!   body is written raw, so the rest of its line is lost).
//!
//! Needs `nginx-light` and `libnginx-mod-nchan` (`targets/nchan/install.sh`, which
//! `.ci/run` calls). Without them the tests are ignored, except under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use harness_model::{Level, Verdict};
use libtest_mimic::{Arguments, Failed, Trial};
use sse_harness::scenario;
use sse_harness::{RunConfig, TargetSpec};

mod support;

/// Scenarios nchan must pass.
const APPLICABLE: &[&str] = &[
    "CT-07/reconnect-with-last-event-id",
    "CT-07/reconnect-with-cursor-query",
    "CT-09/resume-no-gap-no-duplicate-monotonic",
    "CT-10/cut-at-random-bytes",
    "CT-10/cut-inside-the-framing",
    "CT-10/cut-after-random-event-counts",
    "CT-10/rapid-reconnect-cycles",
    "CT-10/reset-instead-of-close",
    "CT-11/pause-five-seconds",
    "CT-11/slow-consumers-beside-fast",
    "CT-12/ten-clients-at-once",
    "CT-12/five-reconnect-while-five-stay",
    "CT-12/burst-of-fifty-reconnects",
    "CONTENT/line-breaks-and-spaces",
    "WIRE/idle-open",
    "WIRE/trickle",
    // The profile's [resume] claims hold (a mismatch is resume.declared-answer).
    "RESUME-ID/garbage-id",
    "RESUME-ID/unknown-id",
];

/// Scenarios nchan cannot run, and the capability that says so.
const SKIPPED: &[(&str, &str)] = &[
    ("CT-09/cross-job-replay-order", "all-stream"),
    ("CT-11/late-join-over-large-backlog", "batch-publish"),
    ("LIFECYCLE/task-completed", "task-stream"),
    ("CURSOR/invalid-last-event-id", "cursor-errors"),
    ("VERSION/pending-flushed-in-order", "version-stream"),
    ("DURABILITY/crash-restart", "durability"),
    ("WIRE/field-injection", "chosen-event-type"),
    ("RESUME-ID/restart-id", "durability"),
];

/// Browser scenarios (Chromium's `EventSource`s beside a byte-exact client) nchan must
/// pass; ignored without Chromium (BEHAVIOUR.md §14).
/// With whether the scenario cuts the browsers' streams (they must then reconnect after
/// Chromium's default 3 s: nchan sends no `retry:`).
const BROWSER_APPLICABLE: &[(&str, bool)] = &[
    ("BROWSER/resume-after-reset", true),
    ("BROWSER/idle-frames-keep-the-cursor", true),
    ("BROWSER/same-origin-through-the-relay", true),
    // nchan allows every origin ([browser] cors = "any"): the foreign page reads too.
    ("BROWSER/cors-for-allowed-origins-only", false),
];

/// Browser scenarios nchan cannot run, and the start of the skip reason.
const BROWSER_SKIPPED: &[(&str, &str)] = &[
    (
        "BROWSER/backlog-then-live",
        "profile nchan does not claim capability replay-from-start",
    ),
    (
        "BROWSER/wrong-token-stops-for-good",
        "profile nchan has no stream token in the query",
    ),
    (
        "BROWSER/connection-close-then-end",
        "profile nchan does not claim capability cursor-errors",
    ),
    (
        "BROWSER/task-stream-to-its-end",
        "profile nchan does not claim capability task-stream",
    ),
];

/// Resume-id scenarios where nchan breaks a rule that holds whatever a profile claims:
/// the scenario, the findings (for client `resumed#0`) any of which it must report,
/// the fact it must state, and why (BEHAVIOUR.md).
const RESUME_BREAKS: &[(&str, &[&str], &str, &str)] = &[
    (
        "RESUME-ID/evicted-id",
        &["resume.no-gap"],
        "replay-all",
        "an evicted id gets the whole remaining buffer, the messages after it that fell out silently missing (§9); the declared evicted_id = replay-all holds",
    ),
    (
        "RESUME-ID/foreign-id",
        &["resume.no-duplicate", "resume.no-gap"],
        "",
        "another channel's id is read as a time position: within its second, by counter (duplicates), across seconds, at the next second (a gap) (§13)",
    ),
];

/// One trial per [`RESUME_BREAKS`] row.
fn resume_breaks(url: &str, seed: u64, available: bool) -> Vec<Trial> {
    RESUME_BREAKS
        .iter()
        .map(|&(id, want, answer, why)| {
            let url = url.to_owned();
            Trial::test(format!("nchan-breaks/{id}"), move || {
                let r = support::block_on(run(&url, "nchan", None, id, seed))??;
                let must: Vec<_> = r.findings.iter().filter(|f| f.level == Level::Must).collect();
                let hit = must.iter().find(|f| {
                    want.contains(&f.contract.0.as_str())
                        && f.evidence.client.as_ref().is_some_and(|c| c.0 == "resumed#0")
                });
                let others: Vec<_> = must
                    .iter()
                    .filter(|f| !want.contains(&f.contract.0.as_str()))
                    .map(|f| f.message())
                    .collect();
                let fact = r.facts.values().filter_map(|v| v.as_str()).any(|v| v.starts_with(answer));
                match (&r.verdict, hit) {
                    (Verdict::Fail, Some(f)) if others.is_empty() && fact => {
                        eprintln!("nchan breaks {id} as documented ({why}): {f}");
                        Ok(())
                    }
                    _ => Err(format!(
                        "{id}: expected one of {want:?} for resumed#0 and nothing else ({why}), got {:?}: {:?}; facts {:?}",
                        r.verdict,
                        must.iter().map(|f| f.message()).collect::<Vec<_>>(),
                        r.facts
                    )
                    .into()),
                }
            })
            .with_ignored_flag(!available)
        })
        .collect()
}

/// The browser trials: [`BROWSER_APPLICABLE`] pass with the browsers reconnecting
/// after Chromium's default 3 s (nchan sends no `retry:`), [`BROWSER_SKIPPED`] skip.
fn browser_trials(url: &str, seed: u64, available: bool) -> Vec<Trial> {
    let chromium = sse_harness::browser::chromium().is_some();
    let mut trials = Vec::new();
    for &(id, cut) in BROWSER_APPLICABLE {
        let url = url.to_owned();
        trials.push(
            Trial::test(format!("nchan/{id}"), move || {
                let r = support::block_on(run(&url, "nchan", None, id, seed))??;
                let waits = r.facts.get("browser_reconnects").cloned().unwrap_or_default();
                let min = waits["min_ms"].as_u64().unwrap_or(0);
                let max = waits["max_ms"].as_u64().unwrap_or(u64::MAX);
                let reconnected = (2900..6000).contains(&min) && max < 6000;
                match r.verdict {
                    Verdict::Pass if reconnected || !cut => Ok(()),
                    v => Err(format!(
                        "{id} on nchan: {v:?} (seed {seed}); reconnects {waits}; MUST findings: {:?}",
                        r.findings.iter().filter(|f| f.level == Level::Must).map(|f| f.message()).collect::<Vec<_>>()
                    )
                    .into()),
                }
            })
            .with_ignored_flag(!available || !chromium),
        );
    }
    for (id, want) in BROWSER_SKIPPED {
        let url = url.to_owned();
        trials.push(
            Trial::test(format!("nchan-skips/{id}"), move || {
                let r = support::block_on(run(&url, "nchan", None, id, seed))??;
                match r.verdict {
                    Verdict::Skipped { reason } if reason.starts_with(want) => Ok(()),
                    v => Err(format!("{id}: expected skipped ({want}), got {v:?}").into()),
                }
            })
            .with_ignored_flag(!available),
        );
    }
    trials
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Nchan {
    dir: tempfile::TempDir,
    url: String,
}

impl Nchan {
    fn start() -> Result<Nchan, String> {
        let dir = tempfile::Builder::new()
            .prefix("sse-nchan-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let out = Command::new("bash")
            .arg(repo().join("targets/nchan/nchan.sh"))
            .arg("start")
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "nchan.sh start failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(Nchan { dir, url })
    }
}

impl Drop for Nchan {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("targets/nchan/nchan.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

fn installed() -> bool {
    Path::new("/usr/sbin/nginx").exists()
        && Path::new("/usr/lib/nginx/modules/ngx_nchan_module.so").exists()
}

/// Plays scenario `id` (built-in, or from `dir`) against nchan at `url` with `profile`.
async fn run(
    url: &str,
    profile: &str,
    dir: Option<PathBuf>,
    id: &str,
    seed: u64,
) -> Result<harness_model::ScenarioResult, Failed> {
    let mut cfg = RunConfig::new(TargetSpec::Url {
        url: url.into(),
        token: None,
    });
    cfg.profile = profile.into();
    cfg.selection.dir = dir;
    cfg.replay_prefix = Some(support::replay_prefix("nchan", seed));
    support::play(cfg, id, seed).await
}

fn main() {
    let mut args = Arguments::from_args();
    // Four at once: the trials mostly wait on nchan's streams and their deadlines.
    // Measured on two cores: two at a time kept the machine 24 % busy (nginx included)
    // for 62 s; four, 37 % for 35 s.
    support::default_test_threads(&mut args, 4);
    let seed = support::seed("nchan", args.list);
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let available = installed();
    if !available && in_ci {
        panic!("CI=true but nginx + nchan are not installed: run targets/nchan/install.sh");
    }
    let nchan = if available && !args.list {
        match Nchan::start() {
            Ok(n) => Some(Arc::new(n)),
            Err(e) => panic!("{e}"),
        }
    } else {
        None
    };
    let url = nchan.as_ref().map(|n| n.url.clone()).unwrap_or_default();
    let mut trials = Vec::new();
    for id in APPLICABLE {
        let url = url.clone();
        trials.push(
            Trial::test(format!("nchan/{id}"), move || {
                let r = support::block_on(run(&url, "nchan", None, id, seed))??;
                match r.verdict {
                    Verdict::Pass => Ok(()),
                    v => Err(format!(
                        "{id} on nchan: {v:?} (seed {seed}); MUST findings:\n{}",
                        r.findings
                            .iter()
                            .filter(|f| f.level == Level::Must)
                            .take(10)
                            .map(|f| format!("  {f}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    )
                    .into()),
                }
            })
            .with_ignored_flag(!available),
        );
    }
    for (id, cap) in SKIPPED {
        let url = url.clone();
        trials.push(
            Trial::test(format!("nchan-skips/{id}"), move || {
                let r = support::block_on(run(&url, "nchan", None, id, seed))??;
                let want = format!("profile nchan does not claim capability {cap}");
                match r.verdict {
                    Verdict::Skipped { reason } if reason == want => Ok(()),
                    v => Err(format!("{id}: expected skipped ({want}), got {v:?}").into()),
                }
            })
            .with_ignored_flag(!available),
        );
    }
    trials.extend(browser_trials(&url, seed, available));
    {
        let (id, url) = ("CT-10/cut-at-random-bytes", url.clone());
        trials.push(
            Trial::test("nchan-cleans-up/channels-deleted", move || {
                // The profile's `[channels] delete`: every channel the scenario made is
                // deleted when it ends, and the scenario's facts say so.
                let r = support::block_on(run(&url, "nchan", None, id, seed))??;
                let fact = r.facts.get("channels_deleted").cloned().unwrap_or_default();
                let deleted = fact["deleted"].as_u64().unwrap_or(0);
                let failed = fact["failed"].as_array().map_or(1, Vec::len);
                if deleted == 0 || failed != 0 {
                    return Err(format!("expected every channel deleted, got {fact}").into());
                }
                Ok(())
            })
            .with_ignored_flag(!available),
        );
    }
    {
        let (id, url) = ("CT-07/reconnect-with-last-event-id", url.clone());
        trials.push(
            Trial::test("nchan-warns/retry-first-only-when-claimed", move || {
                // nchan never sends retry: (BEHAVIOUR.md §1). Its profile does not claim
                // retry-first, so nothing is judged; a profile that claims it is warned
                // (a SHOULD: the run still passes).
                let r = support::block_on(run(&url, "nchan", None, id, seed))??;
                let judged = |r: &harness_model::ScenarioResult| {
                    r.findings
                        .iter()
                        .filter(|f| f.contract.0 == "lifecycle.retry-first")
                        .map(|f| f.message())
                        .collect::<Vec<_>>()
                };
                if r.verdict != Verdict::Pass || !judged(&r).is_empty() {
                    return Err(format!(
                        "unclaimed: expected a pass without lifecycle.retry-first, got {:?}: {:?}",
                        r.verdict,
                        judged(&r)
                    )
                    .into());
                }
                let dir = tempfile::tempdir()?;
                let claimed = dir.path().join("nchan-claims-retry.toml");
                let text = std::fs::read_to_string(repo().join("contracts/profiles/nchan.toml"))?;
                let text = text.replacen("\"heartbeat\"]", "\"heartbeat\", \"retry-first\"]", 1);
                std::fs::write(&claimed, text)?;
                let profile = claimed.display().to_string();
                let r = support::block_on(run(&url, &profile, None, id, seed))??;
                let warned = r
                    .findings
                    .iter()
                    .any(|f| f.contract.0 == "lifecycle.retry-first" && f.level == Level::Should);
                if r.verdict == Verdict::Pass && warned {
                    Ok(())
                } else {
                    Err(format!(
                        "claimed: expected a pass with a SHOULD lifecycle.retry-first warning, got {:?}: {:?}",
                        r.verdict,
                        judged(&r)
                    )
                    .into())
                }
            })
            .with_ignored_flag(!available),
        );
    }
    {
        let (id, url) = ("CONTENT/bare-carriage-return", url.clone());
        trials.push(
            Trial::test("nchan-breaks/bare-carriage-return", move || {
                // nchan splits a body into data lines at LF only (BEHAVIOUR.md §3): a bare
                // CR goes out raw, ends the line there, and what follows it is lost.
                let r = support::block_on(run(&url, "nchan", None, id, seed))??;
                let lost = r
                    .findings
                    .iter()
                    .find(|f| f.contract.0 == "delivery.content-intact" && f.level == Level::Must);
                match (&r.verdict, lost) {
                    (Verdict::Fail, Some(f)) => {
                        eprintln!("nchan breaks delivery.content-intact on a bare CR: {f}");
                        Ok(())
                    }
                    _ => Err(format!(
                        "expected a delivery.content-intact finding, got {:?}: {:?}",
                        r.verdict,
                        r.findings.iter().map(|f| f.message()).collect::<Vec<_>>()
                    )
                    .into()),
                }
            })
            .with_ignored_flag(!available),
        );
    }
    trials.extend(resume_breaks(&url, seed, available));
    let eviction = scenario::Scenario::parse(
        include_str!("../../targets/nchan/scenarios/resume-after-buffer-eviction.toml"),
        "targets/nchan/scenarios/resume-after-buffer-eviction.toml",
    )
    .expect("eviction scenario parses")
    .id();
    let small = repo().join("targets/nchan/nchan-small-buffer.toml");
    let scenarios = repo().join("targets/nchan/scenarios");
    trials.push(
        Trial::test("nchan-breaks/resume-after-buffer-eviction", move || {
            let profile = small.display().to_string();
            let r = support::block_on(run(&url, &profile, Some(scenarios), &eviction, seed))??;
            let gap = r
                .findings
                .iter()
                .find(|f| f.contract.0 == "resume.no-gap" && f.level == Level::Must);
            match (&r.verdict, gap) {
                (Verdict::Fail, Some(f)) if f.evidence.client.as_ref().is_some_and(|c| c.0 == "away#0") => {
                    eprintln!("nchan breaks resume.no-gap as documented: {f}");
                    Ok(())
                }
                _ => Err(format!(
                    "expected a resume.no-gap finding for client away#0 (BEHAVIOUR.md §9), got {:?}: {:?}",
                    r.verdict,
                    r.findings.iter().map(|f| f.message()).collect::<Vec<_>>()
                )
                .into()),
            }
        })
        .with_ignored_flag(!available),
    );
    let conclusion = libtest_mimic::run(&args, trials);
    drop(nchan);
    conclusion.exit();
}
