//! A scripted SSE client: one subscriber of a scenario. It opens its stream over a real
//! socket (through `sse-wire`), reads at the pace its policy says, cuts the connection
//! where its seeded chaos plan says (at a byte, inside the `id:` line, after N events,
//! in a burst with its group), resumes with the last event id it saw, and records
//! every frame with its time and byte offsets. It stops when it has every write it is
//! owed, when its stream ends for good, or at the deadline.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use harness_model::{
    ClientId, Comment, ConnEnd, Connection, Frame, FrameKind, IdMode, StreamKind, Subscription,
    Transcript, WireIssue,
};
use sse_wire::{ConnectOptions, Item, Mode, Parser, ParserConfig, RequestSpec};
use tokio::sync::watch;
use tokio::time::Instant;

mod cuts;
mod pacing;

pub use cuts::Cut;
use cuts::CutState;
use pacing::Pacing;

use crate::classify::classify;
use crate::ledger::Ledger;
use crate::target::Target;

/// How long a client at full speed waits for data it is owed after publishing ended.
pub const STALL: Duration = Duration::from_secs(10);

/// When the client may stop.
#[derive(Clone, Debug)]
pub enum Until {
    /// When publishing is over and it has every write it is owed.
    CaughtUp,
    /// When the server ends the stream (task streams, probes).
    ServerEnds,
    /// After this long (idle probes).
    For(Duration),
    /// After this many frames of one kind, or at the deadline.
    Frames {
        /// Which frames count.
        kind: Counted,
        /// How many.
        count: u64,
    },
    /// When it has received every one of these publish markers, or at the deadline.
    Markers(Vec<String>),
}

/// The frames a client counts, for [`Until::Frames`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counted {
    /// Data events.
    Data,
    /// Heartbeats: heartbeat events, or comment lines where the profile's heartbeats
    /// are comments.
    Heartbeat,
    /// Version frames.
    Version,
}

impl Counted {
    /// What a classified frame counts as, if anything.
    fn of(kind: &FrameKind) -> Option<Counted> {
        match kind {
            FrameKind::Data(_) => Some(Counted::Data),
            FrameKind::Heartbeat { .. } => Some(Counted::Heartbeat),
            FrameKind::Version { .. } => Some(Counted::Version),
            _ => None,
        }
    }
}

/// Everything a client needs to run.
#[derive(Clone)]
pub struct ClientPlan {
    /// Its name.
    pub id: ClientId,
    /// The stream kind, for the transcript.
    pub stream: StreamKind,
    /// Path and query of the stream, without a cursor.
    pub path: String,
    /// Channels whose writes it is owed (empty: none tracked).
    pub channels: Vec<String>,
    /// Cursor of the first connection.
    pub initial_cursor: Option<String>,
    /// Whether the first connection takes the whole history.
    pub from_start: bool,
    /// Put the cursor in this query parameter instead of the header.
    pub cursor_query: Option<String>,
    /// Send this `X-Correlation-ID`.
    pub correlation: Option<String>,
    /// Bytes per second while slow (0 = unthrottled).
    pub bytes_per_sec: u64,
    /// Read slowly only this long (0 = throughout).
    pub slow_for: Duration,
    /// `SO_RCVBUF`.
    pub rcvbuf: Option<usize>,
    /// Pause after this many data events of the first connection...
    pub pause_after_events: u64,
    /// ...for this long.
    pub pause: Duration,
    /// The planned disconnects, in order.
    pub cuts: VecDeque<Cut>,
    /// Pause between cuts.
    pub cut_gap: Duration,
    /// Close with RST instead of FIN.
    pub reset: bool,
    /// What an orderly cut ends over HTTP/2: the stream or the connection.
    pub h2_cut: sse_wire::H2Cut,
    /// Over HTTP/2, the connection this client shares with its group, if it does.
    pub h2_shared: Option<std::sync::Arc<SharedH2>>,
    /// When to stop.
    pub until: Until,
    /// Reconnect when the server ends the stream (event streams) or not (task, version, probes).
    pub reconnect: bool,
    /// The target is restarted on purpose while this client runs: connections that fail
    /// never make it give up before the deadline (a slow restart is not a loss).
    pub through_restarts: bool,
    /// Absolute deadline.
    pub deadline: Instant,
    /// Strict parsing.
    pub strict: bool,
    /// Give up on a stream silent for longer than 2 x its heartbeat interval (a
    /// half-open path) and reconnect with the last id ([`ConnEnd::Silent`]).
    pub reconnect_on_silence: bool,
}

