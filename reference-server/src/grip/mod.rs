//! GRIP mode (`serve --grip-publish URL`): the server as the origin behind a GRIP proxy
//! (Pushpin, Fastly Fanout), which holds the client streams while the server publishes.
//!
//! A stream request that comes through the proxy (it carries `Grip-Sig`) is answered
//! with the stream's head (`retry:`, `connection_open`) and its replay from the log,
//! plus instructions: `Grip-Hold: stream`, `Grip-Channel: <channel>; prev-id=<last seq
//! sent>`, `Grip-Link: </v1/jobs/<job>/grip/<kind>/<seq>/events>; rel=next` ([`link`])
//! and a comment `Grip-Keep-Alive` as the heartbeat. Every committed event is then
//! published by [`publish`] with `id`/`prev-id`, so the proxy sees a gap (a failed
//! publish, a hold answered while an event was in flight) and fetches it through the
//! link, where `Grip-Last` is the cursor and the answer carries events only. A replay
//! larger than one proxy response (Pushpin takes 100 kB) is paged the same way: a page
//! without `Grip-Hold` and with a next link, which the proxy follows at once.
//!
//! What GRIP cannot carry is listed in `targets/pushpin/BEHAVIOUR.md`: published bytes
//! are the same for every subscriber, so every frame carries the server's one
//! correlation id (not the client's `X-Correlation-ID`); the heartbeat is the proxy's
//! keep-alive comment (a heartbeat event's live head and time cannot be a constant);
//! faults and variants do not apply to GRIP streams. Requests without `Grip-Sig`
//! (straight to the server) get the normal streams.
//!
//! Hand-written because the GRIP instructions are a handful of headers and one JSON
//! publish body; no maintained Rust GRIP crate fits axum 0.8.

pub mod publish;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::store::{StoredEvent, json_str};
use crate::stream::{self, StreamQuery, parse_cursor_value};
use crate::version::{VersionMsg, VersionSubscription};

pub use publish::{PublishStats, Publisher};

/// How a server publishes to its GRIP proxy.
#[derive(Debug, Clone)]
pub struct GripConfig {
    /// The publish endpoint, e.g. `http://127.0.0.1:5561/publish/`.
    pub publish_url: String,
    /// The longest a publish request may take (connect included).
    pub publish_timeout: Duration,
}

impl GripConfig {
    /// Publishing to `publish_url` with a 5 s timeout per request.
    pub fn new(publish_url: impl Into<String>) -> GripConfig {
        GripConfig {
            publish_url: publish_url.into(),
            publish_timeout: Duration::from_secs(5),
        }
    }
}

/// About this many bytes of event payload read per answer.
const PAGE_BYTES: usize = 48 * 1024;
/// Most body bytes in one answer to the proxy (Pushpin refuses a GRIP answer above
/// 100 kB).
const ANSWER_BYTES: usize = 64 * 1024;
/// Most replay rows in one answer to the proxy.
const PAGE_ROWS: usize = 500;
/// Seconds of quiet on a hold's channel after which the proxy asks the link anyway: how
/// long a gap can last when the item that would reveal it never comes (the last
/// publish of a burst failed).
const LINK_TIMEOUT_S: u64 = 5;

/// The GRIP state of a server.
#[derive(Debug)]
pub struct Grip {
    publisher: Publisher,
    /// The token, for the links the proxy follows (they carry no client header).
    token: String,
    /// The one correlation id of every GRIP frame, as a JSON string.
    cid_json: String,
    next_conn: std::sync::atomic::AtomicU64,
}

