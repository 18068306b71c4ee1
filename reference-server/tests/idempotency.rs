//! `Idempotency-Key` on publish (protocol v1.1, §3): the first request with a key
//! commits; a retry with the same key and body commits nothing and answers `200` with
//! the original seqs (also after a restart, also after the job ended); another body is
//! `409 idempotency_conflict`; a malformed key is `400`; simultaneous requests with one
//! key commit once; an older data folder gains the key table on open.
//!
//! Also the proof that these checks can fail: with `--fault idempotency-ignored` the
//! same retries commit a second copy under new seqs (the harness catches the same
//! fault end to end: its row in contracts/mutations.toml, `NETWORK/lost-publish-acks`).

mod common;

use common::TestServer;
use reference_server::faults::{Fault, FaultSet};
use serde_json::{Value, json};

/// One publish with an optional key: (status, body).
async fn publish(s: &TestServer, job: &str, key: Option<&[u8]>, body: &Value) -> (u16, Value) {
    let mut req = s.post(&format!("/v1/jobs/{job}/events")).json(body);
    if let Some(k) = key {
        req = req.header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes(k).expect("a sendable header value"),
        );
    }
    let r = req.send().await.expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

fn seqs_of(v: &Value) -> Vec<u64> {
    v["seqs"]
        .as_array()
        .unwrap_or_else(|| panic!("no seqs in {v}"))
        .iter()
        .map(|s| s.as_u64().expect("u64 seq"))
        .collect()
}