/// One HTTP/2 connection that a group's clients share (`h2_connection = "shared"`):
/// made by the first client that needs it, made again when it has gone.
#[derive(Debug, Default)]
pub struct SharedH2(tokio::sync::Mutex<Option<sse_wire::H2Connection>>);

impl SharedH2 {
    /// Opens `req` as a stream on the shared connection (connecting first when there is
    /// none, or it no longer takes streams).
    async fn open(
        &self,
        target: &sse_wire::Target,
        req: &sse_wire::RequestSpec,
        opts: &ConnectOptions,
    ) -> Result<sse_wire::Response, sse_wire::WireError> {
        let conn = {
            let mut slot = self.0.lock().await;
            match &*slot {
                Some(c) if c.is_open() => c.clone(),
                _ => {
                    let c = sse_wire::H2Connection::connect(target, opts).await?;
                    *slot = Some(c.clone());
                    c
                }
            }
        };
        conn.open(target, req, opts.head_timeout).await
    }
}

/// Shared signals from the runner.
#[derive(Clone)]
pub struct Signals {
    /// Set when publishing is over (the ledger is final).
    pub published: watch::Receiver<bool>,
    /// Fired for burst cuts.
    pub burst: watch::Receiver<bool>,
    /// Set when the client's first connection has its head (for "all clients open").
    pub opened: Option<tokio::sync::mpsc::UnboundedSender<ClientId>>,
    /// Set by the runner to make every client stop now (scenario over, e.g. a probe's end).
    pub stop: watch::Receiver<bool>,
}

