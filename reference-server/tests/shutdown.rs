//! Shutdown under hostile clients, and the integrity route's guards.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{DEADLINE, TOKEN, TestServer};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Sends a publish whose body never finishes, and returns once the server is reading
/// that body: the request asks `Expect: 100-continue`, and hyper answers `100 Continue`
/// only when the handler first polls the body. Before that, a stop could find the
/// connection idle (accepted, headers unread) and close it at once.
async fn stuck_publish(url: &str, job: &str) -> TcpStream {
    let mut sock = TcpStream::connect(addr(url)).await.expect("connect");
    let head = format!(
        "POST /v1/jobs/{job}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.expect("request");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(DEADLINE, sock.read(&mut buf))
            .await
            .expect("100 Continue in time")
            .expect("read");
        assert!(n > 0, "closed before 100 Continue");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    sock.write_all(b"{\"event_")
        .await
        .expect("part of the body");
    sock
}

/// Reads until the server closes the connection; panics after the deadline.
async fn wait_closed(sock: &mut TcpStream) {
    let end = Instant::now() + DEADLINE;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(end, sock.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_request_that_never_finishes_is_cut_after_the_shutdown_grace() {
    let s = TestServer::start_with(|c| {
        c.limits.body_read_timeout = Duration::from_secs(3600);
        c.limits.shutdown_grace = Duration::from_millis(300);
    })
    .await;
    let job = s.open_job().await;
    let mut sock = stuck_publish(&s.url, &job).await;
    s.stop().await;
    wait_closed(&mut sock).await;
}

/// The binary with `args`, its stdout's first line (`listening on URL`) parsed.
async fn spawn_binary(args: &[&str], dir: &std::path::Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_reference-server"))
        .arg("serve")
        .arg("--data")
        .arg(dir)
        .args(args)
        .env("SPINE_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("listening line in time")
        .expect("read")
        .expect("a line");
    let url = line
        .strip_prefix("listening on ")
        .expect("listening on")
        .to_owned();
    (child, url)
}

fn signal(child: &tokio::process::Child, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, sig).expect("kill");
}

#[tokio::test]
async fn a_second_sigterm_exits_at_once_and_the_token_comes_from_the_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut child, url) = spawn_binary(
        &[
            "--shutdown-grace-ms",
            "3600000",
            "--body-timeout-ms",
            "3600000",
        ],
        dir.path(),
    )
    .await;
    let http = common::http_client();
    // SPINE_TOKEN is the token.
    let r = http
        .post(format!("{url}/v1/jobs"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"steps": 1, "interval_ms": 3_600_000}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201);
    let job = r.json::<Value>().await.expect("json")["job_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let _stuck = stuck_publish(&url, &job).await;
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    // The stop has begun once the listener is closed.
    let end = Instant::now() + DEADLINE;
    while TcpStream::connect(addr(&url)).await.is_ok() {
        assert!(Instant::now() < end, "the listener never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("exited at once")
        .expect("status");
    assert!(!status.success(), "{status:?}");
}

#[tokio::test]
async fn integrity_reports_run_one_at_a_time() {
    let s = TestServer::start().await;
    let job = s
        .create_job(
            serde_json::json!({"steps": 0, "interval_ms": 0, "artifact_bytes": 64 * 1024 * 1024}),
        )
        .await;
    s.wait_job_done(&job).await;
    let mut busy = 0;
    for _ in 0..10 {
        let reqs = (0..4).map(|_| {
            s.get("/v1/diagnostics/integrity?full_integrity=true")
                .send()
        });
        for r in futures_util::future::join_all(reqs).await {
            let r = r.expect("integrity");
            match r.status().as_u16() {
                200 => {}
                429 => {
                    let v: Value = r.json().await.expect("json");
                    assert_eq!(v["error"], "busy");
                    busy += 1;
                }
                other => panic!("unexpected {other}"),
            }
        }
        if busy > 0 {
            break;
        }
    }
    assert!(busy > 0, "four concurrent reports all ran");
    s.stop().await;
}

#[tokio::test]
async fn a_failed_integrity_report_names_no_path() {
    let s = TestServer::start().await;
    let receipts = s.dir.path().join("receipts");
    std::fs::remove_dir_all(&receipts).expect("rm");
    std::fs::write(&receipts, b"not a folder").expect("file");
    let r = s
        .get("/v1/diagnostics/integrity")
        .send()
        .await
        .expect("integrity");
    assert_eq!(r.status(), 500);
    let body = r.text().await.expect("body");
    let dir = s.dir.path().to_string_lossy().into_owned();
    assert!(!body.contains(&dir), "{body}");
    assert!(!body.contains("/receipts"), "{body}");
    s.stop().await;
}
