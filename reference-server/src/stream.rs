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

use std::collections::VecDeque;
use std::convert::Infallible;
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
use crate::faults::Fault;
use crate::metrics::ActiveStream;
use crate::store::{StoredEvent, json_str, now_ts};
use crate::version::{VersionMsg, VersionSubscription};

/// Rows per page read from the store.
const PAGE_ROWS: usize = 500;
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
    let from_header = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| bad_cursor("Last-Event-ID is not ASCII"))
                .map(str::to_owned)
        })
        .transpose()?
        .filter(|s| !s.is_empty());
    let raw = from_header.or_else(|| query.filter(|s| !s.is_empty()).map(str::to_owned));
    match raw {
        None => Ok(None),
        Some(s) if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) => s
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

/// One open stream: the frames waiting to be written and where more come from.
struct Stream {
    state: AppState,
    cid_json: String,
    out: VecDeque<Bytes>,
    done: bool,
    source: Source,
    last_write: Instant,
    shutdown: watch::Receiver<bool>,
    _active: ActiveStream,
}

impl Stream {
    fn new(state: AppState, cid: &str, source: Source) -> Stream {
        let shutdown = state.shutdown.clone();
        let active = ActiveStream::new(state.metrics.clone());
        let mut out = VecDeque::new();
        out.push_back(Bytes::from(format!("retry: {}\n\n", state.retry_ms)));
        Stream {
            state,
            cid_json: json_str(cid),
            out,
            done: false,
            source,
            last_write: Instant::now(),
            shutdown,
            _active: active,
        }
    }

    /// A lifecycle frame (no `id:`), `data` an object to which the correlation id is added.
    fn lifecycle(&mut self, event: &str, data: Value) {
        let mut data = data.to_string();
        data.pop();
        if !data.ends_with('{') {
            data.push(',');
        }
        let frame = format!(
            "event: {event}\ndata: {data}\"correlation_id\":{}}}\n\n",
            self.cid_json
        );
        self.out.push_back(Bytes::from(frame));
    }

    fn close(&mut self, reason: &str) {
        self.lifecycle("connection_close", json!({ "reason": reason }));
        self.done = true;
    }

    fn fail(&mut self, code: &str, message: &str) {
        self.lifecycle("error", json!({ "code": code, "message": message }));
        self.close(code);
    }

    fn heartbeat(&mut self) {
        let head = self.state.store.head();
        self.lifecycle(
            "heartbeat",
            json!({ "server_time": now_ts(), "head_seq": head }),
        );
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.out.pop_front() {
                self.last_write = Instant::now();
                return Some(b);
            }
            if self.done {
                return None;
            }
            if *self.shutdown.borrow() {
                self.close("server_shutdown");
                continue;
            }
            self.fill().await;
        }
    }

    fn heartbeat_due(&self) -> Option<Instant> {
        if self.state.faults.has(Fault::HeartbeatAbsent) {
            None
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
                job,
                task,
                cursor,
                head,
            } => {
                let seen = *head.borrow_and_update();
                if *cursor < seen {
                    let page = self
                        .state
                        .store
                        .page(*cursor, seen, job.as_deref(), PAGE_ROWS, PAGE_BYTES)
                        .await;
                    match page {
                        Ok(page) => {
                            *cursor = page.scanned_to;
                            let task = *task;
                            self.push_events(&page.events, task);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "stream page read failed");
                            self.fail("internal", "store read failed");
                        }
                    }
                    return;
                }
                tokio::select! {
                    biased;
                    _ = stop => self.close("server_shutdown"),
                    r = head.changed() => {
                        if r.is_err() {
                            self.close("server_shutdown");
                        }
                    }
                    _ = sleep => self.heartbeat(),
                }
            }
            Source::Version { sub, replaced } => {
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
                    Woke::Stop => self.close("server_shutdown"),
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
        }
    }

    fn push_events(&mut self, events: &[Arc<StoredEvent>], task: bool) {
        if events.is_empty() {
            return;
        }
        let mut buf = BytesMut::new();
        let mut n = 0u64;
        let mut terminal = None;
        for ev in events {
            buf.put_slice(format!("id: {}\nevent: task_event\ndata: ", ev.seq).as_bytes());
            buf.put_slice(ev.wire_prefix.as_bytes());
            buf.put_slice(b",\"correlation_id\":");
            buf.put_slice(self.cid_json.as_bytes());
            buf.put_slice(b"}\n\n");
            n += 1;
            if task && matches!(ev.event_type.as_str(), "task_completed" | "task_failed") {
                terminal = Some(ev.event_type.clone());
                break;
            }
        }
        self.state
            .metrics
            .events_delivered
            .fetch_add(n, Ordering::Relaxed);
        self.out.push_back(buf.freeze());
        if let Some(reason) = terminal {
            self.close(&reason);
        }
    }

    fn push_version(&mut self, m: &VersionMsg) {
        let data = json!({
            "request_id": m.request_id,
            "version": m.version,
            "environment": m.environment,
            "git_commit": m.git_commit,
        });
        let mut data = data.to_string();
        data.pop();
        let frame = format!(
            "event: version\ndata: {data},\"correlation_id\":{}}}\n\n",
            self.cid_json
        );
        self.out.push_back(Bytes::from(frame));
    }

    fn open(&mut self, name: StreamName, head: u64, resume_from: Option<u64>) {
        let hb = self.state.heartbeat.as_millis() as u64;
        self.lifecycle(
            "connection_open",
            json!({
                "stream": name.as_str(),
                "head_seq": head,
                "resume_from": resume_from,
                "heartbeat_ms": hb,
            }),
        );
    }

    fn into_response(self) -> Response {
        let body = Body::from_stream(futures_util::stream::unfold(self, |mut s| async move {
            s.next_chunk().await.map(|b| (Ok::<_, Infallible>(b), s))
        }));
        let mut resp = body.into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        resp
    }
}

