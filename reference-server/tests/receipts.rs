//! Protocol §5: receipts (content, hash in the store and in `task_completed`, atomic
//! write), artifacts, and the integrity report over HTTP and the CLI.

mod common;

use common::TestServer;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The canonical line of an event as the protocol defines it.
fn line(d: &Value) -> String {
    let mut m = Map::new();
    for k in ["event_type", "job_id", "payload", "seq", "ts"] {
        m.insert(k.to_owned(), d[k].clone());
    }
    let mut s = Value::Object(m).to_string();
    s.push('\n');
    s
}

#[tokio::test]
async fn receipt_covers_the_events_before_task_completed() {
    let s = TestServer::start().await;
    let job = s
        .create_job(
            json!({"steps": 3, "interval_ms": 0, "artifact_bytes": 300000, "payload_bytes": 200}),
        )
        .await;
    let mut r = s.open(&format!("/v1/jobs/{job}/events"), &[]).await;
    let frames = r.read_to_end().await;
    let events: Vec<Value> = frames
        .iter()
        .filter(|f| f.is("task_event"))
        .map(|f| f.json())
        .collect();
    let (last, covered) = events.split_last().unwrap();
    assert_eq!(last["event_type"], "task_completed");
    let art = covered
        .iter()
        .find(|e| e["event_type"] == "artifact_written")
        .unwrap();
    assert_eq!(art["payload"]["bytes"], 300000);
    let progress = covered
        .iter()
        .find(|e| e["event_type"] == "progress_update")
        .unwrap();
    let plen = progress["payload"].to_string().len();
    assert!((190..=210).contains(&plen), "payload {plen} bytes");

    let resp = s
        .get(&format!("/v1/jobs/{job}/receipt"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let header = resp.headers()["x-receipt-sha256"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(sha(&bytes), header);
    assert_eq!(last["payload"]["receipt_hash"], header);
    let status: Value = s
        .get(&format!("/v1/jobs/{job}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "completed");
    assert_eq!(status["receipt_hash"], header);
    assert_eq!(status["event_count"], events.len());

    let receipt: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(receipt["job_id"], job);
    assert_eq!(receipt["state"], "completed");
    assert_eq!(receipt["first_seq"], covered[0]["seq"]);
    assert_eq!(receipt["last_seq"], covered.last().unwrap()["seq"]);
    assert_eq!(receipt["event_count"], covered.len());
    let mut h = Sha256::new();
    for e in covered {
        h.update(line(e).as_bytes());
    }
    assert_eq!(receipt["events_sha256"], hex::encode(h.finalize()));
    assert_eq!(
        receipt["artifacts"],
        json!([{"name": art["payload"]["name"], "sha256": art["payload"]["sha256"], "bytes": 300000}])
    );
    assert!(receipt["completed_at"].is_string());

    let data = s.dir.path();
    let file = std::fs::read(data.join("artifacts").join(&job).join("output.bin")).unwrap();
    assert_eq!(file.len(), 300000);
    assert_eq!(sha(&file), art["payload"]["sha256"].as_str().unwrap());
    assert_eq!(
        std::fs::read(data.join("receipts").join(format!("{job}.json"))).unwrap(),
        bytes
    );
    for dir in [data.join("receipts"), data.join("artifacts").join(&job)] {
        for e in std::fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "temp file left: {name}");
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn artifacts_are_deterministic_per_job_and_distinct_across_jobs() {
    let s = TestServer::start().await;
    let a = s
        .create_job(json!({"steps": 0, "interval_ms": 0, "artifact_bytes": 1000}))
        .await;
    let b = s
        .create_job(json!({"steps": 0, "interval_ms": 0, "artifact_bytes": 1000}))
        .await;
    s.wait_job_done(&a).await;
    s.wait_job_done(&b).await;
    let fa = std::fs::read(s.dir.path().join("artifacts").join(&a).join("output.bin")).unwrap();
    let fb = std::fs::read(s.dir.path().join("artifacts").join(&b).join("output.bin")).unwrap();
    assert_ne!(fa, fb);
    s.stop().await;
}

#[tokio::test]
async fn integrity_route_and_cli_report_match_then_detect_tampering() {
    let s = TestServer::start().await;
    let job = s
        .create_job(json!({"steps": 1, "interval_ms": 0, "artifact_bytes": 4096}))
        .await;
    s.wait_job_done(&job).await;
    let report: Value = s
        .get("/v1/diagnostics/integrity")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["summary"]["ok"], 2, "{report}");
    assert_eq!(report["summary"]["fail"], 0);
    let full: Value = s
        .get("/v1/diagnostics/integrity?full_integrity=true")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(full["full_integrity"], true);

    let receipt = s.dir.path().join("receipts").join(format!("{job}.json"));
    std::fs::write(&receipt, b"{\"tampered\":true}").unwrap();
    let report: Value = s
        .get("/v1/diagnostics/integrity")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["summary"]["fail"], 1);
    assert_eq!(report["failures"][0]["status"], "MISMATCH");

    let dir = s.stop().await;
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_reference-server"))
        .args(["diagnostics", "--data"])
        .arg(dir.path())
        .arg("--out")
        .arg(out.path())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "a mismatch fails the command");
    let json: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("integrity_report.json")).unwrap())
            .unwrap();
    assert_eq!(json["summary"]["fail"], 1);
    assert!(out.path().join("integrity_report.txt").exists());
}
