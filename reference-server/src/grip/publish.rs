//! Publishing to a GRIP proxy's HTTP publish API (Pushpin's `POST /publish/`).
//!
//! One worker owns the HTTP client and sends batches from a bounded queue
//! ([`QUEUE_BATCHES`]), each request with a timeout. Two producers feed it:
//!
//! - the log tailer ([`tail_log`]) reads committed events from the store above what it
//!   has published and turns each into items for the channels `events` (the whole log),
//!   `job-<id>` and `task-<id>`, with `id` = the seq and `prev-id` = the seq of the
//!   channel's event before it. It waits for room in the queue: the log itself is the
//!   buffer, so nothing committed is skipped for lack of room;
//! - the version forwarders (`super::version_forwarder`), which do not wait: when the
//!   queue is full their item is dropped, counted and logged.
//!
//! A request that fails (or times out) is logged and counted, never retried: its events
//! are in the log, and the next item on each channel names a `prev-id` the proxy has
//! not seen, so the proxy fetches the gap from the origin through the hold's `Grip-Link`
//! (see `docs/spine-protocol.md`, "GRIP mode"). That is the safety net for every
//! lost or failed publish.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::AppState;
use crate::store::StoredEvent;

/// Batches the publish queue holds before producers wait (the tailer) or drop (the
/// version forwarders).
pub const QUEUE_BATCHES: usize = 64;
/// Events read from the store per tailer turn (so per publish request, three items
/// each).
const TAIL_ROWS: usize = 200;
/// About this many bytes of event payload per tailer turn.
const TAIL_BYTES: usize = 256 * 1024;
/// Jobs whose last seq the tailer remembers; above it the memory is cleared and a
/// job's previous seq is read from the store again.
const MAX_KNOWN_JOBS: usize = 65_536;

/// The channel of the whole log.
pub const ALL_CHANNEL: &str = "events";

/// The channel of one job's events on `/v1/events?job_id=`.
pub fn job_channel(job: &str) -> String {
    format!("job-{job}")
}

/// The channel of one job's task stream (ends with the terminal event).
pub fn task_channel(job: &str) -> String {
    format!("task-{job}")
}

/// One publish request's items, and the log seq they complete (tailer batches).
#[derive(Debug)]
struct Batch {
    items: Vec<Value>,
    through: Option<u64>,
}

/// Counters of the publisher (logged; read by tests).
#[derive(Debug, Default)]
pub struct PublishStats {
    /// Requests the proxy accepted.
    pub requests_ok: AtomicU64,
    /// Requests that failed or timed out (their events are recovered through the link).
    pub requests_failed: AtomicU64,
    /// Batches dropped because the queue was full (version forwarders only).
    pub dropped: AtomicU64,
    /// The log seq through which every event's publish request has been answered (or
    /// has failed): holds are answered up to it, so that their `prev-id` is the one
    /// the next published item names (an answer up to the head would name events still
    /// in flight, and every hold during a burst would need a recovery).
    pub published: AtomicU64,
}

/// The sending side of the publish queue.
#[derive(Debug, Clone)]
pub struct Publisher {
    tx: mpsc::Sender<Batch>,
    stats: Arc<PublishStats>,
}

impl Publisher {
    /// Queues `items` without waiting; `false` (counted, logged) when the queue is full
    /// or closed.
    pub fn offer(&self, items: Vec<Value>) -> bool {
        match self.tx.try_send(Batch {
            items,
            through: None,
        }) {
            Ok(()) => true,
            Err(e) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "grip: publish queue full or closed; item dropped");
                false
            }
        }
    }

    /// Queues `items` that complete the log through seq `through`, waiting for room;
    /// `false` once the worker is gone.
    async fn send(&self, items: Vec<Value>, through: u64) -> bool {
        let through = Some(through);
        self.tx.send(Batch { items, through }).await.is_ok()
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<PublishStats> {
        &self.stats
    }
}

/// Starts the worker posting to `url` (each request bounded by `timeout`); returns the
/// queue's sending side.
pub fn start_worker(
    url: String,
    timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Publisher, reqwest::Error> {
    // reqwest is built without a TLS provider; the publish URL is plain http, but the
    // client needs one to build.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        .build()?;
    let (tx, mut rx) = mpsc::channel::<Batch>(QUEUE_BATCHES);
    let stats = Arc::new(PublishStats::default());
    let counters = stats.clone();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                biased;
                m = rx.recv() => m,
                _ = shutdown.wait_for(|v| *v) => None,
            };
            let items = match next {
                Some(m) => m,
                None => {
                    // Shutting down (or every sender gone): post what is queued (each
                    // request still bounded), then stop.
                    rx.close();
                    match rx.recv().await {
                        Some(m) => m,
                        None => break,
                    }
                }
            };
            post(&client, &url, items.items, &counters).await;
            if let Some(seq) = items.through {
                counters.published.fetch_max(seq, Ordering::Relaxed);
            }
        }
    });
    Ok(Publisher { tx, stats })
}