fn query_or_err(q: Result<Query<StreamQuery>, QueryRejection>) -> Result<StreamQuery, ApiError> {
    q.map(|Query(q)| q).map_err(ApiError::from)
}

/// `GET /v1/events[?job_id=]`: the whole log (or one job's), then live.
pub async fn events_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query_or_err(query)?;
    let cursor = parse_cursor(&headers, q.last_event_id.as_deref())?;
    let cid = correlation_id(&headers);
    let head_rx = state.store.subscribe_head();
    let head = *head_rx.borrow();
    let mut s = Stream::new(
        state.clone(),
        &cid,
        Source::Log {
            job: q.job_id,
            task: false,
            cursor: cursor.unwrap_or(0),
            head: head_rx,
        },
    );
    s.open(StreamName::Events, head, cursor);
    if cursor.is_some_and(|c| c > head) {
        s.fail("cursor_ahead", "cursor is above the head of the log");
    }
    Ok(s.into_response())
}

/// `GET /v1/jobs/<id>/events`: the task stream, ending after the job's terminal event.
pub async fn task_stream(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query_or_err(query)?;
    let cursor = parse_cursor(&headers, q.last_event_id.as_deref())?;
    let cid = correlation_id(&headers);
    let known = state.jobs.exists(&job_id);
    // The head first: a terminal committed after it is found by paging instead.
    let head_rx = state.store.subscribe_head();
    let head = *head_rx.borrow();
    let terminal = if known {
        state.store.terminal_of(&job_id).await?
    } else {
        None
    };
    let c = cursor.unwrap_or(0);
    let mut s = Stream::new(
        state.clone(),
        &cid,
        Source::Log {
            job: Some(job_id),
            task: true,
            cursor: c,
            head: head_rx,
        },
    );
    s.open(StreamName::Task, head, cursor);
    if !known {
        s.fail("task_not_found", "no job with that id");
    } else if c > head {
        s.fail("cursor_ahead", "cursor is above the head of the log");
    } else if let Some((seq, kind)) = terminal
        && seq <= c
    {
        s.close(&kind);
    }
    Ok(s.into_response())
}

/// `GET /v1/version/stream?request_id=`: queued version notes, then live ones.
pub async fn version_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query_or_err(query)?;
    // A well-formed cursor is ignored; a malformed one is still refused.
    parse_cursor(&headers, q.last_event_id.as_deref())?;
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
    Ok(s.into_response())
}
