//! Faults the server must survive: a full store, clients that vanish mid-request,
//! crash-safe and private files, and the quotas that keep memory and disk bounded.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use common::{DEADLINE, TestServer};
use serde_json::{Value, json};
use tokio::time::Instant;

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
    let mut r = s.open(&format!("/v1/jobs/{job}/events"), &[]).await;
    let frames = r.read_to_end().await;
    let last = frames.last().expect("frames");
    assert!(last.is("connection_close"), "{last:?}");
    assert_eq!(last.json()["reason"], "task_failed");
    let unhealthy = watcher.await.expect("watcher");
    assert_eq!(unhealthy["status"], "unhealthy");
    let reason = unhealthy["reason"].as_str().expect("reason");
    assert!(reason.contains("DiskFull"), "{reason}");
    assert!(!reason.contains('/'), "no path: {reason}");
    assert_eq!(s.wait_job_done(&job).await["state"], "failed");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_disconnect_mid_create_leave_no_half_made_job() {
    let s = TestServer::start().await;
    for i in 0..60u64 {
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