async fn post(client: &reqwest::Client, url: &str, items: Vec<Value>, stats: &PublishStats) {
    let n = items.len();
    let body = json!({ "items": items }).to_string();
    let sent = client
        .post(url)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            stats.requests_ok.fetch_add(1, Ordering::Relaxed);
        }
        Ok(r) => {
            stats.requests_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(status = %r.status(), items = n, "grip: publish refused; the proxy recovers the gap through Grip-Link");
        }
        Err(e) => {
            stats.requests_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, items = n, "grip: publish failed; the proxy recovers the gap through Grip-Link");
        }
    }
}

/// One `http-stream` item with content.
pub fn content_item(channel: &str, ids: Option<(String, String)>, content: String) -> Value {
    let mut item = json!({
        "channel": channel,
        "formats": { "http-stream": { "content": content } },
    });
    if let Some((id, prev)) = ids {
        item["id"] = json!(id);
        item["prev-id"] = json!(prev);
    }
    item
}

/// The `http-stream` close instruction, chained after `prev` (a hold with a `prev-id`
/// treats an item without one as a gap).
pub fn close_item(channel: &str, prev: u64) -> Value {
    json!({
        "channel": channel,
        "id": format!("{prev}-close"),
        "prev-id": prev.to_string(),
        "formats": { "http-stream": { "action": "close" } },
    })
}

/// The log tailer's memory: the last published seq of the log and of each job.
struct Tail {
    cursor: u64,
    jobs: HashMap<String, u64>,
}

/// Publishes every event committed after the head at start, until shutdown.
pub async fn tail_log(state: AppState, publisher: Publisher) {
    let mut head = state.store.subscribe_head();
    let mut shutdown = state.shutdown.clone();
    let mut tail = Tail {
        cursor: *head.borrow_and_update(),
        jobs: HashMap::new(),
    };
    publisher
        .stats
        .published
        .fetch_max(tail.cursor, Ordering::Relaxed);
    loop {
        let seen = *head.borrow_and_update();
        if tail.cursor < seen {
            if !publish_page(&state, &publisher, &mut tail, seen).await {
                return;
            }
            continue;
        }
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|v| *v) => return,
            r = head.changed() => if r.is_err() { return },
        }
    }
}

/// Publishes one page of events above `tail.cursor` (up to `seen`); `false` once the
/// worker is gone.
async fn publish_page(state: &AppState, publisher: &Publisher, tail: &mut Tail, seen: u64) -> bool {
    let page = match state
        .store
        .page(tail.cursor, seen, None, TAIL_ROWS, TAIL_BYTES)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            // Not published: a later item names a prev-id the proxy has not seen, and
            // the proxy recovers through the link.
            tracing::warn!(error = %e, "grip: reading the log failed; skipping to the head");
            tail.cursor = seen;
            publisher.stats.published.fetch_max(seen, Ordering::Relaxed);
            return true;
        }
    };
    let cid = super::cid_json(state);
    let mut items = Vec::with_capacity(page.events.len() * 3);
    let mut prev_all = tail.cursor;
    for ev in &page.events {
        let prev_job = match tail.jobs.get(&ev.job_id) {
            Some(p) => *p,
            None => super::last_seq_of(state, Some(&ev.job_id), ev.seq - 1)
                .await
                .unwrap_or(0),
        };
        if tail.jobs.len() >= MAX_KNOWN_JOBS {
            tail.jobs.clear();
        }
        tail.jobs.insert(ev.job_id.clone(), ev.seq);
        items.extend(event_items(ev, prev_all, prev_job, &cid));
        prev_all = ev.seq;
    }
    tail.cursor = page.scanned_to;
    if items.is_empty() {
        publisher
            .stats
            .published
            .fetch_max(tail.cursor, Ordering::Relaxed);
        return true;
    }
    publisher.send(items, tail.cursor).await
}

/// The items of one event: on the whole log, on its job, and on its task stream (where
/// a terminal event is followed by `connection_close` and the close instruction).
fn event_items(ev: &StoredEvent, prev_all: u64, prev_job: u64, cid: &str) -> Vec<Value> {
    let frame = super::event_frame(ev, cid);
    let seq = ev.seq.to_string();
    let job_ids = || Some((seq.clone(), prev_job.to_string()));
    let mut items = vec![
        content_item(
            ALL_CHANNEL,
            Some((seq.clone(), prev_all.to_string())),
            frame.clone(),
        ),
        content_item(&job_channel(&ev.job_id), job_ids(), frame.clone()),
    ];
    let task = task_channel(&ev.job_id);
    if super::is_terminal(&ev.event_type) {
        let close =
            super::lifecycle_frame("connection_close", json!({ "reason": ev.event_type }), cid);
        items.push(content_item(&task, job_ids(), frame + &close));
        items.push(close_item(&task, ev.seq));
    } else {
        items.push(content_item(&task, job_ids(), frame));
    }
    items
}
