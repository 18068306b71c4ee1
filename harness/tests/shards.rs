//! The proof that a split run's merge is as exact as one process, over real separate
//! client addresses: network namespaces this test creates (and removes on drop, even
//! on a panic) and nothing in the root namespace's networking.
//!
//! Topology: a hub namespace holds a bridge; a target namespace (the reference server,
//! `sse-harness serve-reference`, on `10.231.X.1`), four shard namespaces
//! (`10.231.X.10`–`13`) and one for the single-process run (`10.231.X.20`) each hang on
//! it by a veth pair created from inside the hub. Then:
//!
//! 1. against a correct server, four `run --shard I/4` processes (one per namespace,
//!    one shared barrier directory) and `merge` give the same verdict per scenario as
//!    the single-process run of the same seed, and the merged histograms of the
//!    metrics shards measure alone are exactly the sum of the shards' (counts added);
//! 2. against a server with fault `fork-by-peer` (a different event under one seq for
//!    clients at an address other than the first), the merged verdict fails on
//!    `delivery.consistent`, while no shard's recording judged alone and no
//!    single-process run shows that failure.
//!
//! Needs root and `ip` (iproute2): without them it is skipped with the reason printed,
//! except under `CI=true`, where that is a failure.

#[path = "support/netns.rs"]
mod netns;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness_model::{Contracts, Metric};
use netns::{BIN, Killed, Netns, skip_or_fail, unable};
use sse_harness::shard_record::{EntryPart, ShardRecord, shard_local};
const TOKEN: &str = "shards-test-token";
const SEED: u64 = 20_250_501;
const SHARDS: u32 = 4;
/// The scenarios: split workloads (a crowd, four publishers over four jobs with cuts,
/// a backlog replayed with cuts) and a probe, which shard 0 plays whole.
const SCENARIOS: &[&str] = &[
    "CT-12/ten-clients-at-once",
    "CT-12/stress-sequencing",
    "CT-09/connect-read-disconnect",
    "HEARTBEAT/idle-events-stream",
];
/// The longest one harness process may take.
const PROCESS_BOUND: Duration = Duration::from_secs(120);

/// The reference server in the target namespace, with `faults`, once it listens.
fn serve(net: &Netns, data: &Path, faults: &[&str]) -> (Killed, String) {
    let addr = format!("{}:8080", net.ip(1));
    netns::serve(net, "tgt", &addr, TOKEN, data, faults)
}

/// `sse-harness run` in namespace `member` against `url`, with `extra` flags; its
/// report goes to `report`. Returns the child (the caller waits for it).
fn start_run(net: &Netns, member: &str, url: &str, report: &Path, extra: &[String]) -> Killed {
    let mut c = net.command(member, BIN);
    c.args(["run", "--target", url, "--token", TOKEN, "--color", "never"])
        .args(["--seed", &SEED.to_string(), "--report-dir"])
        .arg(report)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Killed(c.spawn().expect("sse-harness run starts"))
}

/// Waits for a process within [`PROCESS_BOUND`]; its exit code and stderr.
fn finish(k: Killed, what: &str) -> (i32, String) {
    netns::finish(k, what, PROCESS_BOUND)
}

fn scenario_flags(scenarios: &[&str]) -> Vec<String> {
    scenarios
        .iter()
        .flat_map(|s| ["--scenario".to_owned(), (*s).to_owned()])
        .collect()
}

/// Plays the four shards against `url`, each in its namespace; their report folders.
fn shards(net: &Netns, url: &str, dir: &Path, scenarios: &[&str]) -> Vec<PathBuf> {
    let barrier = dir.join("barrier");
    let children: Vec<(PathBuf, Killed)> = (0..SHARDS)
        .map(|i| {
            let report = dir.join(format!("shard-{i}"));
            let mut extra = scenario_flags(scenarios);
            extra.extend([
                "--shard".to_owned(),
                format!("{i}/{SHARDS}"),
                "--barrier-dir".to_owned(),
                barrier.display().to_string(),
                "--barrier-timeout".to_owned(),
                "60".to_owned(),
            ]);
            let child = start_run(net, &format!("s{i}"), url, &report, &extra);
            (report, child)
        })
        .collect();
    children
        .into_iter()
        .enumerate()
        .map(|(i, (report, child))| {
            let (code, err) = finish(child, &format!("shard {i}"));
            assert_eq!(code, 0, "shard {i} exits 0 (recorded for merge): {err}");
            report
        })
        .collect()
}

/// `sse-harness merge` of `shards` into `out`: its exit code.
fn merge_cli(shards: &[PathBuf], out: &Path) -> i32 {
    let mut c = Command::new(BIN);
    c.arg("merge").args(shards).arg("--report-dir").arg(out);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let (code, err) = finish(Killed(c.spawn().expect("merge starts")), "merge");
    assert!(!err.contains("could not run"), "merge could not run: {err}");
    code
}