/// `event_count` of `GET /v1/jobs/<id>`.
async fn event_count(s: &TestServer, job: &str) -> u64 {
    let v: Value = s
        .get(&format!("/v1/jobs/{job}"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    v["event_count"].as_u64().expect("event_count")
}

/// `head_seq` of `/healthz`.
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

fn batch(tag: &str) -> Value {
    json!({"events": [
        {"event_type": "c", "payload": {"tag": tag, "i": 0}},
        {"event_type": "c", "payload": {"tag": tag, "i": 1}},
    ]})
}

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_answers_200_with_the_first_seqs_and_commits_nothing() {
    let s = TestServer::start().await;
    let job = s.open_job().await;
    let (st, first) = publish(&s, &job, Some(b"k-1"), &batch("a")).await;
    assert_eq!(st, 201, "{first}");
    let seqs = seqs_of(&first);
    assert_eq!(seqs.len(), 2);
    let (count, head_seq) = (event_count(&s, &job).await, head(&s).await);
    // The same body with other key order and spacing is the same body.
    let same = json!({"events": [
        {"payload": {"i": 0, "tag": "a"}, "event_type": "c"},
        {"payload": {"i": 1, "tag": "a"}, "event_type": "c"},
    ]});
    for body in [batch("a"), same] {
        let (st, again) = publish(&s, &job, Some(b"k-1"), &body).await;
        assert_eq!(st, 200, "{again}");
        assert_eq!(seqs_of(&again), seqs);
    }
    assert_eq!(event_count(&s, &job).await, count);
    assert_eq!(head(&s).await, head_seq);
    // Another key, and no key, commit as usual.
    let (st, other) = publish(&s, &job, Some(b"k-2"), &batch("a")).await;
    assert_eq!(st, 201);
    assert!(seqs_of(&other)[0] > *seqs.last().unwrap());
    let (st, _) = publish(&s, &job, None, &batch("a")).await;
    assert_eq!(st, 201);
    assert_eq!(event_count(&s, &job).await, count + 4);
    s.stop().await;
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_409_conflict_that_commits_nothing() {
    let s = TestServer::start().await;
    let job = s.open_job().await;
    let (st, first) = publish(&s, &job, Some(b"k"), &batch("a")).await;
    assert_eq!(st, 201);
    let count = event_count(&s, &job).await;
    let single = json!({"event_type": "c", "payload": {"tag": "a", "i": 0}});
    for body in [batch("b"), single] {
        let (st, v) = publish(&s, &job, Some(b"k"), &body).await;
        assert_eq!(st, 409, "{v}");
        assert_eq!(v["error"], "idempotency_conflict");
        assert!(v["detail"].is_string());
    }
    assert_eq!(event_count(&s, &job).await, count);
    // The key still replays its own body.
    let (st, again) = publish(&s, &job, Some(b"k"), &batch("a")).await;
    assert_eq!((st, seqs_of(&again)), (200, seqs_of(&first)));
    s.stop().await;
}

#[tokio::test]
async fn keys_belong_to_their_job() {
    let s = TestServer::start().await;
    let (one, two) = (s.open_job().await, s.open_job().await);
    let (st, a) = publish(&s, &one, Some(b"shared"), &batch("a")).await;
    assert_eq!(st, 201);
    let (st, b) = publish(&s, &two, Some(b"shared"), &batch("b")).await;
    assert_eq!(st, 201, "{b}");
    assert_ne!(seqs_of(&a), seqs_of(&b));
    s.stop().await;
}

#[tokio::test]
async fn a_malformed_key_is_a_400_invalid_request_that_commits_nothing() {
    let s = TestServer::start().await;
    let job = s.open_job().await;
    let count = event_count(&s, &job).await;
    let long = vec![b'k'; 201];
    let bad: [&[u8]; 4] = [b"", &long, b"a\tb", b"caf\xc3\xa9"];
    for key in bad {
        let (st, v) = publish(&s, &job, Some(key), &batch("a")).await;
        assert_eq!(st, 400, "key {key:?}: {v}");
        assert_eq!(v["error"], "invalid_request");
    }
    // Twice the header.
    let r = s
        .post(&format!("/v1/jobs/{job}/events"))
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "a")
        .json(&batch("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(event_count(&s, &job).await, count);
    // The edges that are fine: 200 bytes, spaces and punctuation.
    let longest = [b'k'; 200];
    for key in [&longest[..], b"a b ~!\"{}"] {
        let (st, v) = publish(&s, &job, Some(key), &batch("a")).await;
        assert_eq!(st, 201, "key {key:?}: {v}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_key_replays_after_a_restart() {
    let s = TestServer::start().await;
    let job = s.open_job().await;
    let (st, first) = publish(&s, &job, Some(b"before-restart"), &batch("a")).await;
    assert_eq!(st, 201);
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let count = event_count(&s, &job).await;
    let (st, again) = publish(&s, &job, Some(b"before-restart"), &batch("a")).await;
    assert_eq!((st, seqs_of(&again)), (200, seqs_of(&first)));
    let (st, v) = publish(&s, &job, Some(b"before-restart"), &batch("z")).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(event_count(&s, &job).await, count);
    s.stop().await;
}

#[tokio::test]
async fn a_key_replays_after_the_job_ended_while_a_new_key_gets_job_terminal() {
    let s = TestServer::start().await;
    // One step far enough away for the publish to come first on any machine.
    let job = s
        .create_job(json!({"steps": 1, "interval_ms": 3_000}))
        .await;
    let (st, first) = publish(&s, &job, Some(b"late-retry"), &batch("a")).await;
    assert_eq!(st, 201, "{first}");
    let done = s.wait_job_done(&job).await;
    assert_eq!(done["state"], "completed");
    let (st, again) = publish(&s, &job, Some(b"late-retry"), &batch("a")).await;
    assert_eq!((st, seqs_of(&again)), (200, seqs_of(&first)));
    let (st, v) = publish(&s, &job, Some(b"new"), &batch("a")).await;
    assert_eq!((st, v["error"].as_str()), (409, Some("job_terminal")));
    s.stop().await;
}

/// `n` simultaneous publishes of one body with one key: (status, seqs) of each.
async fn simultaneous(s: &TestServer, job: &str, n: usize) -> Vec<(u16, Vec<u64>)> {
    let body = batch("same");
    let sends = (0..n).map(|_| publish(s, job, Some(b"one-key"), &body));
    futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|(st, v)| (st, seqs_of(&v)))
        .collect()
}

#[tokio::test]
async fn simultaneous_requests_with_one_key_commit_once() {
    let s = TestServer::start().await;
    for round in 0..5 {
        let job = s.open_job().await;
        let count = event_count(&s, &job).await;
        let got = simultaneous(&s, &job, 16).await;
        let created: Vec<_> = got.iter().filter(|(st, _)| *st == 201).collect();
        assert_eq!(created.len(), 1, "round {round}: {got:?}");
        let seqs = &created[0].1;
        for (st, s2) in &got {
            assert!(*st == 201 || *st == 200, "round {round}: {got:?}");
            assert_eq!(s2, seqs, "round {round}");
        }
        assert_eq!(event_count(&s, &job).await, count + 2, "round {round}");
    }
    s.stop().await;
}

#[tokio::test]
async fn the_fault_idempotency_ignored_commits_every_retry_where_the_clean_server_does_not() {
    let faulty = |c: &mut reference_server::Config| {
        c.faults = FaultSet::new([Fault::IdempotencyIgnored]);
    };
    for (fault, s) in [
        (false, TestServer::start().await),
        (true, TestServer::start_with(faulty).await),
    ] {
        let job = s.open_job().await;
        let count = event_count(&s, &job).await;
        let (st, first) = publish(&s, &job, Some(b"retry"), &batch("a")).await;
        assert_eq!(st, 201);
        let (st, again) = publish(&s, &job, Some(b"retry"), &batch("a")).await;
        let got = simultaneous(&s, &job, 4).await;
        let after = event_count(&s, &job).await;
        if fault {
            // A second copy under new seqs, and one per simultaneous request.
            assert_eq!(st, 201);
            assert_ne!(seqs_of(&again), seqs_of(&first));
            assert!(got.iter().all(|(st, _)| *st == 201), "{got:?}");
            assert_eq!(after, count + 2 * 6);
        } else {
            assert_eq!((st, seqs_of(&again)), (200, seqs_of(&first)));
            assert_eq!(after, count + 2 * 2);
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn a_data_folder_from_before_v1_1_gains_the_key_table_and_keeps_its_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = TestServer::start_in(dir, |_| {}).await;
    let job = s.open_job().await;
    let old = s.publish(&job, 3, "c").await;
    let dir = s.stop().await;
    // What a v1 server left: the same tables without `idempotency_keys`.
    {
        let conn = rusqlite::Connection::open(dir.path().join("spine.db")).expect("open");
        conn.execute_batch("DROP TABLE idempotency_keys;")
            .expect("drop");
    }
    let s = TestServer::start_in(dir, |_| {}).await;
    let count = event_count(&s, &job).await;
    let (st, first) = publish(&s, &job, Some(b"k"), &batch("a")).await;
    assert_eq!(st, 201, "{first}");
    assert!(seqs_of(&first)[0] > *old.last().unwrap());
    let (st, again) = publish(&s, &job, Some(b"k"), &batch("a")).await;
    assert_eq!((st, seqs_of(&again)), (200, seqs_of(&first)));
    assert_eq!(event_count(&s, &job).await, count + 2);
    s.stop().await;
}

#[tokio::test]
async fn an_unknown_job_is_404_whatever_the_key() {
    let s = TestServer::start().await;
    let (st, v) = publish(&s, "nope", Some(b"k"), &batch("a")).await;
    assert_eq!((st, v["error"].as_str()), (404, Some("job_not_found")));
    s.stop().await;
}
