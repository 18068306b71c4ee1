//! SSE streams. A log stream is a cursor over the store: it pages `seq > cursor` up to
//! the head it has seen, and only when caught up waits for the head to move (or for a
//! heartbeat to fall due, or for shutdown). So replay and live are the same loop, with
//! no gap and no duplicate at the boundary by construction, and a slow reader just
//! lags: the body is pulled by hyper only as fast as the socket drains, and each pull
//! holds at most one page. An idle stream is a parked future, not a thread.
//!
//! The framing is written here (not with axum's `Sse`) because the protocol fixes the
//! bytes: a `retry:` block of its own, lifecycle frames without `id:`, one chunk per
//! flush.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::faults::{
    AHEAD_NEAR_HEAD_BY, DROP_EVERY_CONN, DROP_EVERY_SEQ, Fault, LATE_HEARTBEAT_FACTOR,
    LEAK_EVERY_SEQ, OVERSIZED_PAD, SLOW_CUT_LAG, SLOW_DROP_KEEP, SLOW_DROP_LAG, STALE_HEAD_BY,
};
use crate::metrics::ActiveStream;
use crate::store::{FramePage, FrameSpec, StoredEvent, json_str, now_ts};
use crate::variants::{SLOW_CLOSE_LAG, SMALL_PAGE_ROWS, Variant};
use crate::version::{VersionMsg, VersionSubscription};

/// Rows per page read from the store.
const PAGE_ROWS: usize = 2000;
/// About this many bytes per page (and so per chunk written).
const PAGE_BYTES: usize = 256 * 1024;

/// The query parameters the streams read (others are ignored).
#[derive(Debug, Deserialize, Default)]
pub struct StreamQuery {
    /// Filter of `/v1/events`.
    pub job_id: Option<String>,
    /// Cursor when no `Last-Event-ID` header is sent.
    pub last_event_id: Option<String>,
    /// The version stream's request id.
    pub request_id: Option<String>,
}

/// Which stream a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamName {
    /// `/v1/events`.
    Events,
    /// `/v1/jobs/<id>/events`.
    Task,
    /// `/v1/version/stream`.
    Version,
}

impl StreamName {
    fn as_str(self) -> &'static str {
        match self {
            StreamName::Events => "events",
            StreamName::Task => "task",
            StreamName::Version => "version",
        }
    }
}

/// Parses a cursor: absent or empty is `None`; anything but a decimal u64 is an error.
pub fn parse_cursor(headers: &HeaderMap, query: Option<&str>) -> Result<Option<u64>, ApiError> {
    parse_cursor_value(
        headers.get("last-event-id").map(HeaderValue::as_bytes),
        query,
    )
}

/// [`parse_cursor`] on the raw `Last-Event-ID` header bytes (which must be visible
/// ASCII, as a header's text) and the `last_event_id` query value: the header wins
/// unless absent or empty.
pub fn parse_cursor_value(
    header: Option<&[u8]>,
    query: Option<&str>,
) -> Result<Option<u64>, ApiError> {
    let from_header = header
        .map(|v| {
            if v.iter().all(|&b| (0x20..0x7f).contains(&b) || b == b'\t') {
                // Visible ASCII is UTF-8.
                Ok(String::from_utf8_lossy(v))
            } else {
                Err(bad_cursor("Last-Event-ID is not ASCII"))
            }
        })
        .transpose()?
        .filter(|s| !s.is_empty());
    let raw = from_header.or_else(|| query.filter(|s| !s.is_empty()).map(Cow::Borrowed));
    match raw {
        None => Ok(None),
        Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| bad_cursor("cursor is above u64")),
        Some(_) => Err(bad_cursor("cursor is not a decimal u64")),
    }
}

fn bad_cursor(detail: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidLastEventId, detail)
}

fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Where a stream's frames come from.
enum Source {
    /// The log, optionally of one job; `task` marks the task stream (ends at terminal).
    Log {
        job: Option<String>,
        task: bool,
        cursor: u64,
        head: watch::Receiver<u64>,
    },
    /// Version notifications for one request id.
    Version {
        sub: VersionSubscription,
        replaced: Option<oneshot::Receiver<()>>,
    },
}

