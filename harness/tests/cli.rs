//! The `sse-harness` command line as a user and a CI gate meet it, run as a real
//! process: exit codes (0 pass, 1 contract failed, 2 could not run), the report
//! directory, and the expected-failures baseline that only tightens.

use std::path::Path;
use std::process::{Command, Output};

/// The binary with none of the caller's `SSE_HARNESS_*` variables (they are flags).
fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sse-harness"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SSE_HARNESS_") {
            c.env_remove(k);
        }
    }
    c
}

fn harness(args: &[&str]) -> Output {
    command().args(args).output().expect("sse-harness runs")
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
    let o = harness(&["run", "--start-at", "tomorrow", "--scenario", QUICK]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("RFC 3339"), "{}", stderr(&o));
    let o = harness(&["run", "--shard", "4/4", "--scenario", QUICK]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("I must be below N"), "{}", stderr(&o));
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
fn a_threshold_breach_alone_exits_3_and_shows_the_observed_value() {
    let dir = tempfile::tempdir().unwrap();
    let o = harness(&[
        "run",
        "--seed",
        "5",
        "--scenario",
        "CT-07/reconnect-with-last-event-id",
        "--threshold",
        "publish_to_deliver.p50 < 1us",
        "--message-format",
        "json",
        "--report-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("THRESHOLD FAIL"), "{err}");
    assert!(
        err.contains("✗ threshold publish_to_deliver.p50 < 0.001ms  (observed "),
        "{err}"
    );
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("gate.threshold"), "{md}");
    // --message-format json: one JSON object per run event on stdout, the last one the outcome.
    let out = String::from_utf8_lossy(&o.stdout);
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "run_started",
            "scenario_started",
            "scenario_finished",
            "run_gate",
            "run_finished"
        ]
    );
    assert_eq!(events[4]["exit_code"], 3);
    assert_eq!(events[4]["outcome"]["outcome"], "threshold_fail");
    assert_eq!(events[3]["thresholds"][0]["held"], false);
}

#[test]
fn flags_come_from_the_environment_and_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sse-harness.toml");
    std::fs::write(
        &cfg,
        "[run]\nscenario = [\"CT-07/reconnect-with-last-event-id\"]\nseed = 11\n",
    )
    .unwrap();
    let o = command()
        .args([
            "run",
            "--report-dir",
            dir.path().join("r").to_str().unwrap(),
        ])
        .env("SSE_HARNESS_CONFIG", &cfg)
        .env("SSE_HARNESS_THRESHOLD", "publish_to_deliver.p50 < 1us")
        .output()
        .unwrap();
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("seed: 11"),
        "the seed from the config file: {err}"
    );
    assert!(
        err.contains("1 passed"),
        "one scenario, from the config file: {err}"
    );
    assert!(
        err.contains("--threshold 'publish_to_deliver.p50 < 0.001ms' --scenario CT-07/reconnect-with-last-event-id"),
        "the replay command is complete: {err}"
    );
}

#[test]
fn list_json_is_filtered_and_says_what_is_missing() {
    let o = harness(&[
        "list",
        "--profile",
        "nchan",
        "--json",
        "--scenario",
        "LIFECYCLE/*",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r["id"].as_str().unwrap().starts_with("LIFECYCLE/"))
    );
    let task = rows
        .iter()
        .find(|r| r["id"] == "LIFECYCLE/task-completed")
        .unwrap();
    assert_eq!(task["runnable"], false);
    assert_eq!(task["missing_capabilities"][0], "task-stream");
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

#[test]
fn a_proxy_variable_that_applies_to_the_target_is_refused_before_any_connection() {
    // The target is never reached: the refusal comes before any name is resolved.
    let dir = tempfile::tempdir().unwrap();
    let o = command()
        .args([
            "run",
            "--target",
            "https://sse.example.invalid/api",
            "--scenario",
            QUICK,
            "--report-dir",
            dir.path().to_str().unwrap(),
        ])
        .env("HTTPS_PROXY", "http://proxy.example.invalid:3128")
        .env_remove("https_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("HTTPS_PROXY is set and would apply to sse.example.invalid")
            && err.contains("NO_PROXY"),
        "{err}"
    );
}

#[test]
fn a_source_addr_not_of_this_machine_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r");
    // TEST-NET-1 (RFC 5737): never an address of this machine.
    let o = harness(&[
        "run",
        "--scenario",
        QUICK,
        "--source-addr",
        "192.0.2.7",
        "--report-dir",
        report.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains("--source-addr 192.0.2.7"), "{err}");
    assert!(err.contains("not an address of this machine"), "{err}");
}

/// A relay on 127.0.0.1 in front of `upstream` (`ip:port`) that notes every peer
/// address it accepts: its port and the addresses seen.
fn peer_noting_relay(
    upstream: String,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<std::net::IpAddr>>>) {
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let noted = seen.clone();
    std::thread::spawn(move || {
        for down in listener.incoming() {
            let Ok(down) = down else { continue };
            noted.lock().unwrap().push(down.peer_addr().unwrap().ip());
            let Ok(up) = TcpStream::connect(&upstream) else {
                continue;
            };
            let pipe = |mut from: TcpStream, mut to: TcpStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Write);
                });
            };
            pipe(down.try_clone().unwrap(), up.try_clone().unwrap());
            pipe(up, down);
        }
    });
    (port, seen)
}

