//! Restarts on the same data folder: the seq line continues, a running job carries on
//! from its last persisted step, stale temp files are removed.

mod common;

use std::time::Duration;

use common::{TestServer, seqs};
use serde_json::{Value, json};

#[tokio::test]
async fn a_restart_continues_the_seq_line() {
    let s = TestServer::start().await;
    let job = s.open_job().await;
    let before = s.publish(&job, 10, "c").await;
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let h: Value = s
        .http
        .get(s.u("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["head_seq"], *before.last().unwrap());
    let after = s.publish(&job, 3, "c").await;
    assert_eq!(after[0], before.last().unwrap() + 1);
    let mut r = s.open(&format!("/v1/events?job_id={job}"), &[]).await;
    let frames = r
        .until(|f| f.id.as_deref() == Some(&after[2].to_string()))
        .await;
    let got = seqs(&frames);
    assert_eq!(&got[1..], [before, after].concat().as_slice());
    s.stop().await;
}

#[tokio::test]
async fn a_running_job_carries_on_from_its_last_step() {
    let s = TestServer::start().await;
    let job = s.create_job(json!({"steps": 6, "interval_ms": 150})).await;
    let mut r = s.open(&format!("/v1/jobs/{job}/events"), &[]).await;
    r.until(|f| f.is("task_event") && f.json()["payload"]["step"] == 2)
        .await;
    drop(r);
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let mut r = s.open(&format!("/v1/jobs/{job}/events"), &[]).await;
    let frames = r.read_to_end().await;
    let steps: Vec<u64> = frames
        .iter()
        .filter(|f| f.is("task_event") && f.json()["event_type"] == "progress_update")
        .map(|f| f.json()["payload"]["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6]);
    assert_eq!(frames.last().unwrap().json()["reason"], "task_completed");
    let all = seqs(&frames);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    s.stop().await;
}

#[tokio::test]
async fn stale_temp_files_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let receipts = dir.path().join("receipts");
    let art = dir.path().join("artifacts").join("j1");
    std::fs::create_dir_all(&receipts).unwrap();
    std::fs::create_dir_all(&art).unwrap();
    std::fs::write(receipts.join("j1.json.abc.tmp"), b"partial").unwrap();
    std::fs::write(receipts.join("keep.json"), b"{}").unwrap();
    std::fs::write(art.join("output.bin.abc.tmp"), b"partial").unwrap();
    let s = TestServer::start_in(dir, |_| {}).await;
    assert!(!receipts.join("j1.json.abc.tmp").exists());
    assert!(!art.join("output.bin.abc.tmp").exists());
    assert!(receipts.join("keep.json").exists());
    s.stop().await;
}

#[tokio::test]
async fn the_binary_prints_its_url_and_generated_token_and_stops_on_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_reference-server"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--heartbeat-ms",
            "300",
            "--data",
        ])
        .arg(dir.path())
        .env_remove("SPINE_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Duration::from_secs(20);
    let first = tokio::time::timeout(deadline, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = first
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"));
    let second = tokio::time::timeout(deadline, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let token = second
        .strip_prefix("token: ")
        .expect("token line")
        .to_owned();
    let http = common::http_client();
    let resp = http
        .get(format!("{url}/v1/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut reader = common::SseReader::new(resp);
    reader.until(|f| f.is("connection_open")).await;
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let frames = reader.read_to_end().await;
    assert_eq!(frames.last().unwrap().json()["reason"], "server_shutdown");
    let status = tokio::time::timeout(deadline, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert!(dir.path().join("spine.db").exists());
}