/// Per-stream state of the faults that need some; untouched while none of them is on.
#[derive(Debug, Default)]
struct FaultState {
    /// The 1-based ordinal of this log stream ([`Fault::DropForSomeClients`],
    /// [`Fault::PerClientPayload`]); 0 when neither is on.
    conn: u64,
    /// [`Fault::ForkByPeer`]: this stream's client is not at the first address seen.
    forked: bool,
    /// [`Fault::Reorder`]: an event frame held back to be written after the next one.
    held: Option<Bytes>,
    /// [`Fault::LiveBoundaryRace`]: the head when the stream opened (where its replay
    /// ends) ...
    replay_end: u64,
    /// ... and whether it has switched to live since.
    live: bool,
    /// [`Fault::SlowConsumerAbort`], [`Fault::TaskStreamAbort`]: end the body with an
    /// error once the frames before have been written (hyper then closes the
    /// connection inside the chunked body).
    abort: bool,
    /// [`Fault::GlobalWriteLock`]: the lock, held from a chunk's hand-over until the
    /// body is polled again.
    write_guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// [`Fault::HeadHeld`]: the handler is still holding the response (no heartbeats
    /// meanwhile) ...
    holding: bool,
    /// ... until a data frame (event or version) has been queued.
    data_queued: bool,
    /// [`Fault::OneBehind`]: the newest event frame, written only after the next one.
    behind: Option<Bytes>,
}

/// One open stream: the frames waiting to be written and where more come from.
struct Stream {
    state: AppState,
    cid_json: String,
    /// What follows an event's stored frame: `,"correlation_id":<cid>}\n\n`.
    frame_end: Bytes,
    out: VecDeque<Bytes>,
    done: bool,
    source: Source,
    last_write: Instant,
    shutdown: watch::Receiver<bool>,
    fault: FaultState,
    /// `None` only once [`Fault::LeakClosedStreams`] has leaked it.
    active: Option<ActiveStream>,
    /// Whether a chunk was written yet (the first is the `retry:` block).
    started: bool,
    /// [`Variant::SplitWrites`]: the second half of the last chunk, still to write.
    split_rest: Option<Bytes>,
    /// [`Variant::SlowConsumerClose`]: whether this log stream has caught up with the
    /// head once (only then is falling behind a slow consumer, not a replay).
    caught_up: bool,
}

impl Drop for Stream {
    fn drop(&mut self) {
        let vanished = !(self.done && self.out.is_empty() && self.split_rest.is_none());
        if vanished && self.state.faults.has(Fault::LeakClosedStreams) {
            // Fault LeakClosedStreams: the client is gone, its stream is never freed.
            if let Some(active) = self.active.take() {
                self.state.fault_counters.leak(Box::new(active));
            }
        }
    }
}

/// What woke a caught-up log stream.
enum LogWoke {
    Stop,
    Head(bool),
    Beat,
}

impl Stream {
    fn new(state: AppState, cid: &str, source: Source) -> Stream {
        let shutdown = state.shutdown.clone();
        let active = (!state.faults.has(Fault::GaugeNeverCounts))
            .then(|| ActiveStream::new(state.metrics.clone()));
        let mut out = VecDeque::new();
        if !state.faults.has(Fault::NoRetry) {
            out.push_back(Bytes::from(format!("retry: {}\n\n", state.retry_ms)));
        }
        let mut fault = FaultState::default();
        if let Source::Log { head, .. } = &source {
            if state.faults.has(Fault::DropForSomeClients)
                || state.faults.has(Fault::PerClientPayload)
            {
                fault.conn = state.fault_counters.next_connection();
            }
            if state.faults.has(Fault::LiveBoundaryRace) {
                fault.replay_end = *head.borrow();
            }
        }
        let cid_json = json_str(cid);
        let frame_end = Bytes::from(format!(",\"correlation_id\":{cid_json}}}\n\n"));
        Stream {
            state,
            cid_json,
            frame_end,
            out,
            done: false,
            source,
            last_write: Instant::now(),
            shutdown,
            fault,
            active,
            started: false,
            split_rest: None,
            caught_up: false,
        }
    }

