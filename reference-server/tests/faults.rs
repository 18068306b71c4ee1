//! Faults are switched on only by the server's configuration: no request (header,
//! query parameter or body field naming a fault) changes what a clean server does.
//! The behavioural proof that each fault breaks its contract is the harness's
//! mutation test (`cargo test -p sse-harness --test mutations`).

mod common;

use std::time::Duration;

use common::{TestServer, seqs};
use reference_server::faults::{Fault, FaultSet};
use serde_json::{Value, json};

/// Every fault name, comma separated.
fn all_names() -> String {
    Fault::ALL
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(",")
}

/// `?fault=a&fault=b&...&faults=a,b,...` (to append after `?` or `&`).
fn fault_query() -> String {
    let mut q: Vec<String> = Fault::ALL
        .iter()
        .map(|f| format!("fault={}", f.name()))
        .collect();
    q.push(format!("faults={}", all_names()));
    q.join("&")
}

/// Every header a fault switch could plausibly hide in.
fn fault_headers(names: &str) -> Vec<(&'static str, String)> {
    ["X-Fault", "X-Faults", "Fault", "X-Spine-Fault"]
        .into_iter()
        .map(|h| (h, names.to_owned()))
        .collect()
}

fn with_headers(mut req: reqwest::RequestBuilder, names: &str) -> reqwest::RequestBuilder {
    for (k, v) in fault_headers(names) {
        req = req.header(k, v);
    }
    req
}

#[tokio::test]
async fn the_default_config_has_no_fault_on() {
    assert!(
        reference_server::Config::new("/tmp/x", "t")
            .faults
            .is_empty()
    );
    assert!(FaultSet::default().is_empty());
}

#[tokio::test]
async fn a_request_naming_faults_gets_exactly_what_the_clean_server_sends() {
    let s = TestServer::start().await;
    let names = all_names();
    let job = s.open_job().await;

    // Publishes, one event each, asking for faults every way: every one is acked
    // (publish-rejects-some would refuse the 20th) with the seq that is then delivered
    // (ack-seq-off-by-one, ack-without-write).
    let mut acked = Vec::new();
    for i in 0..60 {
        let req = s
            .post(&format!("/v1/jobs/{job}/events?{}", fault_query()))
            .json(&json!({"event_type": "custom", "payload": {"i": i}}));
        let r = with_headers(req, &names).send().await.expect("publish");
        assert_eq!(r.status(), 201, "publish {i}");
        let v: Value = r.json().await.expect("json");
        acked.push(v["seqs"][0].as_u64().expect("seq"));
    }
    let head = *acked.last().unwrap();

    // A resumed events stream asking for faults.
    let cursor = acked[9].to_string();
    let mut h = fault_headers(&names);
    h.push(("Last-Event-ID", cursor.clone()));
    h.push(("X-Correlation-ID", "corr-faults".to_owned()));
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut r = s.open(&format!("/v1/events?{}", fault_query()), &h).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let first = r.next().await.unwrap();
    assert_eq!(first.retry.as_deref(), Some("1000"));
    assert!(r.raw.starts_with(b"retry: 1000\n\n"));
    let open = r.next().await.unwrap();
    assert!(open.is("connection_open") && open.id.is_none());
    let o = open.json();
    assert_eq!(o["head_seq"], head);
    assert_eq!(o["resume_from"], acked[9]);
    let frames = r
        .until(|f| f.id.as_deref() == Some(&head.to_string()))
        .await;
    // Exactly the events after the cursor, in order, with the acked seqs and the
    // payloads published (no replay of the cursor's own, none skipped or swapped).
    assert_eq!(seqs(&frames), acked[10..].to_vec());
    for (f, i) in frames.iter().filter(|f| f.is("task_event")).zip(10..) {
        let d = f.json();
        assert_eq!(d["payload"], json!({"i": i}));
        assert_eq!(d["correlation_id"], "corr-faults");
    }
    // The idle stream heartbeats within 2 x heartbeat_ms, with the real head.
    let hb = r.next_within(Duration::from_millis(600)).await.unwrap();
    assert!(hb.is("heartbeat") && hb.id.is_none(), "{hb:?}");
    assert_eq!(hb.json()["head_seq"], head);
    assert_eq!(hb.json()["correlation_id"], "corr-faults");
    drop(r);

    // A malformed cursor is still refused, a cursor above the head still closed.
    let req = s.get(&format!("/v1/events?{}", fault_query()));
    let bad = with_headers(req, &names)
        .header("Last-Event-ID", "not-a-number")
        .send()
        .await
        .expect("get");
    assert_eq!(bad.status(), 400);
    let mut h = fault_headers(&names);
    h.push(("Last-Event-ID", (head + 1000).to_string()));
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut ahead = s.open(&format!("/v1/events?{}", fault_query()), &h).await;
    let frames = ahead.read_to_end().await;
    let names_seen: Vec<&str> = frames.iter().filter_map(|f| f.event.as_deref()).collect();
    assert_eq!(names_seen, ["connection_open", "error", "connection_close"]);

    // An unknown job's task stream is still 200 with error + close.
    let h = fault_headers(&names);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut missing = s
        .open(&format!("/v1/jobs/nope/events?{}", fault_query()), &h)
        .await;
    assert_eq!(missing.status, 200);
    let frames = missing.read_to_end().await;
    assert_eq!(frames.last().unwrap().json()["reason"], "task_not_found");

    // A body field naming a fault is an unknown field, refused as for any other.
    let r = s
        .post("/v1/jobs")
        .json(&json!({"steps": 1, "fault": "receipt-hash-wrong"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let r = s
        .post("/v1/version/notify")
        .json(&json!({"request_id": "r", "version": "1", "fault": "version-missing-fields"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);

    // A task stream asking for faults ends right after its terminal event, and the
    // receipt's stored hash is the file's.
    let done = s.create_job(json!({"steps": 2, "interval_ms": 0})).await;
    let h = fault_headers(&names);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut task = s
        .open(&format!("/v1/jobs/{done}/events?{}", fault_query()), &h)
        .await;
    let frames = task.read_to_end().await;
    let last = frames.last().unwrap();
    assert!(last.is("connection_close") && last.id.is_none());
    assert_eq!(last.json()["reason"], "task_completed");
    let receipt = s
        .get(&format!("/v1/jobs/{done}/receipt"))
        .send()
        .await
        .expect("receipt");
    let stored = receipt.headers()["x-receipt-sha256"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = receipt.bytes().await.unwrap();
    use sha2::Digest as _;
    assert_eq!(stored, hex::encode(sha2::Sha256::digest(&bytes)));
    s.stop().await;
}

#[tokio::test]
async fn a_fault_in_the_config_does_show_on_the_wire() {
    // The control for the test above: the same checks do see a configured fault.
    let s = TestServer::start_with(|c| {
        c.faults = FaultSet::new([Fault::WrongContentType, Fault::NoRetry]);
    })
    .await;
    let mut r = s.open("/v1/events", &[]).await;
    assert_eq!(r.headers["content-type"], "text/plain");
    let first = r.next().await.unwrap();
    assert!(first.is("connection_open"), "{first:?}");
    drop(r);
    s.stop().await;
}
