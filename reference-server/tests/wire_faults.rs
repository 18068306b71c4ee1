//! The wire faults that hold data back without changing it: `compressed-stream`
//! (a compressing middleware that never flushes), `head-held` (the response head waits
//! for the first data event) and `one-behind` (each stream holds its newest event).
//! Each is shown on the wire with the fault on, and its absence with it off. Waits
//! that show something does *not* arrive are bounded at [`HELD`]; every other wait has
//! a deadline.

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::{DEADLINE, SseReader, TestServer, seqs};
use futures_util::StreamExt;
use reference_server::faults::{Fault, FaultSet};
use serde_json::{Value, json};
use tokio::time::Instant;

/// How long something held back must stay held (over three 300 ms heartbeats).
const HELD: Duration = Duration::from_secs(1);

async fn start(faults: &[Fault]) -> TestServer {
    let faults = FaultSet::new(faults.iter().copied());
    TestServer::start_with(|c| c.faults = faults).await
}

/// The committed head, from `/healthz`.
async fn head(s: &TestServer) -> u64 {
    let v: Value = s
        .http
        .get(s.u("/healthz"))
        .send()
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json");
    v["head_seq"].as_u64().expect("head_seq")
}

/// Reads frames for about `span` (an idle stream heartbeats every 300 ms, so every
/// read returns well within it), returning them.
async fn frames_for(r: &mut SseReader, span: Duration) -> Vec<common::Frame> {
    let end = Instant::now() + span;
    let mut out = Vec::new();
    while Instant::now() < end {
        out.push(r.next().await.expect("stream still open"));
    }
    out
}