    /// The connection's correlation id as a JSON string.
    fn cid(&self) -> Cow<'_, str> {
        if self.state.faults.has(Fault::CorrelationIdPerFrame) {
            Cow::Owned(json_str(&uuid::Uuid::new_v4().to_string()))
        } else {
            Cow::Borrowed(&self.cid_json)
        }
    }

    /// The `head_seq` to announce for the committed head `head`.
    fn announced_head(&self, head: u64) -> u64 {
        if self.state.faults.has(Fault::StaleHead) {
            head.saturating_sub(STALE_HEAD_BY)
        } else {
            head
        }
    }

    /// A lifecycle frame (no `id:`), `data` an object to which the correlation id is added.
    fn lifecycle(&mut self, event: &str, data: Value) {
        let mut data = data.to_string();
        data.pop();
        if !data.ends_with('{') {
            data.push(',');
        }
        let id_line = if self.state.faults.has(Fault::IdOnLifecycle)
            && matches!(event, "connection_open" | "connection_close")
        {
            format!("id: {}\n", self.state.store.head())
        } else {
            String::new()
        };
        let frame = format!(
            "{id_line}event: {event}\ndata: {data}\"correlation_id\":{}}}\n\n",
            self.cid()
        );
        self.out.push_back(Bytes::from(frame));
    }

    /// [`Fault::Reorder`]: writes the held-back event frame, if any.
    fn flush_held(&mut self) {
        if let Some(h) = self.fault.held.take() {
            self.out.push_back(h);
        }
    }

    /// [`Fault::OneBehind`]: writes the event held back, if any (as the stream ends).
    fn flush_behind(&mut self) {
        if let Some(b) = self.fault.behind.take() {
            self.out.push_back(b);
        }
    }

    fn close(&mut self, reason: &str) {
        self.flush_held();
        self.flush_behind();
        self.lifecycle("connection_close", json!({ "reason": reason }));
        self.done = true;
        if self.state.faults.has(Fault::EventAfterClose) {
            self.heartbeat();
        }
    }

    fn fail(&mut self, code: &str, message: &str) {
        if !self.state.faults.has(Fault::CloseWithoutError) {
            self.lifecycle("error", json!({ "code": code, "message": message }));
        }
        self.close(code);
    }

    /// The server is shutting down: the last frame is `connection_close
    /// server_shutdown`.
    fn shut_down(&mut self) {
        if self.state.faults.has(Fault::ShutdownWithoutClose) {
            self.flush_held();
            self.flush_behind();
            self.done = true;
        } else if self.state.faults.has(Fault::ShutdownReasonUnknown) {
            self.close("shutdown");
        } else {
            self.close("server_shutdown");
        }
    }

    fn heartbeat(&mut self) {
        self.flush_held();
        if self.state.faults.has(Fault::IdleSilentClose) {
            // Fault IdleSilentClose: the heartbeat that fell due ends the response.
            self.done = true;
            return;
        }
        let mut head = self.announced_head(self.state.store.head());
        if self.state.faults.has(Fault::HeartbeatStaleHead) {
            head = head.saturating_sub(STALE_HEAD_BY);
        }
        let data = if self.state.faults.has(Fault::HeartbeatWithoutHead) {
            json!({ "server_time": now_ts() })
        } else {
            json!({ "server_time": now_ts(), "head_seq": head })
        };
        self.lifecycle("heartbeat", data);
    }

    /// The next chunk to write; an error only under the abort faults.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        // Polled again: the previous chunk is written.
        self.fault.write_guard = None;
        if let Some(rest) = self.split_rest.take() {
            // Variant SplitWrites: the body yields once, so hyper writes the first half
            // to the socket on its own before it gets this one.
            tokio::task::yield_now().await;
            self.last_write = Instant::now();
            return Some(Ok(rest));
        }
        loop {
            if let Some(b) = self.out.pop_front() {
                if self.state.faults.has(Fault::GlobalWriteLock) {
                    let lock = self.state.fault_counters.write_lock.clone();
                    self.fault.write_guard = Some(lock.lock_owned().await);
                }
                self.last_write = Instant::now();
                return Some(Ok(self.on_wire(b)));
            }
            if self.fault.abort {
                self.fault.abort = false;
                self.done = true;
                return Some(Err(std::io::Error::other("aborted by a fault")));
            }
            if self.done {
                return None;
            }
            if *self.shutdown.borrow() {
                self.shut_down();
                continue;
            }
            self.fill().await;
        }
    }

    /// A chunk as the wire variants write it (see [`crate::variants`]): comments, CRLF,
    /// and with [`Variant::SplitWrites`] only its first half (the rest is kept for the
    /// next write).
    fn on_wire(&mut self, chunk: Bytes) -> Bytes {
        let first = !self.started;
        self.started = true;
        let v = &self.state.variants;
        if v.is_empty() {
            return chunk;
        }
        let chunk = v.rewrite(chunk, first);
        if v.has(Variant::SplitWrites) && chunk.len() >= 2 {
            let mid = chunk.len() / 2;
            self.split_rest = Some(chunk.slice(mid..));
            return chunk.slice(..mid);
        }
        chunk
    }

    /// [`Variant::SlowConsumerClose`]: `error` and `connection_close` with
    /// `slow_consumer`, counted in `spine_slow_consumer_closes_total`.
    fn close_slow_consumer(&mut self) {
        self.state
            .metrics
            .slow_consumer_closes
            .fetch_add(1, Ordering::Relaxed);
        self.fail(
            "slow_consumer",
            "the client reads too slowly; resume from the last event id",
        );
    }

    fn heartbeat_due(&self) -> Option<Instant> {
        let f = &self.state.faults;
        // Fault HeadHeld: no heartbeat while the handler holds the response.
        if f.has(Fault::HeartbeatAbsent) || f.has(Fault::LeakClosedStreams) || self.fault.holding {
            None
        } else if f.has(Fault::HeartbeatLate) {
            Some(self.last_write + self.state.heartbeat * LATE_HEARTBEAT_FACTOR)
        } else if f.has(Fault::IdleSilentClose) {
            Some(self.last_write + self.state.heartbeat * 5 / 2)
        } else {
            Some(self.last_write + self.state.heartbeat)
        }
    }

    /// Produces at least one frame, or sets `done`.
    async fn fill(&mut self) {
        let due = self.heartbeat_due();
        let sleep = async move {
            match due {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let mut shutdown = self.shutdown.clone();
        let stop = async move {
            let _ = shutdown.wait_for(|v| *v).await;
        };
        match &mut self.source {
            Source::Log {
                task, cursor, head, ..
            } => {
                let mut seen = *head.borrow_and_update();
                let faults = &self.state.faults;
                let lag = seen.saturating_sub(*cursor);
                if self.caught_up && !*task && lag > SLOW_CLOSE_LAG {
                    // Variant SlowConsumerClose (caught_up is only set with it on).
                    self.close_slow_consumer();
                    return;
                }
                if faults.has(Fault::SlowConsumerAbruptClose) && lag > SLOW_CUT_LAG {
                    // The response just ends: no connection_close.
                    self.done = true;
                    return;
                }
                if faults.has(Fault::SlowConsumerAbort) && lag > SLOW_CUT_LAG {
                    self.fault.abort = true;
                    return;
                }
                if faults.has(Fault::SlowConsumerDrop) && lag > SLOW_DROP_LAG {
                    *cursor = seen - SLOW_DROP_KEEP;
                }
                let racing = faults.has(Fault::LiveBoundaryRace) && !self.fault.live;
                if racing {
                    seen = seen.min(self.fault.replay_end);
                }
                if *cursor < seen {
                    self.read_page(seen).await;
                    return;
                }
                self.caught_up = self.state.variants.has(Variant::SlowConsumerClose);
                let woke = tokio::select! {
                    biased;
                    _ = stop => LogWoke::Stop,
                    r = head.changed() => LogWoke::Head(r.is_ok()),
                    _ = sleep => LogWoke::Beat,
                };
                if racing && matches!(woke, LogWoke::Head(true)) {
                    // Fault LiveBoundaryRace: the replay is over and this is the first
                    // live notification; go on above the head it announces, skipping
                    // whatever was committed since the replay's head.
                    *cursor = (*cursor).max(*head.borrow_and_update());
                    self.fault.live = true;
                }
                match woke {
                    LogWoke::Stop | LogWoke::Head(false) => self.shut_down(),
                    LogWoke::Head(true) => {}
                    LogWoke::Beat => self.heartbeat(),
                }
            }
            Source::Version { .. } => self.fill_version(sleep, stop).await,
        }
    }

    /// A version stream's turn: the next notification, its replacement, a heartbeat or
    /// the shutdown, whichever comes first.
    async fn fill_version(
        &mut self,
        sleep: impl std::future::Future<Output = ()>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let Source::Version { sub, replaced } = &mut self.source else {
            return;
        };
        let replaced_fut = async {
            match replaced.as_mut() {
                Some(r) => r.await.is_ok(),
                None => std::future::pending().await,
            }
        };
        enum Woke {
            Stop,
            Replaced(bool),
            Msg(Option<VersionMsg>),
            Beat,
        }
        let woke = tokio::select! {
            biased;
            _ = stop => Woke::Stop,
            r = replaced_fut => Woke::Replaced(r),
            m = sub.recv() => Woke::Msg(m),
            _ = sleep => Woke::Beat,
        };
        match woke {
            Woke::Stop => self.shut_down(),
            Woke::Replaced(true) => self.close("replaced"),
            Woke::Replaced(false) => {
                if let Source::Version { replaced, .. } = &mut self.source {
                    *replaced = None;
                }
            }
            Woke::Msg(Some(m)) => self.push_version(&m),
            Woke::Msg(None) => self.close("replaced"),
            Woke::Beat => self.heartbeat(),
        }
    }

    /// Reads the log stream's next page (`cursor < seq <= seen`) and queues its frames.
    async fn read_page(&mut self, seen: u64) {
        let Source::Log {
            job, task, cursor, ..
        } = &self.source
        else {
            return;
        };
        let (after, task, job) = (*cursor, *task, job.clone());
        let faults = &self.state.faults;
        // Fault FilterLeaksOtherJobs: read every job, keep some of the others.
        let leak = faults.has(Fault::FilterLeaksOtherJobs) && !task;
        let filter = if leak { None } else { job.as_deref() };
        let rows = page_rows(&self.state.variants);
        let store = &self.state.store;
        let scanned_to = if faults.is_empty() {
            // No fault bends an event frame: the stored frames as they are.
            let page = store
                .page_frames(
                    after,
                    seen,
                    filter,
                    rows,
                    PAGE_BYTES,
                    FrameSpec {
                        suffix: self.frame_end.clone(),
                        until_terminal: task,
                    },
                )
                .await;
            page.map(|p| {
                let to = p.scanned_to;
                self.push_frames(p);
                to
            })
        } else {
            let page = store.page(after, seen, filter, rows, PAGE_BYTES).await;
            page.map(|mut page| {
                if leak && let Some(j) = job.as_deref() {
                    page.events
                        .retain(|e| e.job_id == j || e.seq.is_multiple_of(LEAK_EVERY_SEQ));
                }
                self.push_events(&page.events, task);
                page.scanned_to
            })
        };
        match scanned_to {
            Ok(to) => {
                if let Source::Log { cursor, .. } = &mut self.source {
                    *cursor = to;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "stream page read failed");
                self.fail("internal", "store read failed");
            }
        }
    }

    /// Queues a page of ready frames (no fault on: see [`Stream::read_page`]).
    fn push_frames(&mut self, p: FramePage) {
        self.state
            .metrics
            .events_delivered
            .fetch_add(p.events, Ordering::Relaxed);
        if !p.bytes.is_empty() {
            self.fault.data_queued = true;
            self.out.push_back(p.bytes);
        }
        if let Some(reason) = p.terminal {
            self.close(&reason);
        }
    }

    /// Writes one event frame into `buf`.
    fn write_event(&self, buf: &mut BytesMut, ev: &StoredEvent) {
        let faults = &self.state.faults;
        let progress = ev.event_type == "progress_update";
        if faults.has(Fault::NonJsonData) && progress {
            buf.put_slice(
                format!(
                    "id: {}\nevent: task_event\ndata: progress update {} of job {}\n\n",
                    ev.seq, ev.seq, ev.job_id
                )
                .as_bytes(),
            );
            return;
        }
        let _ = write!(buf, "id: {}\nevent: task_event\ndata: ", ev.seq);
        // A field added inside the payload, which ends the wire prefix.
        let extra = if faults.has(Fault::PerClientPayload) {
            Some(format!("\"conn\":{}", self.fault.conn).into_bytes())
        } else if faults.has(Fault::InvalidUtf8) && progress {
            Some(b"\"note\":\"\xff\"".to_vec())
        } else {
            None
        };
        match extra {
            Some(extra) => {
                let prefix = ev.wire_prefix().as_bytes();
                buf.put_slice(&prefix[..prefix.len() - 1]);
                if ev.payload != "{}" {
                    buf.put_u8(b',');
                }
                buf.put_slice(&extra);
                buf.put_u8(b'}');
            }
            None if faults.has(Fault::ReencodeAscii) => {
                let ascii: String = ev
                    .wire_prefix()
                    .chars()
                    .map(|c| if c.is_ascii() { c } else { '?' })
                    .collect();
                buf.put_slice(ascii.as_bytes());
            }
            None if faults.has(Fault::UnescapedEventType) => {
                // A hand-rolled formatter: the event type as published, unescaped.
                let escaped = serde_json::Value::from(ev.event_type.as_str()).to_string();
                let raw = format!("\"{}\"", ev.event_type);
                buf.put_slice(ev.wire_prefix().replacen(&escaped, &raw, 1).as_bytes());
            }
            None if self.fault.forked => {
                // Fault ForkByPeer: the same instant, written `+00:00` for `Z`.
                let ts = json_str(&ev.ts);
                let other = json_str(&format!("{}+00:00", ev.ts.trim_end_matches('Z')));
                buf.put_slice(ev.wire_prefix().replacen(&ts, &other, 1).as_bytes());
            }
            None => buf.put_slice(ev.wire_prefix().as_bytes()),
        }
        buf.put_slice(b",\"correlation_id\":");
        buf.put_slice(self.cid().as_bytes());
        buf.put_slice(b"}\n\n");
    }

    fn push_events(&mut self, events: &[Arc<StoredEvent>], task: bool) {
        if events.is_empty() {
            return;
        }
        let mut buf = BytesMut::new();
        let mut n = 0u64;
        let mut terminal = None;
        for ev in events {
            if task && matches!(ev.event_type.as_str(), "task_completed" | "task_failed") {
                if self.state.faults.has(Fault::TaskStreamAbort) {
                    // Fault TaskStreamAbort: abort where the terminal event belongs.
                    self.fault.abort = true;
                    break;
                }
                terminal = Some(ev.event_type.clone());
            }
            let skip = self.state.faults.has(Fault::DropForSomeClients)
                && self.fault.conn.is_multiple_of(DROP_EVERY_CONN)
                && ev.seq.is_multiple_of(DROP_EVERY_SEQ);
            if !skip {
                if self.state.faults.has(Fault::Reorder) {
                    let mut frame = BytesMut::new();
                    self.write_event(&mut frame, ev);
                    match self.fault.held.take() {
                        None => self.fault.held = Some(frame.freeze()),
                        Some(held) => {
                            buf.put_slice(&frame);
                            buf.put_slice(&held);
                        }
                    }
                } else if self.state.faults.has(Fault::OneBehind) {
                    // Fault OneBehind: this event waits for the next; the one before goes.
                    let mut frame = BytesMut::new();
                    self.write_event(&mut frame, ev);
                    if let Some(prev) = self.fault.behind.replace(frame.freeze()) {
                        buf.put_slice(&prev);
                    }
                } else {
                    self.write_event(&mut buf, ev);
                }
                n += 1;
            }
            if terminal.is_some() {
                break;
            }
        }
        self.state
            .metrics
            .events_delivered
            .fetch_add(n, Ordering::Relaxed);
        if !buf.is_empty() {
            self.fault.data_queued = true;
            self.out.push_back(buf.freeze());
        }
        if let Some(reason) = terminal
            && !self.state.faults.has(Fault::NoCloseAfterTerminal)
        {
            self.close(&reason);
        }
    }

    fn push_version(&mut self, m: &VersionMsg) {
        let data = if self.state.faults.has(Fault::VersionMissingFields) {
            json!({
                "request_id": m.request_id,
                "version": m.version,
                "environment": m.environment,
            })
        } else {
            json!({
                "request_id": m.request_id,
                "version": m.version,
                "environment": m.environment,
                "git_commit": m.git_commit,
            })
        };
        let mut data = data.to_string();
        data.pop();
        let frame = format!(
            "event: version\ndata: {data},\"correlation_id\":{}}}\n\n",
            self.cid()
        );
        self.fault.data_queued = true;
        self.out.push_back(Bytes::from(frame));
    }

    fn open(&mut self, name: StreamName, head: u64, resume_from: Option<u64>) {
        if self.state.faults.has(Fault::NoConnectionOpen) {
            return;
        }
        let hb = self.state.heartbeat.as_millis() as u64;
        let head = self.announced_head(head);
        let mut fields = json!({
            "stream": name.as_str(),
            "head_seq": head,
            "resume_from": resume_from,
            "heartbeat_ms": hb,
            "write_stall_ms": self.state.limits.write_stall_timeout.as_millis() as u64,
        });
        if self.state.faults.has(Fault::OversizedOpen) && name == StreamName::Events {
            fields["pad"] = json!("x".repeat(OVERSIZED_PAD));
        }
        self.lifecycle("connection_open", fields);
    }

    /// [`Fault::HeadHeld`]: fills the stream (without heartbeats) until a data frame is
    /// queued or the stream ends, so that the handler answers only then.
    async fn hold_head(&mut self) {
        self.fault.holding = true;
        while !self.fault.data_queued && !self.done && !self.fault.abort {
            if *self.shutdown.borrow() {
                self.shut_down();
            } else {
                self.fill().await;
            }
        }
        self.fault.holding = false;
        self.last_write = Instant::now();
    }

    /// The response, once [`Fault::HeadHeld`] lets it go (at once without it).
    async fn respond(mut self) -> Response {
        if self.state.faults.has(Fault::HeadHeld) {
            self.hold_head().await;
        }
        self.into_response()
    }

    fn into_response(self) -> Response {
        let content_type = if self.state.faults.has(Fault::WrongContentType) {
            "text/plain"
        } else if self.state.faults.has(Fault::Latin1Charset) {
            "text/event-stream; charset=iso-8859-1"
        } else if self.state.variants.has(Variant::CharsetUtf8) {
            "text/event-stream; charset=utf-8"
        } else {
            "text/event-stream"
        };
        let body = Body::from_stream(futures_util::stream::unfold(self, |mut s| async move {
            s.next_chunk().await.map(|b| (b, s))
        }));
        let mut resp = body.into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        resp
    }
}

/// Rows per page read from the store ([`Variant::SmallReplayPages`]: a few).
fn page_rows(variants: &crate::variants::VariantSet) -> usize {
    if variants.has(Variant::SmallReplayPages) {
        SMALL_PAGE_ROWS
    } else {
        PAGE_ROWS
    }
}

fn query_or_err(q: Result<Query<StreamQuery>, QueryRejection>) -> Result<StreamQuery, ApiError> {
    q.map(|Query(q)| q).map_err(ApiError::from)
}

/// The cursor of a stream request, as [`parse_cursor`] reads it (and as the cursor
/// faults bend it).
fn request_cursor(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<u64>, ApiError> {
    let header_less;
    let headers = if state.faults.has(Fault::QueryTokenDropsCursor)
        && !headers.contains_key(header::AUTHORIZATION)
    {
        // Fault QueryTokenDropsCursor: a query-authenticated request loses its headers.
        header_less = HeaderMap::new();
        &header_less
    } else {
        headers
    };
    let cursor = match parse_cursor(headers, query) {
        Err(_) if state.faults.has(Fault::InvalidCursorAccepted) => None,
        Err(_) if state.faults.has(Fault::GarbageCursorLiveOnly) => Some(state.store.head()),
        r => r?,
    };
    if state.faults.has(Fault::IgnoreCursor) {
        return Ok(None);
    }
    Ok(cursor)
}

/// Where a log stream's replay starts: after the cursor (0: from the start).
fn replay_after(state: &AppState, cursor: Option<u64>) -> u64 {
    match cursor {
        None => 0,
        Some(c) if state.faults.has(Fault::ReplayOffByOne) => c.saturating_sub(1),
        Some(c) if state.faults.has(Fault::ReplaySkipsOne) => c.saturating_add(1),
        Some(c) => c,
    }
}

/// `GET /v1/events[?job_id=]`: the whole log (or one job's), then live.
pub async fn events_stream(
    State(state): State<AppState>,
    peer: Option<axum::Extension<crate::net::Peer>>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query_or_err(query)?;
    let cursor = request_cursor(&state, &headers, q.last_event_id.as_deref())?;
    if cursor.is_some() && state.faults.has(Fault::ResumeRefused) {
        return Err(ApiError::new(ErrorCode::Internal, "resume failed"));
    }
    let cid = correlation_id(&headers);
    let head_rx = state.store.subscribe_head();
    let head = *head_rx.borrow();
    let cursor = bent_cursor(&state, cursor, q.job_id.as_deref(), head).await?;
    let mut s = Stream::new(
        state.clone(),
        &cid,
        Source::Log {
            job: q.job_id,
            task: false,
            cursor: replay_after(&state, cursor),
            head: head_rx,
        },
    );
    if state.faults.has(Fault::ForkByPeer) {
        s.fault.forked = peer.is_some_and(|p| state.fault_counters.forked(p.0.0));
    }
    s.open(StreamName::Events, head, cursor);
    // Fault CursorAheadNearHead: a cursor close below the head counts as above it.
    let near = state.faults.has(Fault::CursorAheadNearHead);
    let ahead = |c: u64| c > head || near && c > 0 && c.saturating_add(AHEAD_NEAR_HEAD_BY) > head;
    if cursor.is_some_and(ahead) && !state.faults.has(Fault::CursorAheadIgnored) {
        s.fail("cursor_ahead", "cursor is above the head of the log");
    }
    Ok(s.respond().await)
}

/// Faults [`Fault::AheadCursorFromStart`] (a cursor above the head read as none) and
/// [`Fault::ForeignCursorLiveOnly`] (a cursor that is not one of the job's seqs moved
/// to the head); without them, the cursor as sent.
async fn bent_cursor(
    state: &AppState,
    cursor: Option<u64>,
    job: Option<&str>,
    head: u64,
) -> Result<Option<u64>, ApiError> {
    match (cursor, job) {
        (Some(c), _) if c > head && state.faults.has(Fault::AheadCursorFromStart) => Ok(None),
        (Some(c), Some(job)) if c <= head && state.faults.has(Fault::ForeignCursorLiveOnly) => {
            let job = job.to_owned();
            let ours = state
                .store
                .read(move |conn| {
                    use rusqlite::OptionalExtension;
                    conn.query_row(
                        "SELECT 1 FROM events WHERE seq = ?1 AND job_id = ?2",
                        rusqlite::params![c as i64, job],
                        |_| Ok(()),
                    )
                    .optional()
                })
                .await?;
            Ok(if ours.is_some() { cursor } else { Some(head) })
        }
        _ => Ok(cursor),
    }
}

/// `GET /v1/jobs/<id>/events`: the task stream, ending after the job's terminal event.
pub async fn task_stream(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query_or_err(query)?;
    let cursor = request_cursor(&state, &headers, q.last_event_id.as_deref())?;
    let cid = correlation_id(&headers);
    let known = state.jobs.exists(&job_id);
    if !known && state.faults.has(Fault::TaskNotFound404) {
        return Err(ApiError::new(ErrorCode::JobNotFound, "no job with that id"));
    }
    // The head first: a terminal committed after it is found by paging instead.
    let head_rx = state.store.subscribe_head();
    let head = *head_rx.borrow();
    let terminal = if known {
        state.store.terminal_of(&job_id).await?
    } else {
        None
    };
    let c = cursor.unwrap_or(0);
    if state.variants.has(Variant::FinishedTask204)
        && cursor.is_some()
        && terminal.as_ref().is_some_and(|(seq, _)| *seq <= c)
        && c <= head
    {
        // Variant FinishedTask204: nothing more will ever come; tell the client so.
        return Ok(axum::http::StatusCode::NO_CONTENT.into_response());
    }
    let mut s = Stream::new(
        state.clone(),
        &cid,
        Source::Log {
            job: Some(job_id),
            task: true,
            cursor: replay_after(&state, cursor),
            head: head_rx,
        },
    );
    s.open(StreamName::Task, head, cursor);
    if !known {
        s.fail("task_not_found", "no job with that id");
    } else if c > head && !state.faults.has(Fault::CursorAheadIgnored) {
        s.fail("cursor_ahead", "cursor is above the head of the log");
    } else if let Some((seq, kind)) = terminal
        && seq <= c
        && !state.faults.has(Fault::NoCloseAfterTerminal)
    {
        s.close(&kind);
    }
    Ok(s.respond().await)
}

/// `GET /v1/version/stream?request_id=`: queued version notes, then live ones.
pub async fn version_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query_or_err(query)?;
    // A well-formed cursor is ignored; a malformed one is still refused.
    request_cursor(&state, &headers, q.last_event_id.as_deref())?;
    let request_id = q
        .request_id
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::invalid("request_id is required"))?;
    if request_id.len() > crate::version::MAX_REQUEST_ID {
        return Err(ApiError::invalid("request_id is too long"));
    }
    let cid = correlation_id(&headers);
    let (sub, pending) = state.versions.subscribe(&request_id);
    let head = state.store.head();
    let (replaced, sub) = sub.into_parts();
    let mut s = Stream::new(
        state.clone(),
        &cid,
        Source::Version {
            sub,
            replaced: Some(replaced),
        },
    );
    s.open(StreamName::Version, head, None);
    if pending.is_empty() {
        let own = state.versions.own_version(&request_id);
        s.push_version(&own);
    }
    for m in &pending {
        s.push_version(m);
    }
    Ok(s.respond().await)
}
