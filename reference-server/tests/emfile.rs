//! Out of file descriptors: at `accept` the accept loop backs off instead of spinning,
//! and serves again once descriptors are free; during a job's file writes the write is
//! retried and the job completes once descriptors are free. Its own test binary: it
//! lowers the process's descriptor limit, so its tests take turns (`ONE_AT_A_TIME`).

mod common;

use std::time::Duration;

use common::{DEADLINE, TestServer};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The descriptor limit is the process's: one test at a time lowers it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").expect("fds").count() as u64
}

#[tokio::test]
async fn out_of_descriptors_at_accept_backs_off_and_recovers() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = TestServer::start().await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, open_fds() + 40, hard).expect("lower");
    // Connect until this process is out of descriptors: the server's accepts fail
    // from then on, with connections waiting in the backlog.
    let mut clients = Vec::new();
    let end = Instant::now() + DEADLINE;
    loop {
        match TcpStream::connect(&addr).await {
            Ok(c) => clients.push(c),
            Err(_) => break,
        }
        assert!(Instant::now() < end, "never ran out of descriptors");
    }
    assert!(!clients.is_empty());
    // Let the accept loop meet EMFILE for a while (a spinning loop would fail
    // hundreds of thousands of times in this second).
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(clients);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore");
    let end = Instant::now() + DEADLINE;
    let errors = loop {
        if let Ok(r) = s.http.get(s.u("/metrics")).send().await
            && r.status() == 200
        {
            break s.metric("spine_accept_errors_total").await;
        }
        assert!(Instant::now() < end, "the server never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(errors >= 1, "accept never failed");
    // 1 s at one failure per 100 ms back-off, with a wide margin for slow machines
    // (which make fewer failures, not more).
    assert!(errors < 1_000, "{errors} accept failures: the loop spins");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_during_a_job_file_write_is_retried_and_the_job_completes() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = TestServer::start().await;
    let job = s
        .create_job(serde_json::json!({"steps": 3, "interval_ms": 100, "artifact_bytes": 4096}))
        .await;
    let mut stream = s.open(&format!("/v1/jobs/{job}/events"), &[]).await;
    // Out of descriptors before the job writes its artifact (after its last step).
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, open_fds() + 20, hard).expect("lower");
    let mut held = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        held.push(f);
        assert!(held.len() < 1_000, "never ran out of descriptors");
    }
    // The artifact (or receipt) write fails and is retried; the server says why.
    let end = Instant::now() + DEADLINE;
    let reason = loop {
        if let Some(reason) = s.server.health() {
            break reason;
        }
        assert!(Instant::now() < end, "no write ever failed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    drop(held);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore");
    assert!(reason.contains("failing"), "{reason}");
    let frames = stream.read_to_end().await;
    let kinds: Vec<Value> = frames
        .iter()
        .filter(|f| f.is("task_event"))
        .map(|f| f.json()["event_type"].clone())
        .collect();
    assert!(
        kinds.contains(&Value::from("artifact_written")),
        "{kinds:?}"
    );
    let last = frames.last().expect("frames");
    assert_eq!(last.json()["reason"], "task_completed", "{kinds:?}");
    assert_eq!(s.wait_job_done(&job).await["state"], "completed");
    assert_eq!(s.server.health(), None);
    s.stop().await;
}
