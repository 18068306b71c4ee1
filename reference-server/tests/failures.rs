//! Faults the server must survive: a full store, clients that vanish mid-request,
//! crash-safe and private files, and the quotas that keep memory and disk bounded.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use common::{DEADLINE, TestServer};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Reads a job's task stream to its end, which must be `connection_close task_failed`.
async fn read_to_task_failed(s: &TestServer, job: &str) -> Vec<common::Frame> {
    let mut r = s.open(&format!("/v1/jobs/{job}/events"), &[]).await;
    let frames = r.read_to_end().await;
    let last = frames.last().expect("frames");
    assert!(last.is("connection_close"), "{last:?}");
    assert_eq!(last.json()["reason"], "task_failed");
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_ends_the_job_with_task_failed_and_healthz_says_why() {
    // 64 pages of 4 KiB: the schema and a job fit, a batch of 64 KiB payloads never.
    let s = TestServer::start_with(|c| c.max_db_pages = Some(64)).await;
    let health_url = s.u("/healthz");
    let http = s.http.clone();
    let watcher = tokio::spawn(async move {
        let end = Instant::now() + DEADLINE;
        loop {
            let r = http.get(&health_url).send().await.expect("healthz");
            if r.status() == 503 {
                return r.json::<Value>().await.expect("json");
            }
            assert!(Instant::now() < end, "/healthz never said unhealthy");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let job = s
        .create_job(json!({"steps": 20, "interval_ms": 0, "payload_bytes": 65536}))
        .await;
    read_to_task_failed(&s, &job).await;
    let unhealthy = watcher.await.expect("watcher");
    assert_eq!(unhealthy["status"], "unhealthy");
    let reason = unhealthy["reason"].as_str().expect("reason");
    assert!(reason.contains("DiskFull"), "{reason}");
    assert!(!reason.contains('/'), "no path: {reason}");
    assert_eq!(s.wait_job_done(&job).await["state"], "failed");
    s.stop().await;
}

/// Waits until the server says it is unhealthy (read in-process), returns the reason.
async fn wait_unhealthy(s: &TestServer) -> String {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(reason) = s.server.health() {
            return reason;
        }
        assert!(Instant::now() < end, "the server never said unhealthy");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The event types of a task stream's events, in order.
fn kinds(frames: &[common::Frame]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f.is("task_event"))
        .map(|f| {
            f.json()["event_type"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn is_progress(f: &common::Frame) -> bool {
    f.is("task_event") && f.json()["event_type"] == "progress_update"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_artifacts_folder_ends_the_job_with_task_failed_and_healthz_says_why() {
    let s = TestServer::start().await;
    let frozen = common::ReadOnly::new(&s.dir.path().join("artifacts"));
    let job = s
        .create_job(json!({"steps": 2, "interval_ms": 0, "artifact_bytes": 1024}))
        .await;
    let frames = read_to_task_failed(&s, &job).await;
    assert!(
        !kinds(&frames).iter().any(|k| k == "artifact_written"),
        "{frames:?}"
    );
    let health = s.http.get(s.u("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 503);
    let reason = health.json::<Value>().await.expect("json")["reason"]
        .as_str()
        .expect("reason")
        .to_owned();
    assert!(reason.contains("artifact write"), "{reason}");
    assert!(!reason.contains('/'), "no path: {reason}");
    assert_eq!(s.wait_job_done(&job).await["state"], "failed");
    // Writable again: the next job's artifact is written and the server is healthy.
    drop(frozen);
    let next = s
        .create_job(json!({"steps": 1, "interval_ms": 0, "artifact_bytes": 1024}))
        .await;
    assert_eq!(s.wait_job_done(&next).await["state"], "completed");
    assert_eq!(s.server.health(), None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_turns_read_only_is_retried_and_loses_nothing_once_writable() {
    let s = TestServer::start().await;
    let job = s.create_job(json!({"steps": 30, "interval_ms": 20})).await;
    let mut r = s.open(&format!("/v1/jobs/{job}/events"), &[]).await;
    // Wait for the job to be under way, then freeze the store's files.
    while !is_progress(&r.next().await.expect("frame")) {}
    let dir = s.dir.path();
    let frozen: Vec<common::ReadOnly> = ["spine.db-wal", "spine.db"]
        .iter()
        .map(|f| common::ReadOnly::new(&dir.join(f)))
        .collect();
    let reason = wait_unhealthy(&s).await;
    assert!(reason.contains("store writes failing"), "{reason}");
    assert!(!reason.contains('/'), "no path: {reason}");
    drop(frozen);
    // The job's write was retried: it completes with every step, in order, once.
    let frames = r.read_to_end().await;
    let last = frames.last().expect("frames");
    assert_eq!(last.json()["reason"], "task_completed", "{frames:?}");
    let steps: Vec<u64> = frames
        .iter()
        .filter(|f| is_progress(f))
        .map(|f| f.json()["payload"]["step"].as_u64().expect("step"))
        .collect();
    let first = steps.first().copied().expect("steps");
    assert_eq!(steps, (first..=30).collect::<Vec<_>>());
    let seqs: Vec<u64> = frames
        .iter()
        .filter(|f| f.is("task_event"))
        .map(|f| f.json()["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(s.wait_job_done(&job).await["state"], "completed");
    assert_eq!(s.server.health(), None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_disconnect_mid_create_leave_no_half_made_job() {
    let s = TestServer::start().await;
    for i in 0..60u64 {
        common::install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_micros(500 + (i % 12) * 500))
            .build()
            .expect("client");
        let _ = client
            .post(s.u("/v1/jobs"))
            .bearer_auth(common::TOKEN)
            .json(&json!({"steps": 1, "interval_ms": 0}))
            .send()
            .await;
    }
    // Every job in the store is known to the server and runs to its end.
    let db = s.dir.path().join("spine.db");
    let ids: Vec<String> = {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("db");
        let mut st = conn.prepare("SELECT job_id FROM jobs").expect("prepare");
        st.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    for id in &ids {
        let v = s.wait_job_done(id).await;
        assert_eq!(v["state"], "completed", "{id}: {v}");
    }
    s.stop().await;
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[tokio::test]
async fn receipts_artifacts_and_the_store_are_private() {
    let s = TestServer::start().await;
    let job = s
        .create_job(json!({"steps": 1, "interval_ms": 0, "artifact_bytes": 1000}))
        .await;
    assert_eq!(s.wait_job_done(&job).await["state"], "completed");
    let d = s.dir.path();
    assert_eq!(mode(&d.join("receipts")), 0o700);
    assert_eq!(mode(&d.join("artifacts")), 0o700);
    assert_eq!(mode(&d.join("artifacts").join(&job)), 0o700);
    assert_eq!(
        mode(&d.join("artifacts").join(&job).join("output.bin")),
        0o600
    );
    assert_eq!(mode(&d.join("receipts").join(format!("{job}.json"))), 0o600);
    assert_eq!(mode(&d.join("spine.db")), 0o600);
    s.stop().await;
}

#[tokio::test]
async fn running_jobs_and_pending_artifact_bytes_have_quotas() {
    let s = TestServer::start_with(|c| {
        c.limits.max_running_jobs = 2;
        c.limits.max_pending_artifact_bytes = 1_000;
    })
    .await;
    let big = s
        .post("/v1/jobs")
        .json(&json!({"steps": 1, "interval_ms": 3_600_000, "artifact_bytes": 2_000}))
        .send()
        .await
        .expect("post");
    assert_eq!(big.status(), 429);
    assert_eq!(
        big.json::<Value>().await.expect("json")["error"],
        "too_many_jobs"
    );
    s.open_job().await;
    s.open_job().await;
    let third = s
        .post("/v1/jobs")
        .json(&json!({"steps": 1, "interval_ms": 3_600_000}))
        .send()
        .await
        .expect("post");
    assert_eq!(third.status(), 429);
    s.stop().await;
}

async fn notify(s: &TestServer, rid: &str) -> u16 {
    s.post("/v1/version/notify")
        .json(&json!({"request_id": rid, "version": "1.2.3"}))
        .send()
        .await
        .expect("notify")
        .status()
        .as_u16()
}

#[tokio::test]
async fn version_queues_are_capped_across_request_ids() {
    let s = TestServer::start_with(|c| {
        c.limits.versions.max_ids = 2;
        c.limits.versions.max_queued = 3;
    })
    .await;
    assert_eq!(notify(&s, "a").await, 202);
    assert_eq!(notify(&s, "b").await, 202);
    assert_eq!(notify(&s, "c").await, 429, "a third request id");
    assert_eq!(notify(&s, "a").await, 202);
    assert_eq!(notify(&s, "a").await, 429, "a fourth queued in all");
    s.stop().await;
}

#[tokio::test]
async fn version_queues_without_a_stream_expire() {
    let s = TestServer::start_with(|c| {
        c.limits.versions.max_ids = 1;
        c.limits.versions.ttl = Duration::from_millis(300);
    })
    .await;
    assert_eq!(notify(&s, "a").await, 202);
    // Once a's queue has sat for the TTL with no stream, b takes its place.
    let end = Instant::now() + DEADLINE;
    while notify(&s, "b").await != 202 {
        assert!(Instant::now() < end, "the queue never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}
