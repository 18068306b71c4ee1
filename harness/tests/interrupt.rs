//! Ctrl-C during `sse-harness run`, as a user meets it: the built binary runs against
//! a reference server it starts itself with `--server-cmd` (in a process group of its
//! own, beside a long-running helper), the test sends SIGINT once the run is provably
//! under way, and checks the exit status (130), the partial report (interrupted, the
//! scenario in progress interrupted and the rest not run) and that the whole
//! `--server-cmd` process group is gone.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use wait_timeout::ChildExt;

/// Long enough for any reaction: the test interrupts long before it ends.
const LONG: &str = r#"group = "T"
name = "a-long-idle-stream"
title = "An idle events stream watched for 40 heartbeats (about 20 s)"
families = ["heartbeat", "lifecycle", "framing"]
requires = ["heartbeat"]
deadline_s = 60

[probe]
kind = "heartbeat-idle"
heartbeats = 40
stream = "events"
"#;

/// Runs after the long one (ids sort), so an interrupted run never reaches it.
const LATER: &str = r#"group = "T"
name = "b-later"
title = "An idle events stream watched for 2 heartbeats"
families = ["heartbeat", "lifecycle", "framing"]
requires = ["heartbeat"]
deadline_s = 30

[probe]
kind = "heartbeat-idle"
heartbeats = 2
stream = "events"
"#;

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

/// Lines of a child's stdout as they come.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded) for a line containing `needle`.
fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str, bound: Duration) -> String {
    let until = Instant::now() + bound;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(_) => {}
            Err(e) => panic!("no line with {needle:?} within {bound:?}: {e}"),
        }
    }
}

/// The live (not zombie) processes of process group `pgid`, from /proc.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp …; comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[0] != "Z" && f[2].parse::<i32>() == Ok(pgid) {
            out.push(pid);
        }
    }
    out
}

/// Waits (bounded) until process group `pgid` has no live process.
fn assert_group_gone(pgid: i32, bound: Duration) {
    let until = Instant::now() + bound;
    loop {
        let left = group_members(pgid);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < until,
            "process group {pgid} still has {left:?} after {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) for a non-empty file and returns its text.
fn wait_for_file(p: &Path, bound: Duration) -> String {
    let until = Instant::now() + bound;
    loop {
        if let Ok(s) = std::fs::read_to_string(p)
            && s.ends_with('\n')
        {
            return s;
        }
        assert!(
            Instant::now() < until,
            "{} not written within {bound:?}",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_stops_the_run_with_a_partial_report_exit_130_and_no_server_left() {
    let tmp = tempfile::tempdir().unwrap();
    let scenarios = tmp.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    std::fs::write(scenarios.join("long.toml"), LONG).unwrap();
    std::fs::write(scenarios.join("later.toml"), LATER).unwrap();
    let report = tmp.path().join("report");
    let pidfile = tmp.path().join("server.pid");
    let bin = Path::new(env!("CARGO_BIN_EXE_sse-harness"));
    let server = sse_harness::embedded::ReferenceProcess::plan(bin, &Default::default()).unwrap();
    // `$$` is the shell, which `exec`s the server: the group's leader and its id.
    let server_cmd = format!(
        "echo $$ > '{}'; sleep 300 & {}",
        pidfile.display(),
        server.command
    );
    let mut child = command()
        .args(["run", "--seed", "3", "--message-format", "json"])
        .args(["--target", &server.url, "--token", &server.token])
        .args(["--server-cmd", &server_cmd])
        .arg("--scenarios-dir")
        .arg(&scenarios)
        .arg("--report-dir")
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    wait_for_line(&rx, "\"scenario_started\"", Duration::from_secs(60));
    let pgid: i32 = wait_for_file(&pidfile, Duration::from_secs(10))
        .trim()
        .parse()
        .unwrap();
    assert!(
        group_members(pgid).len() >= 2,
        "the server and its helper run"
    );

    let sent = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = child
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap_or_else(|| {
            let _ = child.kill();
            panic!("sse-harness did not exit within 10 s of SIGINT")
        });
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(130), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?} to stop");
    assert_group_gone(pgid, Duration::from_secs(5));

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["interrupted"], true, "{summary:#}");
    assert_eq!(summary["exit_code"], 130);
    assert_eq!(summary["outcome"]["outcome"], "interrupted");
    assert_eq!(summary["outcome"]["interrupted"], "SIGINT");
    let verdicts: Vec<(&str, &str)> = summary["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("T/a-long-idle-stream", "interrupted"),
            ("T/b-later", "not-run")
        ]
    );
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(
        md.contains("INTERRUPTED") && md.contains("Interrupted by SIGINT"),
        "{md}"
    );
    let junit = std::fs::read_to_string(report.join("junit.xml")).unwrap();
    assert!(junit.contains("run/interrupted"), "{junit}");
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("Interrupted by SIGINT"));
    let finished = wait_for_line(&rx, "\"run_finished\"", Duration::from_secs(1));
    assert!(finished.contains("\"exit_code\":130"), "{finished}");
}

#[test]
fn ctrl_c_while_the_server_cmd_starts_exits_130_and_kills_its_group() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("server.pid");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    // Never listens: the run waits in its setup until the signal comes.
    let server_cmd = format!(
        "echo $$ > '{}'; sleep 300 & exec sleep 301",
        pidfile.display()
    );
    let mut child = command()
        .args([
            "run",
            "--seed",
            "3",
            "--scenario",
            "HEARTBEAT/idle-events-stream",
        ])
        .args(["--target", &format!("http://127.0.0.1:{port}")])
        .args(["--server-cmd", &server_cmd])
        .arg("--report-dir")
        .arg(tmp.path().join("report"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pgid: i32 = wait_for_file(&pidfile, Duration::from_secs(30))
        .trim()
        .parse()
        .unwrap();
    let sent = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = child
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap_or_else(|| {
            let _ = child.kill();
            panic!("sse-harness did not exit within 10 s of SIGINT")
        });
    assert_eq!(status.code(), Some(130), "exit status {status:?}");
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert_group_gone(pgid, Duration::from_secs(5));
}