/// Each scenario's verdict status in a report's summary.json.
fn verdicts(report: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(report.join("summary.json")).expect("summary.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("summary.json parses");
    let scenarios = v["scenarios"].as_array().expect("scenarios").clone();
    scenarios
        .iter()
        .map(|s| {
            let id = s["id"].as_str().unwrap_or_default().to_owned();
            let status = s["verdict"].as_str().unwrap_or_default().to_owned();
            (id, status)
        })
        .collect()
}

#[test]
fn a_merge_of_four_shards_judges_as_one_process_and_sees_what_no_shard_sees() {
    if let Some(reason) = unable(&[]) {
        return skip_or_fail("shards", &reason);
    }
    let members: Vec<(String, u8)> = [("tgt".to_owned(), 1), ("single".to_owned(), 20)]
        .into_iter()
        .chain((0..SHARDS).map(|i| (format!("s{i}"), 10 + i as u8)))
        .collect();
    let members: Vec<(&str, u8)> = members.iter().map(|(m, h)| (m.as_str(), *h)).collect();
    let net = match Netns::create(&members) {
        Ok(net) => net,
        Err(e) => return skip_or_fail("shards", &e),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    correct_server(&net, dir.path());
    forking_server(&net, dir.path());
}

/// Part 1: a correct server; merged and single-process verdicts agree, histograms add.
fn correct_server(net: &Netns, dir: &Path) {
    let dir = dir.join("clean");
    let (_server, url) = serve(net, &dir.join("data"), &[]);
    let shard_dirs = shards(net, &url, &dir, SCENARIOS);
    let merged = dir.join("merged");
    let merged_code = merge_cli(&shard_dirs, &merged);
    let single = dir.join("single");
    let child = start_run(net, "single", &url, &single, &scenario_flags(SCENARIOS));
    let (single_code, err) = finish(child, "the single-process run");
    let (m, s) = (verdicts(&merged), verdicts(&single));
    assert_eq!(m.len(), SCENARIOS.len(), "{m:?}");
    assert_eq!(m, s, "merged vs single-process verdicts; single: {err}");
    assert_eq!(merged_code, single_code, "the merge exits as the run does");
    assert_eq!(merged_code, 0, "a correct server passes: {m:?}");
    // The histograms the shards measure alone add up exactly.
    let records: Vec<ShardRecord> = shard_dirs
        .iter()
        .map(|d| ShardRecord::read(d).expect("shard.json.gz"))
        .collect();
    let contracts = Contracts::builtin();
    let loaded = sse_harness::merge::load(&shard_dirs).expect("the records are one run");
    let merged_run = sse_harness::merge::merge(loaded, &contracts).expect("merge");
    let mut compared = 0;
    for (k, r) in merged_run.results.iter().enumerate() {
        for (metric, h) in r.histograms.iter().filter(|(m, _)| shard_local(**m)) {
            let sum: u64 = records.iter().map(|rec| local_len(rec, k, *metric)).sum();
            assert_eq!(h.len(), sum, "{} {}", r.info.id, metric.name());
            compared += 1;
        }
    }
    assert!(compared >= 3, "histograms compared: {compared}");
}

/// How many samples shard record `rec` holds of `metric` for its `k`-th scenario (a
/// scenario played whole: shard 0's, exactly as it measured them; the others' none).
fn local_len(rec: &ShardRecord, k: usize, metric: Metric) -> u64 {
    let histograms = match &rec.scenarios[k].part {
        EntryPart::Recorded { histograms, .. } => histograms,
        EntryPart::Final { result } => &result.histograms,
    };
    histograms.0.get(&metric).map_or(0, |h| h.len())
}

/// Part 2: `fork-by-peer`; the merge fails `delivery.consistent`, no shard alone and
/// no single process sees it.
fn forking_server(net: &Netns, dir: &Path) {
    let dir = dir.join("fork");
    let only = ["CT-12/ten-clients-at-once"];
    let consistent = "delivery.consistent";
    let (_server, url) = serve(net, &dir.join("data"), &["fork-by-peer"]);
    let shard_dirs = shards(net, &url, &dir, &only);
    let merged = dir.join("merged");
    assert_eq!(merge_cli(&shard_dirs, &merged), 1, "the merge fails");
    let summary = std::fs::read_to_string(merged.join("summary.json")).expect("summary");
    assert!(summary.contains(consistent), "merged summary: {summary}");
    // Each shard's recording judged alone: its clients share one address.
    let contracts = Contracts::builtin();
    let profile = sse_harness::profile::Profile::load("spine").expect("spine");
    for d in &shard_dirs {
        let rec = ShardRecord::read(d).expect("shard.json.gz");
        let entry = &rec.scenarios[0];
        let EntryPart::Recorded { recording, .. } = &entry.part else {
            panic!("shard {} recorded its part", rec.shard);
        };
        let cfg = profile.check_config(entry.families.clone());
        let j = sse_harness::runner::judge(&contracts, &cfg, recording, &url);
        assert!(
            j.findings.iter().all(|f| f.contract.0 != consistent),
            "shard {} alone saw {consistent}",
            rec.shard
        );
    }
    // One process at one address does not see it either.
    let single = dir.join("single");
    let child = start_run(net, "single", &url, &single, &scenario_flags(&only));
    let (code, err) = finish(child, "the single-process run");
    assert_eq!(code, 0, "one address sees one version: {err}");
}
