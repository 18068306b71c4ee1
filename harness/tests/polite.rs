//! Running against a shared deployment, as a user meets it through the built binary:
//! polite limits (`--scale`, `--max-rate`, `--max-clients`) that shrink the workload
//! and are stated in the report, and authentication by a query token and extra headers
//! whose values never reach a report file.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn polite_limits_shrink_the_workload_and_the_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let o = command()
        .args(["run", "--seed", "11", "--scale", "0.2", "--max-rate", "300"])
        .args(["--max-clients", "1"])
        .args(["--scenario", "CT-12/ten-clients-at-once"])
        .args(["--scenario", "CT-12/five-reconnect-while-five-stay"])
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    // One scenario the limits leave too little: inconclusive, so the run fails (1).
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(dir.path());
    assert_eq!(
        s["run"]["limits"],
        serde_json::json!({ "scale": 0.2, "max_rate": 300, "max_clients": 1 })
    );
    let by_id = |id: &str| {
        s["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap()
            .clone()
    };
    let small = by_id("CT-12/ten-clients-at-once");
    assert_eq!(small["verdict"], "pass", "{small:#}");
    assert_eq!(small["stats"]["clients"], 1);
    assert_eq!(small["stats"]["events_published"], 300);
    let tight = by_id("CT-12/five-reconnect-while-five-stay");
    assert_eq!(tight["verdict"], "inconclusive", "{tight:#}");
    assert_eq!(tight["shortfalls"][0]["kind"], "limits_too_tight");
    assert!(
        s["run"]["replay_command"]
            .as_str()
            .unwrap()
            .contains("--scale 0.2 --max-rate 300 --max-clients 1")
    );
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.contains(
            "Polite limits: scale 0.2, at most 300 events/s, at most 1 clients per scenario."
        ),
        "{md}"
    );
    assert!(stderr(&o).contains("limits: scale 0.2"), "{}", stderr(&o));
}

/// A reference server child process with `token`, in its own process group, killed
/// (the whole group) when dropped.
struct Server {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Server {
    fn start(token: &str) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut child = command()
            .args(["serve-reference", "--addr", "127.0.0.1:0", "--token", token])
            .arg("--data")
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the reference server says where it listens within 30 s");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server {
            child,
            url,
            _data: data,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn a_query_token_and_extra_headers_work_and_never_reach_the_report() {
    let token = "tok-5c1e7a9d4b2f";
    let secret_header = "hdr-8e3f0b6a71c2";
    let server = Server::start(token);
    let dir = tempfile::tempdir().unwrap();
    // The spine profile with streams authenticated by `?access_token=`.
    let spine = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/profiles/spine.toml"),
    )
    .unwrap();
    let profile = dir.path().join("spine-query.toml");
    std::fs::write(
        &profile,
        spine.replace(
            "query = \"access_token\"\n",
            "query = \"access_token\"\nstreams = \"query\"\n",
        ),
    )
    .unwrap();
    let report = dir.path().join("report");
    let o = command()
        .args(["run", "--seed", "4", "--target", &server.url])
        .arg("--profile")
        .arg(&profile)
        .args(["--scenario", "CT-09/connect-read-disconnect"])
        .args(["--header", &format!("X-Api-Key: {secret_header}")])
        .arg("--keep-recordings")
        .arg("--report-dir")
        .arg(&report)
        .env("SSE_HARNESS_TOKEN", token)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(summary(&report)["scenarios"][0]["verdict"], "pass");
    for secret in [token, secret_header] {
        assert_eq!(files_containing(&report, secret), Vec::<String>::new());
        assert!(!stderr(&o).contains(secret), "{secret} on stderr");
        assert!(!String::from_utf8_lossy(&o.stdout).contains(secret));
    }
    let replay = summary(&report)["run"]["replay_command"].clone();
    assert!(
        replay
            .as_str()
            .unwrap()
            .contains("--header 'X-Api-Key: ***'"),
        "{replay}"
    );
}