impl Grip {
    /// Starts the publish worker; the log tailer starts with [`start_tailer`].
    pub fn start(
        cfg: &GripConfig,
        token: &str,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Grip, String> {
        let publisher =
            publish::start_worker(cfg.publish_url.clone(), cfg.publish_timeout, shutdown)
                .map_err(|e| format!("grip publish client: {e}"))?;
        let cid = format!("grip-{}", uuid::Uuid::new_v4().simple());
        Ok(Grip {
            publisher,
            token: token.to_owned(),
            cid_json: json_str(&cid),
            next_conn: Default::default(),
        })
    }

    /// The publisher's counters.
    pub fn stats(&self) -> &Arc<PublishStats> {
        self.publisher.stats()
    }
}

/// Starts publishing the log when the server is in GRIP mode.
pub fn start_tailer(state: &AppState) {
    if let Some(grip) = state.grip.as_ref() {
        tokio::spawn(publish::tail_log(state.clone(), grip.publisher.clone()));
    }
}

fn cid_json(state: &AppState) -> String {
    state
        .grip
        .as_ref()
        .map_or_else(|| json_str("grip"), |g| g.cid_json.clone())
}

/// The log seq the publisher has handed to the proxy through (the head when not in GRIP
/// mode).
fn published(state: &AppState) -> u64 {
    state.grip.as_ref().map_or_else(
        || state.store.head(),
        |g| {
            g.stats()
                .published
                .load(std::sync::atomic::Ordering::Relaxed)
        },
    )
}

fn is_terminal(event_type: &str) -> bool {
    matches!(event_type, "task_completed" | "task_failed")
}

/// An event frame as every GRIP subscriber gets it.
fn event_frame(ev: &StoredEvent, cid: &str) -> String {
    format!(
        "id: {}\nevent: task_event\ndata: {},\"correlation_id\":{cid}}}\n\n",
        ev.seq,
        ev.wire_prefix()
    )
}

/// A lifecycle frame (no `id:`) with `data`'s fields and the correlation id.
fn lifecycle_frame(event: &str, data: Value, cid: &str) -> String {
    let mut data = data.to_string();
    data.pop();
    if !data.ends_with('{') {
        data.push(',');
    }
    format!("event: {event}\ndata: {data}\"correlation_id\":{cid}}}\n\n")
}

/// The last seq at or below `upto` (of `job` when set; 0 when none).
async fn last_seq_of(state: &AppState, job: Option<&str>, upto: u64) -> Result<u64, ApiError> {
    let job = job.map(str::to_owned);
    state
        .store
        .read(move |conn| {
            let v: Option<i64> = match &job {
                Some(j) => conn.query_row(
                    "SELECT MAX(seq) FROM events WHERE job_id = ?1 AND seq <= ?2",
                    rusqlite::params![j, upto as i64],
                    |r| r.get(0),
                )?,
                None => conn.query_row(
                    "SELECT MAX(seq) FROM events WHERE seq <= ?1",
                    [upto as i64],
                    |r| r.get(0),
                )?,
            };
            Ok(v.map_or(0, |v| v as u64))
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "grip: reading the last seq failed");
            ApiError::new(ErrorCode::Internal, "store read failed")
        })
}

/// Whether a request came through the GRIP proxy.
fn via_proxy(state: &AppState, headers: &HeaderMap) -> bool {
    state.grip.is_some() && headers.contains_key("grip-sig")
}

/// The `last-id` the proxy sends for `channel` in `Grip-Last` when it recovers.
fn grip_last(headers: &HeaderMap, channel: &str) -> Option<u64> {
    headers
        .get_all("grip-last")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|v| {
            let (name, params) = v.trim().split_once(';')?;
            (name.trim() == channel).then_some(())?;
            params.split(';').find_map(|p| {
                let (k, val) = p.trim().split_once('=')?;
                (k.trim() == "last-id")
                    .then(|| val.trim().trim_matches('"').parse().ok())
                    .flatten()
            })
        })
}

/// Percent-encodes a query value (unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Which log stream a GRIP request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `/v1/events`: the whole log.
    All,
    /// `/v1/events?job_id=`: one job's events.
    Job,
    /// `/v1/jobs/<id>/events`: ends after the job's terminal event.
    Task,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::All => "all",
            Kind::Job => "job",
            Kind::Task => "task",
        }
    }
}