/// Runs the client to the end and returns its transcript.
pub async fn run(
    target: Arc<Target>,
    ledger: Arc<Ledger>,
    plan: ClientPlan,
    mut sig: Signals,
    epoch: Instant,
) -> Transcript {
    let mut st = State {
        seen: Default::default(),
        received: HashSet::new(),
        owed_left: None,
        last_id: plan.initial_cursor.clone(),
        ids: target.profile.check_config(Vec::new()).ids,
        sub: Subscription::new(
            plan.channels.clone(),
            plan.from_start,
            plan.initial_cursor.clone(),
        ),
        last_cut_us: None,
        heartbeat_ms: target.profile.heartbeat.interval_ms,
        cuts: plan.cuts.clone(),
        local_failure: false,
    };
    let mut connections = Vec::new();
    let mut paused = plan.pause_after_events == 0;
    let mut consecutive_failures = 0u32;
    loop {
        let cut = st.cuts.pop_front();
        let index = connections.len() as u32;
        let attempt = Attempt {
            target: &target,
            ledger: &ledger,
            plan: &plan,
            epoch,
            index,
        };
        let conn = connect_once(&attempt, &mut sig, &mut st, cut.clone(), &mut paused).await;
        st.ended(&conn);
        let end = conn.end.clone();
        let got_head = conn.status.is_some();
        // A stream the target ends before its first byte is a failure too (backs off).
        let empty_close = matches!(end, ConnEnd::ServerClosed) && conn.body_bytes == 0;
        connections.push(conn);
        if !got_head || empty_close || matches!(end, ConnEnd::Failed { .. }) {
            consecutive_failures += 1;
        } else {
            consecutive_failures = 0;
        }
        let done = match end {
            ConnEnd::Finished
            | ConnEnd::Deadline
            | ConnEnd::ParserLimit
            | ConnEnd::Refused
            | ConnEnd::RecordLimit { .. } => true,
            // A client that does not reconnect vanishes after its last planned cut.
            ConnEnd::Cut { .. } => !plan.reconnect && st.cuts.is_empty(),
            ConnEnd::ServerClosed
            | ConnEnd::Failed { .. }
            | ConnEnd::ConnectFailed { .. }
            | ConnEnd::Silent { .. } => !plan.reconnect || matches!(plan.until, Until::ServerEnds),
        };
        if done || st.local_failure || Instant::now() >= plan.deadline || *sig.stop.borrow() {
            break;
        }
        if gives_up(
            plan.through_restarts,
            consecutive_failures,
            connections.len(),
        ) {
            break;
        }
        if consecutive_failures > 0 {
            tokio::time::sleep(backoff(consecutive_failures)).await;
        } else if !plan.cut_gap.is_zero() && matches!(end, ConnEnd::Cut { .. }) {
            // Chaos timing, not synchronisation: stay away as long as the plan says.
            tokio::time::sleep(
                plan.cut_gap
                    .min(plan.deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        }
    }
    Transcript {
        client: plan.id.clone(),
        stream: plan.stream,
        jobs: plan.channels.clone(),
        initial_cursor: plan.initial_cursor.clone(),
        from_start: plan.from_start,
        connections,
        agent: Default::default(),
        gave_up_us: None,
    }
}

/// Consecutive failed connections after which a client gives up, unless the target is
/// restarted on purpose ([`ClientPlan::through_restarts`]): about 10 s of backing off.
const GIVE_UP_AFTER_FAILURES: u32 = 20;

/// Connections one client makes at most (a target that ends every stream at once).
const MAX_CONNECTIONS: usize = 5000;

/// Whether a client stops reconnecting: after [`GIVE_UP_AFTER_FAILURES`] failures in a
/// row (a target that refuses or drops every connection), unless it is meant to ride
/// out restarts; and always after [`MAX_CONNECTIONS`].
fn gives_up(through_restarts: bool, consecutive_failures: u32, connections: usize) -> bool {
    (consecutive_failures >= GIVE_UP_AFTER_FAILURES && !through_restarts)
        || connections >= MAX_CONNECTIONS
}

/// The pause before reconnecting after `consecutive_failures` failures in a row: 50 ms
/// more each time, at most 1 s.
fn backoff(consecutive_failures: u32) -> Duration {
    Duration::from_millis(50 * u64::from(consecutive_failures.min(GIVE_UP_AFTER_FAILURES)))
}

struct State {
    /// Frames seen so far over all connections, by kind.
    seen: std::collections::BTreeMap<Counted, u64>,
    received: HashSet<String>,
    /// Markers still owed once publishing is over, for the subscription they were
    /// computed for (recomputed when it changes).
    owed_left: Option<(Subscription, HashSet<String>)>,
    last_id: Option<String>,
    /// How the target's ids are judged (the owed rule depends on it).
    ids: IdMode,
    /// What the owed rule knows about this client so far.
    sub: Subscription,
    /// When the previous connection ended, if the harness cut it.
    last_cut_us: Option<u64>,
    /// The planned cuts not yet taken by a connection, in order.
    cuts: VecDeque<Cut>,
    /// The heartbeat interval: the profile's, else the last one a `connection_open`
    /// announced (a reconnect's watchdog needs it before its own `connection_open`).
    heartbeat_ms: Option<u64>,
    /// The last connect failed for want of something on the harness's machine (a local
    /// port, a descriptor, its source address: [`crate::source::is_local`]): the client
    /// stops, and the scenario is an error naming the cause.
    local_failure: bool,
}

impl State {
    fn caught_up(&mut self, ledger: &Ledger, published: bool) -> bool {
        if !published {
            return false;
        }
        if self
            .owed_left
            .as_ref()
            .is_none_or(|(sub, _)| *sub != self.sub)
        {
            let left: HashSet<String> = ledger
                .owed(&self.sub, self.ids)
                .into_iter()
                .filter(|m| !self.received.contains(m))
                .collect();
            self.owed_left = Some((self.sub.clone(), left));
        }
        self.owed_left.as_ref().is_some_and(|(_, l)| l.is_empty())
    }

    /// Notes that `conn` is surely subscribed (see [`Connection::subscribed_us`]): a
    /// refused one at its head, an accepted one at its first body byte (`first_byte`,
    /// recorded once), and tells the runner the first time.
    fn established(
        &mut self,
        conn: &mut Connection,
        first_byte: Option<u64>,
        opened: &Option<tokio::sync::mpsc::UnboundedSender<ClientId>>,
        id: &ClientId,
    ) {
        if let Some(at) = first_byte {
            if conn.first_byte_us.is_some() {
                return;
            }
            conn.first_byte_us = Some(at);
        }
        if self.sub.since_us.is_none()
            && let Some(tx) = opened
        {
            let _ = tx.send(id.clone());
        }
        self.sub.add(conn, self.last_cut_us);
    }

    /// Notes that `conn` ended (a connection never subscribed counts as away).
    fn ended(&mut self, conn: &Connection) {
        if conn.subscribed_us().is_none() {
            self.sub.add(conn, self.last_cut_us);
        }
        self.last_cut_us = conn.cut_at_us();
    }

    fn frames_of(&self, kind: Counted) -> u64 {
        self.seen.get(&kind).copied().unwrap_or(0)
    }

    fn note(&mut self, marker: &str) {
        self.received.insert(marker.to_owned());
        if let Some((_, l)) = &mut self.owed_left {
            l.remove(marker);
        }
    }
}

fn us(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// One connection attempt's fixed inputs.
struct Attempt<'a> {
    target: &'a Target,
    ledger: &'a Ledger,
    plan: &'a ClientPlan,
    epoch: Instant,
    /// The connection's number (0: the first).
    index: u32,
}

/// The stream request: the plan's path with the cursor (header or query parameter),
/// auth, the profile's and browser-like headers, and the correlation id.
fn request(target: &Target, plan: &ClientPlan, cursor: Option<&str>) -> RequestSpec {
    let mut path = target.stream_path(&plan.path);
    let mut headers = target.stream_headers();
    headers.extend(target.stream_request_headers());
    if let Some(c) = cursor {
        match &plan.cursor_query {
            Some(q) => {
                path.push(if path.contains('?') { '&' } else { '?' });
                path.push_str(&format!("{q}={}", crate::target::encode_segment(c)));
            }
            None => headers.push((target.profile.subscribe.cursor_header.clone(), c.to_owned())),
        }
    }
    if let Some(c) = &plan.correlation {
        headers.push(("X-Correlation-ID".into(), c.clone()));
    }
    RequestSpec {
        method: "GET".into(),
        path_and_query: path,
        headers,
        body: None,
    }
}

impl Attempt<'_> {
    fn us(&self) -> u64 {
        us(self.epoch)
    }

    /// Connects and reads the head. A failed connect or a refusal (its body read
    /// within bounds) ends `conn` and gives None.
    async fn open(
        &self,
        conn: &mut Connection,
        st: &mut State,
        sig: &Signals,
    ) -> Option<sse_wire::Response> {
        let (plan, target) = (self.plan, self.target);
        let left = plan.deadline.saturating_duration_since(Instant::now());
        // A client with a silence watchdog gives a head as long as it gives a silence
        // (twice the allowance, at least 2 s): a half-open path eats requests too.
        let head_timeout = match st.heartbeat_ms.filter(|_| plan.reconnect_on_silence) {
            Some(ms) => Duration::from_millis(ms.saturating_mul(4)).max(Duration::from_secs(2)),
            None => Duration::from_secs(15),
        };
        let opts = ConnectOptions {
            tls: target.tls.clone(),
            rcvbuf: plan.rcvbuf,
            connect_timeout: left.min(Duration::from_secs(10)),
            head_timeout: left.min(head_timeout).min(Duration::from_secs(15)),
            http: target.stream_http(),
            h2_cut: plan.h2_cut,
            decode: true,
            connect_to: target.stream_connect_to(),
            source: target.sources.next(),
        };
        let req = request(target, plan, conn.cursor.as_deref());
        conn.protocol = target.protocol;
        let opened = match (&plan.h2_shared, opts.http) {
            (Some(shared), sse_wire::HttpVersion::Http2) => {
                shared.open(&target.wire, &req, &opts).await
            }
            _ => sse_wire::open(&target.wire, &req, &opts).await,
        };
        let mut resp = match opened {
            Ok(r) => r,
            Err(e) => {
                // The harness machine's own shortage: retrying cannot help.
                st.local_failure = crate::source::is_local(e.kind);
                conn.end = ConnEnd::ConnectFailed {
                    error: e.to_string(),
                };
                conn.ended_us = self.us();
                return None;
            }
        };
        conn.head_us = Some(self.us());
        conn.local_port = resp.local_addr().map(|a| a.port());
        conn.protocol = match resp.protocol() {
            sse_wire::Protocol::Http11 => harness_model::HttpProtocol::Http11,
            sse_wire::Protocol::H2 => harness_model::HttpProtocol::H2,
        };
        conn.status = Some(resp.status);
        conn.headers = resp
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        if (200..300).contains(&resp.status) {
            return Some(resp);
        }
        st.established(conn, None, &sig.opened, &plan.id);
        // The body of a refusal is the target's too: bounded in size and in time.
        let limit = target.limits.error_body_bytes;
        let body = tokio::time::timeout_at(plan.deadline, resp.read_to_end_limited(limit));
        conn.error_body = Some(match body.await {
            Ok(Ok(body)) => String::from_utf8_lossy(&body).into_owned(),
            Ok(Err(e)) => format!("(body unreadable: {e})"),
            Err(_) => "(body did not arrive before the scenario's deadline)".to_owned(),
        });
        conn.end = ConnEnd::Refused;
        conn.ended_us = self.us();
        None
    }
}

/// Reads one connection, cuts it where planned, records every item, and returns how it
/// ended.
async fn connect_once(
    a: &Attempt<'_>,
    sig: &mut Signals,
    st: &mut State,
    cut: Option<Cut>,
    paused: &mut bool,
) -> Connection {
    let cursor = st.last_id.clone().filter(|c| !c.is_empty());
    let mut conn = Connection::opened(a.index, cursor, a.plan.correlation.clone(), a.us());
    let Some(mut resp) = a.open(&mut conn, st, sig).await else {
        return conn;
    };
    let mut r = Reader::new(a, st, cut);
    let end = r.read(a, &mut resp, &mut conn, sig, st, paused).await;
    st.heartbeat_ms = r.heartbeat_ms.or(st.heartbeat_ms);
    let mut tail = Vec::new();
    if r.cut_after.is_none() {
        r.parser.finish(&mut tail);
    }
    let at = a.us();
    for it in tail {
        if admit(&conn, &it, r.mode, a.target, a.ledger).is_err() {
            break;
        }
        record(&mut conn, a.target, r.mode, it, at, &mut r.data_events, st);
    }
    // Resume with the id of the last event actually dispatched (not the id of an event
    // the cut interrupted, nor of one the chunk held after an event-counted cut). An
    // empty id resets: the next connection has no cursor.
    let reconnect = r
        .cut_after
        .take()
        .unwrap_or_else(|| r.parser.reconnect_id().to_owned());
    st.last_id = Some(reconnect).filter(|s| !s.is_empty());
    conn.wire_bytes = resp.wire_offset();
    if matches!(end, ConnEnd::Cut { .. }) && a.plan.reset {
        resp.reset();
    } else {
        resp.close();
    }
    conn.end = end;
    conn.ended_us = a.us();
    conn
}

/// The read buffer's size when a connection starts, and after it idled: an idle stream
/// holds this much (BENCHMARKS.md, "Idle streams").
const READ_MIN: usize = 512;
/// The read buffer's largest size, reached by doubling while reads fill it (a drain:
/// 64 KiB per read, as many system calls as a raw socket reader with 64 KiB reads).
const READ_MAX: usize = 64 * 1024;
/// Small reads in a row (each under an eighth of the buffer) after which the buffer
/// goes back to [`READ_MIN`].
const SHRINK_AFTER: u32 = 16;

/// The state of one connection's read loop.
struct Reader {
    mode: Mode,
    parser: Parser,
    items: Vec<Item>,
    /// The read buffer: [`READ_MIN`] bytes, doubled (up to [`READ_MAX`]) by each read
    /// that fills it, back to [`READ_MIN`] after [`SHRINK_AFTER`] small reads in a row.
    buf: Vec<u8>,
    /// Reads in a row that took less than an eighth of `buf`.
    small_reads: u32,
    data_events: u64,
    cuts: CutState,
    pacing: Pacing,
    /// Idle probes: stop reading then.
    idle_until: Option<Instant>,
    /// Waiting for heartbeats: once the stream has been silent for 3 x its interval the
    /// evidence is in (the contract allows 2 x), so stop instead of waiting for the deadline.
    waits_for_heartbeats: bool,
    heartbeat_ms: Option<u64>,
    last_activity: Instant,
    /// Publishing is over, the client reads at full speed, and no data came for
    /// [`STALL`]: what it is still owed is not coming (lost); stop instead of waiting
    /// for the deadline. A correct target delivers continuously, so this only shortens
    /// failures.
    last_data: Instant,
    /// Set when an event-counted cut fell inside a chunk: the last event id as of the
    /// k-th event, which the next connection resumes from (the parser read further).
    cut_after: Option<String>,
}

impl Reader {
    fn new(a: &Attempt<'_>, st: &State, cut: Option<Cut>) -> Reader {
        let plan = a.plan;
        let mode = if plan.strict {
            Mode::Strict
        } else {
            Mode::Lenient
        };
        let mut parser = Parser::new(ParserConfig {
            mode,
            ..ParserConfig::default()
        });
        if let Some(c) = &st.last_id {
            parser.set_last_event_id(c);
        }
        Reader {
            cut_after: None,
            mode,
            parser,
            items: Vec::new(),
            buf: vec![0u8; READ_MIN],
            small_reads: 0,
            data_events: 0,
            cuts: CutState::new(cut),
            pacing: Pacing::new(plan.bytes_per_sec, plan.slow_for),
            idle_until: match plan.until {
                Until::For(d) => Some(Instant::now() + d),
                _ => None,
            },
            waits_for_heartbeats: matches!(
                plan.until,
                Until::Frames {
                    kind: Counted::Heartbeat,
                    ..
                }
            ),
            heartbeat_ms: st.heartbeat_ms,
            last_activity: Instant::now(),
            last_data: Instant::now(),
        }
    }

    /// Before a read: how the connection ends now, or how many bytes the read may take
    /// and when to wake up if nothing comes.
    fn before_read(
        &self,
        a: &Attempt<'_>,
        st: &mut State,
        body_bytes: u64,
        published: bool,
    ) -> Result<(usize, Instant), ConnEnd> {
        let plan = a.plan;
        if matches!(plan.until, Until::CaughtUp) && st.caught_up(a.ledger, published) {
            return Err(ConnEnd::Finished);
        }
        let now = Instant::now();
        if now >= plan.deadline {
            return Err(ConnEnd::Deadline);
        }
        let idle_over = self.idle_until.is_some_and(|t| now >= t);
        let counted = match &plan.until {
            Until::Frames { kind, count } => st.frames_of(*kind) >= *count,
            Until::Markers(ms) => ms.iter().all(|m| st.received.contains(m)),
            _ => false,
        };
        if idle_over || counted {
            return Err(ConnEnd::Finished);
        }
        let limit = self.cuts.before_read(body_bytes)?;
        let want = self
            .pacing
            .read_size(self.buf.len())
            .min(limit.unwrap_or(usize::MAX));
        let stall_at =
            (matches!(plan.until, Until::CaughtUp) && published && !self.pacing.trickle())
                .then(|| self.last_data + STALL);
        if stall_at.is_some_and(|t| now >= t) {
            return Err(ConnEnd::Deadline);
        }
        let silence_limit = self
            .heartbeat_ms
            .filter(|_| self.waits_for_heartbeats)
            .map(|ms| {
                let proxy = a.target.route.as_ref().map_or(0, |r| r.subscriber_delay_ms);
                let wait = ms.saturating_mul(3).saturating_add(proxy.saturating_mul(2));
                self.last_activity + Duration::from_millis(wait)
            });
        if silence_limit.is_some_and(|t| now >= t) {
            return Err(ConnEnd::Finished);
        }
        let watchdog = self
            .heartbeat_ms
            .filter(|_| plan.reconnect_on_silence)
            .map(|ms| {
                let allowance_ms = ms.saturating_mul(2);
                (
                    allowance_ms,
                    self.last_activity + Duration::from_millis(allowance_ms),
                )
            });
        if let Some((allowance_ms, at)) = watchdog
            && now >= at
        {
            return Err(ConnEnd::Silent { allowance_ms });
        }
        let wake = [
            Some(plan.deadline),
            self.idle_until,
            silence_limit,
            stall_at,
            watchdog.map(|(_, at)| at),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(plan.deadline);
        Ok((want, wake))
    }

    /// The read loop: until the plan, a cut, the target or a cap ends the connection.
    async fn read(
        &mut self,
        a: &Attempt<'_>,
        resp: &mut sse_wire::Response,
        conn: &mut Connection,
        sig: &Signals,
        st: &mut State,
        paused: &mut bool,
    ) -> ConnEnd {
        let (mut burst, mut published, mut stop) =
            (sig.burst.clone(), sig.published.clone(), sig.stop.clone());
        loop {
            if *stop.borrow() {
                return ConnEnd::Finished;
            }
            let is_published = *published.borrow();
            let (want, wake) = match self.before_read(a, st, conn.body_bytes, is_published) {
                Ok(w) => w,
                Err(end) => return end,
            };
            let read = tokio::select! {
                r = resp.read_body(&mut self.buf[..want]) => Some(r),
                _ = tokio::time::sleep_until(wake) => None,
                _ = burst.changed(), if self.cuts.on_burst() => return self.cuts.end(conn.body_bytes),
                _ = published.changed(), if matches!(a.plan.until, Until::CaughtUp) => continue,
                _ = stop.changed() => continue,
            };
            let n = match read {
                None => continue,
                Some(Ok(0)) => return ConnEnd::ServerClosed,
                Some(Ok(n)) => n,
                Some(Err(e)) => {
                    return ConnEnd::Failed {
                        error: e.to_string(),
                    };
                }
            };
            if let Some(end) = self.take(a, conn, sig, st, n) {
                return end;
            }
            self.size_buf(n);
            if !*paused && a.index == 0 && self.data_events >= a.plan.pause_after_events {
                *paused = true;
                let left = a.plan.deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(a.plan.pause.min(left)).await;
                self.last_data = Instant::now();
            }
            if let Some(budget) = self.pacing.budget(n) {
                let left = a.plan.deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(budget.min(left)).await;
            }
        }
    }

    /// Sizes the read buffer after a read of `n` bytes: a stream that keeps filling it
    /// is read in ever larger reads (drain speed), an idle one holds [`READ_MIN`] bytes.
    fn size_buf(&mut self, n: usize) {
        let len = self.buf.len();
        if n == len && len < READ_MAX {
            self.buf.resize((2 * len).min(READ_MAX), 0);
            self.small_reads = 0;
        } else if n < len / 8 && len > READ_MIN {
            self.small_reads += 1;
            if self.small_reads >= SHRINK_AFTER {
                self.buf = vec![0u8; READ_MIN];
                self.small_reads = 0;
            }
        } else {
            self.small_reads = 0;
        }
    }

    /// Takes the `n` bytes just read: parses and records them (within the caps) and
    /// says whether the connection ends now (a cap, the parser's limit, a cut).
    fn take(
        &mut self,
        a: &Attempt<'_>,
        conn: &mut Connection,
        sig: &Signals,
        st: &mut State,
        n: usize,
    ) -> Option<ConnEnd> {
        let at = a.us();
        // Subscribed for sure once the first body bytes arrive (some targets register
        // the subscriber only when they send them).
        st.established(conn, Some(at), &sig.opened, &a.plan.id);
        conn.body_bytes += n as u64;
        let chunk = &self.buf[..n];
        let aim_hit = self.cuts.scan(chunk);
        self.parser.feed(chunk, &mut self.items);
        self.last_activity = Instant::now();
        let data_before = self.data_events;
        let mut capped = None;
        for it in self.items.drain(..) {
            if let Item::Event(ev) = &it
                && ev.event_type == "connection_open"
                && self.heartbeat_ms.is_none()
            {
                self.heartbeat_ms = harness_model::heartbeat::interval_ms_of_data(&ev.data);
            }
            if let Err(limit) = admit(conn, &it, self.mode, a.target, a.ledger) {
                capped = Some(limit);
                break;
            }
            let last_id = match &it {
                Item::Event(ev) if self.cuts.counts_events() => Some(ev.last_event_id.clone()),
                _ => None,
            };
            record(conn, a.target, self.mode, it, at, &mut self.data_events, st);
            if last_id.is_some() && self.cuts.after_events(self.data_events) {
                // Cut right after the k-th event: what the chunk holds beyond it was
                // never received (the target sends it again on resume).
                self.cut_after = last_id;
                break;
            }
        }
        if let Some(limit) = capped {
            return Some(ConnEnd::RecordLimit { limit });
        }
        if self.data_events > data_before {
            self.last_data = self.last_activity;
        }
        if self.parser.is_stopped() {
            return Some(ConnEnd::ParserLimit);
        }
        if let Some(aim) = self.cuts.aim_missed(self.data_events) {
            // Its place never came: the next planned cut takes over this connection.
            conn.aims_without_place.push(aim);
            self.cuts
                .give_way(st.cuts.pop_front(), self.data_events, conn.body_bytes);
        }
        (aim_hit || self.cuts.after_events(self.data_events))
            .then(|| self.cuts.end(conn.body_bytes))
    }
}

/// Whether `it` may be recorded on `conn` within the caps (see `limits`); when not,
/// the connection must stop (a flood).
fn admit(
    conn: &Connection,
    it: &Item,
    mode: Mode,
    target: &Target,
    ledger: &Ledger,
) -> Result<(), harness_model::RecordLimit> {
    if matches!(it, Item::Violation(v) if !v.is_failure(mode)) {
        return Ok(());
    }
    let held = crate::limits::Held {
        frames: conn.frames.len(),
        comments: conn.comments.len(),
        retries: conn.retries.len(),
        violations: conn.violations.len(),
    };
    crate::limits::admit(it, held, &target.limits, &ledger.budget)
}

/// The recording's name for a parser violation.
fn violation(kind: sse_wire::ViolationKind) -> harness_model::WireViolation {
    use harness_model::WireViolation as W;
    use sse_wire::ViolationKind as V;
    match kind {
        V::InvalidUtf8 => W::InvalidUtf8,
        V::LineTooLong => W::LineTooLong,
        V::EventTooLarge => W::EventTooLarge,
        V::BadRetry => W::BadRetry,
        V::NulInId => W::NulInId,
    }
}

fn record(
    conn: &mut Connection,
    target: &Target,
    mode: Mode,
    it: Item,
    at: u64,
    data_events: &mut u64,
    st: &mut State,
) {
    match it {
        Item::Event(ev) => {
            let kind = classify(&target.profile, &ev.event_type, ev.id.as_deref(), &ev.data);
            if let Some(counted) = Counted::of(&kind) {
                *st.seen.entry(counted).or_default() += 1;
            }
            if let FrameKind::Data(d) = &kind {
                *data_events += 1;
                if let Some(m) = &d.marker {
                    st.note(m);
                }
            }
            conn.frames.push(Frame {
                event: ev.event_type,
                id: ev.id,
                data: ev.data,
                at_us: at,
                start: ev.start,
                end: ev.end,
                kind,
            });
        }
        Item::Comment { offset, text } => {
            // A comment is a heartbeat only where the profile says heartbeats are
            // comments: a server that sends comments beside its heartbeat events (a
            // legal choice) must not end a heartbeat-counting client early.
            if target.profile.heartbeat.form == crate::profile::HeartbeatKind::Comment {
                *st.seen.entry(Counted::Heartbeat).or_default() += 1;
            }
            conn.comments.push(Comment {
                at_us: at,
                offset,
                text,
            })
        }
        Item::Retry { offset, millis } => conn.retries.push((offset, millis)),
        Item::Violation(v) => {
            if v.is_failure(mode) {
                conn.violations.push(WireIssue {
                    offset: v.offset,
                    kind: violation(v.kind),
                    detail: v.detail,
                });
            }
        }
        Item::Discarded { .. } | Item::UnknownField { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target that refuses every connection is given up on after about 10 s of
    /// backing off; one restarted on purpose is waited for until the deadline, a second
    /// at a time; a target that ends every stream at once, never beyond the cap.
    #[test]
    fn clients_give_up_on_a_dead_target_but_ride_out_a_restart() {
        assert!(!gives_up(false, GIVE_UP_AFTER_FAILURES - 1, 20));
        assert!(gives_up(false, GIVE_UP_AFTER_FAILURES, 20));
        assert!(!gives_up(true, 10_000, 20));
        assert!(gives_up(true, 0, MAX_CONNECTIONS));
        let waited: Duration = (1..=GIVE_UP_AFTER_FAILURES).map(backoff).sum();
        assert_eq!(waited, Duration::from_millis(10_500));
        assert_eq!(backoff(10_000), Duration::from_secs(1));
    }
}
