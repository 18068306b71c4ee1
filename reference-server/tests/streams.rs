//! Protocol §4: the three streams, lifecycle frames, heartbeats, resume edge cases,
//! shutdown and disconnect detection, over real HTTP.

mod common;

use std::time::Duration;

use common::{DEADLINE, TestServer, seqs};
use futures_util::StreamExt;
use serde_json::json;
use tokio::time::Instant;

#[tokio::test]
async fn events_stream_starts_with_retry_block_then_open_then_events() {
    let s = TestServer::start().await;
    let job = s.open_job().await;
    let acked = s.publish(&job, 3, "custom").await;
    let mut r = s
        .open("/v1/events", &[("X-Correlation-ID", "corr-1")])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/event-stream");
    assert_eq!(r.headers["cache-control"], "no-cache");
    let first = r.next().await.unwrap();
    assert_eq!(first.retry.as_deref(), Some("1000"));
    assert!(r.raw.starts_with(b"retry: 1000\n\n"));
    let open = r.next().await.unwrap();
    assert!(open.is("connection_open") && open.id.is_none());
    let o = open.json();
    assert_eq!(o["stream"], "events");
    assert_eq!(o["resume_from"], serde_json::Value::Null);
    assert_eq!(o["heartbeat_ms"], 300);
    assert_eq!(o["correlation_id"], "corr-1");
    let frames = r
        .until(|f| f.id.as_deref() == Some(&acked[2].to_string()))
        .await;
    let got = seqs(&frames);
    assert!(got.ends_with(&acked));
    for f in frames.iter().filter(|f| f.is("task_event")) {
        let d = f.json();
        assert_eq!(f.id.as_deref(), Some(d["seq"].to_string().as_str()));
        assert_eq!(d["correlation_id"], "corr-1");
        for k in ["seq", "job_id", "event_type", "ts", "payload"] {
            assert!(d.get(k).is_some(), "missing {k}");
        }
        let ts = d["ts"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.len() == 24,
            "{ts}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn generated_correlation_id_is_the_same_in_every_frame() {
    let s = TestServer::start().await;
    let job = s.create_job(json!({"steps": 2, "interval_ms": 0})).await;
    let mut r = s.open(&format!("/v1/jobs/{job}/events"), &[]).await;
    let frames = r.read_to_end().await;
    let ids: std::collections::HashSet<String> = frames
        .iter()
        .filter(|f| f.retry.is_none())
        .map(|f| f.json()["correlation_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn task_stream_replays_then_closes_with_task_completed() {
    let s = TestServer::start().await;
    let job = s.create_job(json!({"steps": 3, "interval_ms": 20})).await;
    let mut r = s.open(&format!("/v1/jobs/{job}/events"), &[]).await;
    let frames = r.read_to_end().await;
    let types: Vec<String> = frames
        .iter()
        .filter(|f| f.is("task_event"))
        .map(|f| f.json()["event_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "job_started",
            "progress_update",
            "progress_update",
            "progress_update",
            "task_completed"
        ]
    );
    let last = frames.last().unwrap();
    assert!(last.is("connection_close") && last.id.is_none());
    assert_eq!(last.json()["reason"], "task_completed");
    let steps: Vec<u64> = frames
        .iter()
        .filter(|f| f.is("task_event") && f.json()["event_type"] == "progress_update")
        .map(|f| f.json()["payload"]["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3]);
    s.stop().await;
}

#[tokio::test]
async fn failing_job_ends_with_task_failed_in_place_of_its_step() {
    let s = TestServer::start().await;
    let job = s
        .create_job(json!({"steps": 4, "interval_ms": 0, "fail_at_step": 2, "artifact_bytes": 10}))
        .await;
    let mut r = s.open(&format!("/v1/jobs/{job}/events"), &[]).await;
    let frames = r.read_to_end().await;
    let types: Vec<String> = frames
        .iter()
        .filter(|f| f.is("task_event"))
        .map(|f| f.json()["event_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["job_started", "progress_update", "task_failed"]);
    assert_eq!(frames.last().unwrap().json()["reason"], "task_failed");
    let st = s.wait_job_done(&job).await;
    assert_eq!(st["state"], "failed");
    assert_eq!(st["receipt_hash"], serde_json::Value::Null);
    let rc = s
        .get(&format!("/v1/jobs/{job}/receipt"))
        .send()
        .await
        .unwrap();
    assert_eq!(rc.status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn task_stream_resumed_at_its_terminal_closes_right_after_open() {
    let s = TestServer::start().await;
    let job = s.create_job(json!({"steps": 1, "interval_ms": 0})).await;
    let st = s.wait_job_done(&job).await;
    let last = st["last_seq"].as_u64().unwrap().to_string();
    let mut r = s
        .open(
            &format!("/v1/jobs/{job}/events"),
            &[("Last-Event-ID", &last)],
        )
        .await;
    let frames = r.read_to_end().await;
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert_eq!(frames[1].json()["resume_from"], st["last_seq"]);
    assert!(frames[2].is("connection_close"));
    assert_eq!(frames[2].json()["reason"], "task_completed");
    s.stop().await;
}

#[tokio::test]
async fn unknown_task_is_an_error_event_not_a_404() {
    let s = TestServer::start().await;
    let mut r = s.open("/v1/jobs/nope/events", &[]).await;
    assert_eq!(r.status, 200);
    let frames = r.read_to_end().await;
    let names: Vec<_> = frames.iter().map(|f| f.event.clone()).collect();
    assert_eq!(
        names,
        [
            None,
            Some("connection_open".into()),
            Some("error".into()),
            Some("connection_close".into())
        ]
    );
    assert_eq!(frames[2].json()["code"], "task_not_found");
    assert_eq!(frames[3].json()["reason"], "task_not_found");
    s.stop().await;
}

#[tokio::test]
async fn cursor_above_head_is_cursor_ahead_on_both_log_streams() {
    let s = TestServer::start().await;
    let job = s.create_job(json!({"steps": 0, "interval_ms": 0})).await;
    s.wait_job_done(&job).await;
    for path in ["/v1/events".to_owned(), format!("/v1/jobs/{job}/events")] {
        let mut r = s.open(&format!("{path}?last_event_id=999"), &[]).await;
        let frames = r.read_to_end().await;
        assert_eq!(frames.len(), 4, "{path}: {frames:?}");
        assert_eq!(frames[2].json()["code"], "cursor_ahead");
        assert_eq!(frames[3].json()["reason"], "cursor_ahead");
    }
    s.stop().await;
}

#[tokio::test]
async fn cursor_header_wins_over_query_and_empty_header_is_absent() {
    let s = TestServer::start().await;
    let job = s.open_job().await;
    let acked = s.publish(&job, 4, "c").await;
    let path = format!("/v1/events?job_id={job}&last_event_id={}", acked[0]);
    let mut r = s
        .open(&path, &[("Last-Event-ID", &acked[2].to_string())])
        .await;
    let frames = r.until(|f| f.is("task_event")).await;
    assert_eq!(frames[1].json()["resume_from"], acked[2]);
    assert_eq!(seqs(&frames), [acked[3]]);
    let mut r = s.open(&path, &[("Last-Event-ID", "")]).await;
    let frames = r.until(|f| f.is("task_event")).await;
    assert_eq!(frames[1].json()["resume_from"], acked[0]);
    assert_eq!(seqs(&frames), [acked[1]]);
    s.stop().await;
}

#[tokio::test]
async fn heartbeat_arrives_within_twice_the_interval_when_idle() {
    let s = TestServer::start().await;
    let mut r = s.open("/v1/events?job_id=idle", &[]).await;
    r.next().await.unwrap();
    r.next().await.unwrap();
    let t0 = Instant::now();
    let hb = r.next_within(Duration::from_millis(600)).await.unwrap();
    assert!(hb.is("heartbeat") && hb.id.is_none());
    let d = hb.json();
    assert!(d["head_seq"].is_u64() && d["server_time"].is_string());
    let hb2 = r.next_within(Duration::from_millis(600)).await.unwrap();
    assert!(hb2.is("heartbeat"));
    assert!(t0.elapsed() >= Duration::from_millis(250));
    s.stop().await;
}

#[tokio::test]
async fn shutdown_sends_server_shutdown_on_every_stream() {
    let s = TestServer::start().await;
    let job = s
        .create_job(json!({"steps": 100, "interval_ms": 1000}))
        .await;
    let mut readers = vec![
        s.open("/v1/events", &[]).await,
        s.open(&format!("/v1/jobs/{job}/events"), &[]).await,
        s.open("/v1/version/stream?request_id=r1", &[]).await,
    ];
    for r in &mut readers {
        r.until(|f| f.is("connection_open")).await;
    }
    let stop = tokio::spawn(async move { s.stop().await });
    for r in &mut readers {
        let frames = r.read_to_end().await;
        let last = frames.last().expect("a close frame");
        assert!(last.is("connection_close"), "{frames:?}");
        assert_eq!(last.json()["reason"], "server_shutdown");
    }
    stop.await.unwrap();
}

#[tokio::test]
async fn closed_clients_are_noticed_within_twice_the_heartbeat() {
    let s = TestServer::start().await;
    let base = s.metric("spine_active_streams").await;
    let mut readers = Vec::new();
    for i in 0..5 {
        let path = if i % 2 == 0 {
            "/v1/events".to_owned()
        } else {
            "/v1/version/stream?request_id=x".to_owned() + &i.to_string()
        };
        let mut r = s.open(&path, &[]).await;
        r.until(|f| f.is("connection_open")).await;
        readers.push(r);
    }
    assert_eq!(s.metric("spine_active_streams").await, base + 5);
    drop(readers);
    let end = Instant::now() + Duration::from_millis(600) + Duration::from_millis(500);
    loop {
        if s.metric("spine_active_streams").await == base {
            break;
        }
        assert!(
            Instant::now() < end,
            "streams not freed within 2 x heartbeat"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn version_stream_sends_running_version_when_nothing_queued() {
    let s = TestServer::start().await;
    let mut r = s.open("/v1/version/stream?request_id=a", &[]).await;
    let frames = r.until(|f| f.is("version")).await;
    let open = frames[1].json();
    assert_eq!(open["stream"], "version");
    assert_eq!(open["resume_from"], serde_json::Value::Null);
    let v = frames[2].json();
    assert!(frames[2].id.is_none());
    assert_eq!(v["request_id"], "a");
    assert!(v["version"].is_string());
    assert!(v.get("environment").is_some() && v.get("git_commit").is_some());
    s.stop().await;
}

#[tokio::test]
async fn version_notes_queue_in_order_then_go_live_and_replacement_closes_old() {
    let s = TestServer::start().await;
    for v in ["1", "2", "3"] {
        let r = s
            .post("/v1/version/notify")
            .json(&json!({"request_id": "q", "version": v}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["delivered"],
            false
        );
    }
    let mut old = s
        .open("/v1/version/stream?request_id=q&last_event_id=7", &[])
        .await;
    let frames = old
        .until(|f| f.is("version") && f.json()["version"] == "3")
        .await;
    let got: Vec<_> = frames
        .iter()
        .filter(|f| f.is("version"))
        .map(|f| f.json()["version"].clone())
        .collect();
    assert_eq!(got, [json!("1"), json!("2"), json!("3")]);
    assert_eq!(
        frames.iter().find(|f| f.is("version")).unwrap().json()["environment"],
        serde_json::Value::Null
    );
    let r = s
        .post("/v1/version/notify")
        .json(
            &json!({"request_id": "q", "version": "4", "environment": "prod", "git_commit": "abc"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["delivered"],
        true
    );
    let live = old.until(|f| f.is("version")).await;
    assert_eq!(live.last().unwrap().json()["environment"], "prod");

    let mut new = s.open("/v1/version/stream?request_id=q", &[]).await;
    new.until(|f| f.is("version")).await;
    let closed = old.read_to_end().await;
    assert_eq!(closed.last().unwrap().json()["reason"], "replaced");
    s.post("/v1/version/notify")
        .json(&json!({"request_id": "q", "version": "5"}))
        .send()
        .await
        .unwrap();
    let f = new.until(|f| f.is("version")).await;
    assert_eq!(f.last().unwrap().json()["version"], "5");
    s.stop().await;
}

#[tokio::test]
async fn eventsource_stream_interop_reads_a_task_stream() {
    use eventsource_stream::Eventsource;
    let s = TestServer::start().await;
    let job = s.create_job(json!({"steps": 2, "interval_ms": 0})).await;
    let resp = s
        .get(&format!("/v1/jobs/{job}/events"))
        .send()
        .await
        .unwrap();
    let mut es = resp.bytes_stream().eventsource();
    let mut names = Vec::new();
    let end = Instant::now() + DEADLINE;
    while let Some(ev) = tokio::time::timeout_at(end, es.next())
        .await
        .expect("deadline")
    {
        let ev = ev.expect("valid event");
        names.push(ev.event.clone());
        if ev.event == "task_event" {
            assert_eq!(
                ev.id,
                serde_json::from_str::<serde_json::Value>(&ev.data).unwrap()["seq"].to_string()
            );
        }
    }
    assert_eq!(names.first().map(String::as_str), Some("connection_open"));
    assert_eq!(names.last().map(String::as_str), Some("connection_close"));
    assert_eq!(names.iter().filter(|n| *n == "task_event").count(), 4);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_loses_nothing_and_slows_no_one() {
    let s = TestServer::start().await;
    let job = s.open_job().await;
    // Opened, then not read while far more than the socket buffers is published.
    let mut slow = s.open(&format!("/v1/events?job_id={job}"), &[]).await;
    slow.until(|f| f.is("connection_open")).await;
    let mut fast = s.open(&format!("/v1/events?job_id={job}"), &[]).await;
    let pad = "p".repeat(2000);
    let mut acked = Vec::new();
    for _ in 0..10 {
        let events: Vec<_> = (0..1000)
            .map(|i| json!({"event_type": "bulk", "payload": {"i": i, "pad": pad}}))
            .collect();
        let r = s
            .post(&format!("/v1/jobs/{job}/events"))
            .json(&json!({ "events": events }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: serde_json::Value = r.json().await.unwrap();
        acked.extend(
            v["seqs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_u64().unwrap()),
        );
    }
    let last = acked.last().unwrap().to_string();
    let got = seqs(&fast.until(|f| f.id.as_deref() == Some(last.as_str())).await);
    assert_eq!(&got[1..], acked.as_slice());
    let got = seqs(&slow.until(|f| f.id.as_deref() == Some(last.as_str())).await);
    assert_eq!(&got[1..], acked.as_slice());
    assert_eq!(s.metric("spine_slow_consumer_closes_total").await, 0);
    s.stop().await;
}

#[tokio::test]
async fn version_notes_unsent_by_a_vanished_stream_are_queued_again() {
    let s = TestServer::start().await;
    let mut r = s.open("/v1/version/stream?request_id=v", &[]).await;
    r.until(|f| f.is("version")).await;
    drop(r);
    // Once the stream is gone, a note is queued and the next stream gets it.
    let end = Instant::now() + DEADLINE;
    while s.metric("spine_active_streams").await != 0 {
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = s
        .post("/v1/version/notify")
        .json(&json!({"request_id": "v", "version": "9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["delivered"],
        false
    );
    let mut r = s.open("/v1/version/stream?request_id=v", &[]).await;
    let f = r.until(|f| f.is("version")).await;
    assert_eq!(f.last().unwrap().json()["version"], "9");
    s.stop().await;
}

#[tokio::test]
async fn the_heartbeat_absent_fault_silences_idle_streams() {
    use reference_server::faults::{Fault, FaultSet};
    let s = TestServer::start_with(|c| c.faults = FaultSet::new([Fault::HeartbeatAbsent])).await;
    let mut r = s.open("/v1/events?job_id=idle", &[]).await;
    r.until(|f| f.is("connection_open")).await;
    // Three heartbeat intervals pass; a frame would arrive as a chunk before then.
    let quiet = tokio::time::timeout(Duration::from_millis(900), r.next()).await;
    assert!(quiet.is_err(), "a frame arrived: {quiet:?}");
    s.stop().await;
}