/// A log stream answered through the proxy.
struct LogTarget {
    kind: Kind,
    /// The job filter (a job's events stream and a task stream have one).
    job: Option<String>,
    /// The proxy channel.
    channel: String,
}

impl LogTarget {
    fn new(kind: Kind, job: Option<String>) -> LogTarget {
        let channel = match (&job, kind) {
            (Some(j), Kind::Task) => publish::task_channel(j),
            (Some(j), _) => publish::job_channel(j),
            (None, _) => publish::ALL_CHANNEL.to_owned(),
        };
        LogTarget { kind, job, channel }
    }

    /// The link to the answer after `after`. The cursor is in the path: Pushpin shares
    /// one answer among link requests with the same path and `Grip-Last` (the query is
    /// not part of that key). The proxy sends no client header, so the token is in the
    /// query (the link never reaches the client).
    fn link(&self, state: &AppState, after: u64) -> String {
        let job = self.job.as_deref().map_or_else(|| "-".to_owned(), encode);
        format!(
            "</v1/jobs/{job}/grip/{}/{after}/events?access_token={}>; rel=next; timeout={LINK_TIMEOUT_S}",
            self.kind.as_str(),
            encode(token(state))
        )
    }
}

fn token(state: &AppState) -> &str {
    state.grip.as_ref().map_or("", |g| g.token.as_str())
}

/// An answer that ends the stream: its body streamed by the proxy (with a link to an
/// empty answer, so that the proxy's handler streams it chunked, as every stream,
/// instead of passing it on with a `Content-Length`).
fn ended(state: &AppState, body: String) -> Response {
    let mut resp = sse(body);
    let link = format!(
        "</v1/jobs/-/grip/end/0/events?access_token={}>; rel=next",
        encode(token(state))
    );
    set(&mut resp, "grip-link", &link);
    resp
}

/// An SSE response (no GRIP instructions yet); chunked, as every stream (a stream
/// response has no `Content-Length`), also when it ends at once.
fn sse(body: String) -> Response {
    let chunk = futures_util::stream::once(async move {
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(body))
    });
    let mut resp = Body::from_stream(chunk).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn set(resp: &mut Response, name: &'static str, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            resp.headers_mut().insert(name, v);
        }
        Err(e) => tracing::error!(error = %e, name, "grip: header value not valid"),
    }
}

/// The hold instructions: hold the stream on `channel` (after `prev`), recover through
/// `link`.
fn hold(resp: &mut Response, channel: &str, prev: Option<u64>, link: Option<String>) {
    set(resp, "grip-hold", "stream");
    let ch = match prev {
        Some(p) => format!("{channel}; prev-id={p}"),
        None => channel.to_owned(),
    };
    set(resp, "grip-channel", &ch);
    if let Some(link) = link {
        set(resp, "grip-link", &link);
    }
}

/// The head of a first answer: `retry:` and `connection_open`.
fn head_frames(state: &AppState, stream: &str, head: u64, resume_from: Option<u64>) -> String {
    let cid = cid_json(state);
    let open = lifecycle_frame(
        "connection_open",
        json!({
            "stream": stream,
            "head_seq": head,
            "resume_from": resume_from,
            "heartbeat_ms": state.heartbeat.as_millis() as u64,
        }),
        &cid,
    );
    format!("retry: {}\n\n{open}", state.retry_ms)
}

/// `error` + `connection_close` with `code`.
fn fail_frames(state: &AppState, code: &str, message: &str) -> String {
    let cid = cid_json(state);
    lifecycle_frame("error", json!({ "code": code, "message": message }), &cid)
        + &lifecycle_frame("connection_close", json!({ "reason": code }), &cid)
}

