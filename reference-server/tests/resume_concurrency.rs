//! The replay→live boundary under concurrent publishing: 5,000 events from several
//! publisher tasks while clients cut and resume repeatedly with `Last-Event-ID`; every
//! client sees every acknowledged seq exactly once, in order.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Frame, TestServer};
use tokio::sync::watch;
use tokio::time::Instant;

const PUBLISHERS: usize = 4;
const BATCHES: usize = 25;
const BATCH: usize = 50;

/// Reads `path` with cuts every few events, resuming from the last id, until it has
/// seen `final_seq`; returns every custom event's seq it received, in order.
async fn resuming_client(
    s: Arc<TestServer>,
    path: String,
    seed: u64,
    cut: bool,
    mut final_seq: watch::Receiver<Option<u64>>,
) -> (Vec<u64>, usize) {
    let mut rng = seed;
    let mut next = || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % 300 + 1
    };
    let mut last_id: Option<String> = None;
    let mut got = Vec::new();
    let mut connections = 0;
    let end = Instant::now() + Duration::from_secs(120);
    'outer: loop {
        assert!(Instant::now() < end, "client did not catch up in time");
        connections += 1;
        let headers: Vec<(&str, &str)> = match &last_id {
            Some(id) => vec![("Last-Event-ID", id.as_str())],
            None => vec![],
        };
        let mut r = s.open(&path, &headers).await;
        assert_eq!(r.status, 200);
        let budget = if cut { next() } else { u64::MAX };
        let mut read = 0;
        loop {
            let done = *final_seq.borrow_and_update();
            if let (Some(done), Some(id)) = (done, &last_id)
                && id.parse::<u64>().unwrap() >= done
            {
                break 'outer;
            }
            let f: Frame = match r.next_within(Duration::from_secs(20)).await {
                Some(f) => f,
                None => panic!("stream ended"),
            };
            if f.is("task_event") {
                let d = f.json();
                let seq = d["seq"].as_u64().unwrap();
                assert_eq!(f.id.as_deref(), Some(seq.to_string().as_str()));
                if d["event_type"] == "load" {
                    got.push(seq);
                }
                last_id = f.id.clone();
                read += 1;
                if read >= budget {
                    continue 'outer;
                }
            }
        }
    }
    (got, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_client_sees_every_acked_seq_once_in_order_across_resumes() {
    let s = Arc::new(TestServer::start().await);
    let job = s.open_job().await;
    let (final_tx, final_rx) = watch::channel(None);

    let mut clients = Vec::new();
    for i in 0..4u64 {
        let path = if i % 2 == 0 {
            format!("/v1/events?job_id={job}")
        } else {
            "/v1/events".to_owned()
        };
        clients.push(tokio::spawn(resuming_client(
            s.clone(),
            path,
            i + 1,
            true,
            final_rx.clone(),
        )));
    }
    clients.push(tokio::spawn(resuming_client(
        s.clone(),
        format!("/v1/jobs/{job}/events"),
        99,
        false,
        final_rx.clone(),
    )));

    let mut publishers = Vec::new();
    for _ in 0..PUBLISHERS {
        let s = s.clone();
        let job = job.clone();
        publishers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for _ in 0..BATCHES {
                acked.extend(s.publish(&job, BATCH, "load").await);
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for p in publishers {
        acked.extend(p.await.unwrap());
    }
    acked.sort_unstable();
    assert_eq!(acked.len(), PUBLISHERS * BATCHES * BATCH);
    assert!(acked.windows(2).all(|w| w[0] < w[1]), "seqs are unique");
    final_tx.send_replace(acked.last().copied());

    for c in clients {
        let (got, connections) = c.await.unwrap();
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "in order, no duplicate"
        );
        assert_eq!(got.len(), acked.len(), "no gap ({connections} connections)");
        assert_eq!(got, acked);
    }
    Arc::into_inner(s).expect("clients done").stop().await;
}