#[test]
fn streams_are_spread_over_the_source_addresses() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let token = "source-addr-token-0123456789";
    let mut server = command()
        .args(["serve-reference", "--token", token, "--data"])
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve-reference starts");
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let upstream = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let (port, seen) = peer_noting_relay(upstream);
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    std::fs::write(
        scenarios.join("spread.toml"),
        "group = \"SOURCE\"\nname = \"spread\"\ntitle = \"Three clients from two source addresses\"\n\
         families = [\"delivery\"]\nrequires = [\"publish\"]\ndeadline_s = 30\n\n\
         [traffic]\nevents = 5\nrate = 50\n\n[[clients]]\nname = \"three\"\ncount = 3\n",
    )
    .unwrap();
    let report = dir.path().join("r");
    let o = harness(&[
        "run",
        "--target",
        &format!("http://127.0.0.1:{port}"),
        "--token",
        token,
        "--scenarios-dir",
        scenarios.to_str().unwrap(),
        "--source-addr",
        "127.0.0.2",
        "--source-addr",
        "127.0.0.3",
        "--report-dir",
        report.to_str().unwrap(),
    ]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let seen = seen.lock().unwrap().clone();
    for src in ["127.0.0.2", "127.0.0.3"] {
        let ip: std::net::IpAddr = src.parse().unwrap();
        assert!(
            seen.contains(&ip),
            "the target saw a stream from {src}: {seen:?}"
        );
    }
    let summary = std::fs::read_to_string(report.join("summary.json")).unwrap();
    assert!(
        summary.contains("--source-addr 127.0.0.2 --source-addr 127.0.0.3"),
        "the replay command keeps them"
    );
}

#[test]
fn a_scenario_with_more_streams_than_descriptors_is_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    // Above fs.nr_open's largest value (2^20): no RLIMIT_NOFILE can hold it.
    std::fs::write(
        scenarios.join("huge.toml"),
        "group = \"SOURCE\"\nname = \"huge\"\ntitle = \"Two million clients\"\n\
         families = [\"delivery\"]\nrequires = [\"publish\"]\ndeadline_s = 30\n\n\
         [traffic]\nevents = 1\n\n[[clients]]\nname = \"crowd\"\ncount = 2000000\n",
    )
    .unwrap();
    let report = dir.path().join("r");
    let o = harness(&[
        "run",
        "--target",
        "http://127.0.0.1:9",
        "--scenarios-dir",
        scenarios.to_str().unwrap(),
        "--report-dir",
        report.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains("SOURCE/huge holds 2000000 streams"), "{err}");
    assert!(err.contains("RLIMIT_NOFILE allows"), "{err}");
    assert!(err.contains("ulimit -Hn"), "{err}");
    // Capped by polite mode, it fits: the run goes on to the (unreachable) target.
    let o = harness(&[
        "run",
        "--target",
        "http://127.0.0.1:9",
        "--max-clients",
        "10",
        "--scenarios-dir",
        scenarios.to_str().unwrap(),
        "--report-dir",
        report.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(!err.contains("RLIMIT_NOFILE"), "{err}");
}