/// `GET /v1/events[?job_id=]`: through the proxy, the GRIP answer; else the stream.
pub async fn events_stream(
    state: State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    if !via_proxy(&state, &headers) {
        return stream::events_stream(state, None, headers, query).await;
    }
    let Query(q) = query?;
    let kind = if q.job_id.is_some() {
        Kind::Job
    } else {
        Kind::All
    };
    let target = LogTarget::new(kind, q.job_id);
    log_answer(&state, &headers, &target, Start::First(q.last_event_id)).await
}

/// `GET /v1/jobs/<id>/events`: through the proxy, the GRIP answer; else the stream.
pub async fn task_stream(
    state: State<AppState>,
    path: Path<String>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    if !via_proxy(&state, &headers) {
        return stream::task_stream(state, path, headers, query).await;
    }
    let Query(q) = query?;
    let Path(job) = path;
    let target = LogTarget::new(Kind::Task, Some(job));
    log_answer(&state, &headers, &target, Start::First(q.last_event_id)).await
}

/// The routes of GRIP mode: the links the proxy follows, behind the token.
pub fn router(state: AppState) -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/v1/jobs/{id}/grip/{kind}/{after}/events",
            axum::routing::get(link),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            crate::auth::require_token,
        ))
}

/// `GET /v1/jobs/<job>/grip/<kind>/<after>/events`: the links the proxy follows (job
/// `-`: none; kind `end`: the empty answer after an ended stream).
pub async fn link(
    State(state): State<AppState>,
    Path((job, kind, after)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = (job != "-").then_some(job);
    let kind = match kind.as_str() {
        "all" => Kind::All,
        "job" if job.is_some() => Kind::Job,
        "task" if job.is_some() => Kind::Task,
        "end" => return Ok(sse(String::new())),
        _ => return Err(ApiError::invalid("unknown GRIP link")),
    };
    let target = LogTarget::new(kind, job);
    // The later of the two: `Grip-Last` is the last id the proxy delivered, and the
    // path's seq where this link's answer continues. A page's link is followed with
    // the hold's older `Grip-Last` still sent (a page does not update it); a hold's
    // link names the head when it was answered, and its channel has no event between
    // its `prev-id` and that head.
    let after = grip_last(&headers, &target.channel).map_or(after, |l| l.max(after));
    log_answer(&state, &headers, &target, Start::Link(after)).await
}

/// Where a log answer starts.
enum Start {
    /// A client's request, with its `last_event_id` query (the header is read too).
    First(Option<String>),
    /// A link the proxy follows: the events after this seq, nothing else.
    Link(u64),
}

/// The answer to a log stream request through the proxy: a first request gets the head
/// and the replay after its cursor; a link request only the events after the proxy's
/// last id. A replay above one answer's size ends with a link to the rest (no hold),
/// which the proxy follows at once; the last page holds.
async fn log_answer(
    state: &AppState,
    headers: &HeaderMap,
    target: &LogTarget,
    start: Start,
) -> Result<Response, ApiError> {
    let head = state.store.head();
    let mut body = String::new();
    let after = match start {
        Start::Link(c) => c,
        Start::First(query) => {
            let cursor = parse_cursor_value(
                headers.get("last-event-id").map(HeaderValue::as_bytes),
                query.as_deref(),
            )?;
            let name = if target.kind == Kind::Task {
                "task"
            } else {
                "events"
            };
            body.push_str(&head_frames(state, name, head, cursor));
            if let Some(early) = first_checks(state, target, cursor, head).await? {
                body.push_str(&early);
                return Ok(ended(state, body));
            }
            cursor.unwrap_or(0)
        }
    };
    // Up to what the publisher has handed to the proxy (not the head): the hold's
    // prev-id is then what the next published item names; the events above it come
    // as publishes.
    let upto = published(state).clamp(after, head.max(after));
    let cid = cid_json(state);
    let page = state
        .store
        .page(after, upto, target.job.as_deref(), PAGE_ROWS, PAGE_BYTES)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "grip: replay read failed");
            ApiError::new(ErrorCode::Internal, "store read failed")
        })?;
    let mut scanned_to = page.scanned_to;
    let mut last = None;
    for ev in &page.events {
        let frame = event_frame(ev, &cid);
        if last.is_some() && body.len() + frame.len() > ANSWER_BYTES {
            // The rest in the next answer.
            scanned_to = ev.seq - 1;
            break;
        }
        body.push_str(&frame);
        last = Some(ev.seq);
        if target.kind == Kind::Task && is_terminal(&ev.event_type) {
            let close = json!({ "reason": ev.event_type });
            body.push_str(&lifecycle_frame("connection_close", close, &cid));
            return Ok(ended(state, body));
        }
    }
    let mut resp = sse(body);
    if scanned_to < upto {
        // More than one answer holds: the proxy follows the link at once.
        set(&mut resp, "grip-link", &target.link(state, scanned_to));
        return Ok(resp);
    }
    let prev = match last {
        Some(seq) => seq,
        None => last_seq_of(state, target.job.as_deref(), upto).await?,
    };
    hold(
        &mut resp,
        &target.channel,
        Some(prev),
        Some(target.link(state, upto)),
    );
    keep_alive(state, &mut resp);
    Ok(resp)
}