/// Publishes `n` events whose payloads (UUIDs) compress poorly.
async fn publish_noise(s: &TestServer, job: &str, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|_| {
            let noise: Vec<String> = (0..4).map(|_| uuid::Uuid::new_v4().to_string()).collect();
            json!({"event_type": "custom", "payload": {"noise": noise}})
        })
        .collect();
    let r = s
        .post(&format!("/v1/jobs/{job}/events"))
        .json(&json!({ "events": events }))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn compressed_stream_gzips_streams_and_holds_their_frames_in_the_encoder() {
    let s = start(&[Fault::CompressedStream]).await;
    let job = s.open_job().await;
    let accept = [("Accept-Encoding", "gzip, deflate, br")];
    let resp = s
        .get("/v1/events")
        .header("Accept-Encoding", "gzip, deflate, br")
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let mut gz = flate2::write::GzDecoder::new(Vec::new());

    // Over three heartbeats fall due, and yet nothing decodes: not even `retry:`.
    let end = Instant::now() + HELD;
    while let Ok(Some(chunk)) = tokio::time::timeout_at(end, body.next()).await {
        gz.write_all(&chunk.expect("chunk")).expect("gzip");
    }
    // Flushed, the decoder hands over everything it could decode so far.
    gz.flush().expect("gzip");
    assert!(gz.get_ref().is_empty(), "{:?}", gz.get_ref());

    // Once enough has gone into the encoder, it lets a block go: held, not lost.
    let end = Instant::now() + DEADLINE;
    let mut published = 0;
    while gz.get_ref().is_empty() {
        assert!(
            Instant::now() < end && published < 10_000,
            "nothing decoded after {published} events"
        );
        publish_noise(&s, &job, 500).await;
        published += 500;
        let pause = Instant::now() + Duration::from_millis(300);
        while let Ok(Some(chunk)) = tokio::time::timeout_at(pause, body.next()).await {
            gz.write_all(&chunk.expect("chunk")).expect("gzip");
        }
        gz.flush().expect("gzip");
    }
    assert!(
        gz.get_ref()
            .starts_with(b"retry: 1000\n\nevent: connection_open\n"),
        "{:?}",
        String::from_utf8_lossy(&gz.get_ref()[..64.min(gz.get_ref().len())])
    );
    drop(body);

    // Deflate when asked for it; no compression without `Accept-Encoding`, nor on
    // routes other than the streams.
    let r = s
        .open("/v1/events", &[("Accept-Encoding", "deflate")])
        .await;
    assert_eq!(r.headers["content-encoding"], "deflate");
    let mut r = s.open("/v1/events", &[]).await;
    assert!(r.headers.get("content-encoding").is_none());
    assert_eq!(r.next().await.unwrap().retry.as_deref(), Some("1000"));
    let status = s
        .get(&format!("/v1/jobs/{job}"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .expect("status");
    assert!(status.headers().get("content-encoding").is_none());
    let task = s.open(&format!("/v1/jobs/{job}/events"), &accept).await;
    assert_eq!(task.headers["content-encoding"], "gzip");
    s.stop().await;
}

#[tokio::test]
async fn without_compressed_stream_a_stream_asking_for_gzip_is_plain_and_prompt() {
    let s = start(&[]).await;
    let mut r = s
        .open("/v1/events", &[("Accept-Encoding", "gzip, deflate, br")])
        .await;
    assert!(r.headers.get("content-encoding").is_none());
    assert_eq!(r.next().await.unwrap().retry.as_deref(), Some("1000"));
    assert!(r.next().await.unwrap().is("connection_open"));
    s.stop().await;
}

/// Sends a stream request in a task: the handle resolves when the response head
/// arrives.
fn request_head(
    s: &TestServer,
    path: &str,
    cursor: Option<u64>,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let mut req = s.get(path);
    if let Some(c) = cursor {
        req = req.header("Last-Event-ID", c.to_string());
    }
    tokio::spawn(req.send())
}

#[tokio::test]
async fn head_held_answers_an_idle_stream_only_with_its_first_event() {
    let s = start(&[Fault::HeadHeld]).await;
    let job = s.open_job().await;
    let at = head(&s).await;

    // An idle stream (empty replay): no head within a second, heartbeats or not.
    let mut pending = request_head(&s, "/v1/events", Some(at));
    let task_path = format!("/v1/jobs/{job}/events");
    let mut task_pending = request_head(&s, &task_path, Some(at));
    assert!(tokio::time::timeout(HELD, &mut pending).await.is_err());
    assert!(
        tokio::time::timeout(Duration::ZERO, &mut task_pending)
            .await
            .is_err()
    );

    // A publish lets both go: `retry:`, `connection_open`, then the event.
    let a = s.publish(&job, 1, "custom").await[0];
    for handle in [pending, task_pending] {
        let resp = tokio::time::timeout(DEADLINE, handle)
            .await
            .expect("head after the publish")
            .expect("task")
            .expect("response");
        assert_eq!(resp.status(), 200);
        let mut r = SseReader::new(resp);
        assert_eq!(r.next().await.unwrap().retry.as_deref(), Some("1000"));
        assert_eq!(r.next().await.unwrap().json()["head_seq"], at);
        let ev = r.next().await.unwrap();
        assert_eq!(seqs(&[ev]), [a]);
    }

    // A stream with something to replay is answered at once.
    let resp = tokio::time::timeout(DEADLINE, request_head(&s, "/v1/events", Some(at)))
        .await
        .expect("head")
        .expect("task")
        .expect("response");
    let mut r = SseReader::new(resp);
    let frames = r.until(|f| f.is("task_event")).await;
    assert_eq!(seqs(&frames), [a]);
    s.stop().await;
}

#[tokio::test]
async fn without_head_held_an_idle_stream_is_answered_at_once() {
    let s = start(&[]).await;
    s.open_job().await;
    let at = head(&s).await;
    let resp = tokio::time::timeout(DEADLINE, request_head(&s, "/v1/events", Some(at)))
        .await
        .expect("head at once")
        .expect("task")
        .expect("response");
    let mut r = SseReader::new(resp);
    assert_eq!(r.next().await.unwrap().retry.as_deref(), Some("1000"));
    assert!(r.next().await.unwrap().is("connection_open"));
    assert!(r.next().await.unwrap().is("heartbeat"));
    s.stop().await;
}

/// An idle events stream at the head, read past `connection_open`.
async fn idle_stream(s: &TestServer) -> SseReader {
    let at = head(s).await.to_string();
    let mut r = s.open("/v1/events", &[("Last-Event-ID", &at)]).await;
    assert_eq!(r.next().await.unwrap().retry.as_deref(), Some("1000"));
    assert!(r.next().await.unwrap().is("connection_open"));
    r
}

#[tokio::test]
async fn one_behind_writes_each_event_only_with_the_next() {
    let s = start(&[Fault::OneBehind]).await;
    let job = s.open_job().await;
    let mut r = idle_stream(&s).await;

    // A alone is held; heartbeats still flow.
    let a = s.publish(&job, 1, "custom").await[0];
    let frames = frames_for(&mut r, HELD).await;
    assert!(seqs(&frames).is_empty(), "{frames:?}");
    assert!(frames.iter().all(|f| f.is("heartbeat")), "{frames:?}");

    // B lets A go, and is held in turn.
    let b = s.publish(&job, 1, "custom").await[0];
    let frames = r.until(|f| f.is("task_event")).await;
    assert_eq!(seqs(&frames), [a]);
    let frames = frames_for(&mut r, HELD).await;
    assert!(seqs(&frames).is_empty(), "{frames:?}");
    drop(r);

    // A replay holds its newest event the same way.
    let mut r = s.open("/v1/events", &[]).await;
    let frames = r.until(|f| f.is("heartbeat")).await;
    let got = seqs(&frames);
    assert_eq!(got.last(), Some(&a));
    assert!(!got.contains(&b));
    drop(r);

    // A task stream's terminal event is written before its `connection_close`.
    let done = s.create_job(json!({"steps": 2, "interval_ms": 0})).await;
    s.wait_job_done(&done).await;
    let mut r = s.open(&format!("/v1/jobs/{done}/events"), &[]).await;
    let frames = r.read_to_end().await;
    let n = frames.len();
    assert_eq!(frames[n - 2].json()["event_type"], "task_completed");
    assert_eq!(frames[n - 1].json()["reason"], "task_completed");
    s.stop().await;
}

#[tokio::test]
async fn without_one_behind_each_event_is_written_at_once() {
    let s = start(&[]).await;
    let job = s.open_job().await;
    let mut r = idle_stream(&s).await;
    let a = s.publish(&job, 1, "custom").await[0];
    let started = Instant::now();
    let frames = r.until(|f| f.is("task_event")).await;
    assert_eq!(seqs(&frames), [a]);
    assert!(started.elapsed() < HELD, "{:?}", started.elapsed());
    s.stop().await;
}