/// The heartbeat through the proxy: a comment after each heartbeat interval of silence
/// (whole seconds, at least 1). The spine's heartbeat event carries the live head and
/// time, which a proxy-sent constant cannot (BEHAVIOUR.md).
fn keep_alive(state: &AppState, resp: &mut Response) {
    let secs = state.heartbeat.as_secs().max(1);
    set(
        resp,
        "grip-keep-alive",
        &format!(":\\n\\n; format=cstring; timeout={secs}"),
    );
}

/// What ends a first answer at once: an unknown job, a cursor above the head, a task
/// whose terminal event the cursor has passed.
async fn first_checks(
    state: &AppState,
    target: &LogTarget,
    cursor: Option<u64>,
    head: u64,
) -> Result<Option<String>, ApiError> {
    let c = cursor.unwrap_or(0);
    if target.kind == Kind::Task {
        let job = target.job.as_deref().unwrap_or_default();
        if !state.jobs.exists(job) {
            return Ok(Some(fail_frames(
                state,
                "task_not_found",
                "no job with that id",
            )));
        }
        if c > head {
            return Ok(Some(fail_frames(
                state,
                "cursor_ahead",
                "cursor is above the head of the log",
            )));
        }
        if let Some((seq, kind)) = state.store.terminal_of(job).await?
            && seq <= c
        {
            let close = json!({ "reason": kind });
            return Ok(Some(lifecycle_frame(
                "connection_close",
                close,
                &cid_json(state),
            )));
        }
    } else if c > head {
        return Ok(Some(fail_frames(
            state,
            "cursor_ahead",
            "cursor is above the head of the log",
        )));
    }
    Ok(None)
}

/// `GET /v1/version/stream?request_id=`: through the proxy, the queued notes (or the
/// server's version) and a hold on a channel of this connection's own; a forwarder
/// publishes later notes there, and `connection_close {replaced}` + close when a newer
/// stream of the same request id replaces it.
pub async fn version_stream(
    state: State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    if !via_proxy(&state, &headers) {
        return stream::version_stream(state, headers, query).await;
    }
    let State(state) = state;
    let Query(q) = query?;
    parse_cursor_value(
        headers.get("last-event-id").map(HeaderValue::as_bytes),
        q.last_event_id.as_deref(),
    )?;
    let request_id = q
        .request_id
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::invalid("request_id is required"))?;
    if request_id.len() > crate::version::MAX_REQUEST_ID {
        return Err(ApiError::invalid("request_id is too long"));
    }
    let Some(grip) = state.grip.as_ref() else {
        return Err(ApiError::new(ErrorCode::Internal, "not in GRIP mode"));
    };
    let n = grip
        .next_conn
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let channel = format!("version-{n}");
    let (sub, pending) = state.versions.subscribe(&request_id);
    let mut body = head_frames(&state, "version", state.store.head(), None);
    let cid = cid_json(&state);
    if pending.is_empty() {
        body.push_str(&version_frame(
            &state.versions.own_version(&request_id),
            &cid,
        ));
    }
    for m in &pending {
        body.push_str(&version_frame(m, &cid));
    }
    let (replaced, sub) = sub.into_parts();
    tokio::spawn(version_forwarder(
        state.clone(),
        channel.clone(),
        replaced,
        sub,
    ));
    let mut resp = sse(body);
    hold(&mut resp, &channel, None, None);
    keep_alive(&state, &mut resp);
    Ok(resp)
}

fn version_frame(m: &VersionMsg, cid: &str) -> String {
    let data = json!({
        "request_id": m.request_id,
        "version": m.version,
        "environment": m.environment,
        "git_commit": m.git_commit,
    });
    let mut data = data.to_string();
    data.pop();
    format!("event: version\ndata: {data},\"correlation_id\":{cid}}}\n\n")
}

/// Publishes a held version stream's notes until it is replaced or the server stops.
/// The proxy does not tell the origin when a client leaves, so the subscription lasts
/// until then (BEHAVIOUR.md).
async fn version_forwarder(
    state: AppState,
    channel: String,
    mut replaced: tokio::sync::oneshot::Receiver<()>,
    mut sub: VersionSubscription,
) {
    let Some(grip) = state.grip.as_ref() else {
        return;
    };
    let cid = cid_json(&state);
    let mut shutdown = state.shutdown.clone();
    let reason = loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|v| *v) => break "server_shutdown",
            r = &mut replaced => {
                if r.is_ok() { break "replaced" }
                // The hub is gone: nothing more will come.
                return;
            }
            m = sub.recv() => match m {
                Some(m) => {
                    let item = publish::content_item(&channel, None, version_frame(&m, &cid));
                    grip.publisher.offer(vec![item]);
                }
                None => break "replaced",
            },
        }
    };
    let close = lifecycle_frame("connection_close", json!({ "reason": reason }), &cid);
    grip.publisher.offer(vec![
        publish::content_item(&channel, None, close),
        json!({ "channel": channel, "formats": { "http-stream": { "action": "close" } } }),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grip_last_finds_the_channel_among_several() {
        let mut h = HeaderMap::new();
        h.append(
            "grip-last",
            HeaderValue::from_static("job-a; last-id=7, task-a; last-id=9"),
        );
        h.append(
            "grip-last",
            HeaderValue::from_static("events; last-id=\"12\""),
        );
        assert_eq!(grip_last(&h, "job-a"), Some(7));
        assert_eq!(grip_last(&h, "task-a"), Some(9));
        assert_eq!(grip_last(&h, "events"), Some(12));
        assert_eq!(grip_last(&h, "job-b"), None);
        h.insert("grip-last", HeaderValue::from_static("job-a; last-id=x"));
        assert_eq!(grip_last(&h, "job-a"), None);
    }

    #[test]
    fn encode_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(encode("a b/&=?é"), "a%20b%2F%26%3D%3F%C3%A9");
    }

    #[test]
    fn lifecycle_frames_carry_the_correlation_id_last() {
        let f = lifecycle_frame("connection_close", json!({ "reason": "x" }), "\"c\"");
        assert_eq!(
            f,
            "event: connection_close\ndata: {\"reason\":\"x\",\"correlation_id\":\"c\"}\n\n"
        );
        let f = lifecycle_frame("heartbeat", json!({}), "\"c\"");
        assert_eq!(f, "event: heartbeat\ndata: {\"correlation_id\":\"c\"}\n\n");
    }

    #[test]
    fn a_close_instruction_is_chained_after_the_terminal_event() {
        let item = publish::close_item("task-a", 41);
        assert_eq!(item["prev-id"], "41");
        assert_eq!(item["id"], "41-close");
        assert_eq!(item["formats"]["http-stream"]["action"], "close");
    }
}
