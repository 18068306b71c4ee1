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
    ClientId, Comment, ConnEnd, Connection, CutAim, Frame, FrameKind, IdMode, StreamKind,
    Subscription, Transcript, WireIssue,
};
use sse_wire::{ConnectOptions, Item, Mode, Parser, ParserConfig, RequestSpec};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::classify::classify;
use crate::ledger::Ledger;
use crate::target::Target;

/// One planned disconnect.
#[derive(Clone, Debug, PartialEq)]
pub enum Cut {
    /// Close after this many body bytes of the connection.
    AtByte(u64),
    /// Close at a place in the framing.
    Aim(CutAim),
    /// Close after this many data events of the connection.
    AfterEvents(u64),
    /// Close right after the first body bytes arrive.
    Rapid,
    /// Close when the group's burst signal fires.
    Burst,
}

impl Cut {
    fn name(&self) -> String {
        match self {
            Cut::AtByte(_) => "random-byte".into(),
            Cut::Aim(a) => a.name().into(),
            Cut::AfterEvents(_) => "after-events".into(),
            Cut::Rapid => "rapid-cycle".into(),
            Cut::Burst => "burst".into(),
        }
    }
}

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
}

/// The frames a client counts, for [`Until::Frames`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counted {
    /// Data events.
    Data,
    /// Heartbeats: heartbeat events or comment lines.
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
    /// When to stop.
    pub until: Until,
    /// Reconnect when the server ends the stream (event streams) or not (task, version, probes).
    pub reconnect: bool,
    /// Absolute deadline.
    pub deadline: Instant,
    /// Strict parsing.
    pub strict: bool,
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
    };
    let mut cuts = plan.cuts.clone();
    let mut connections = Vec::new();
    let mut paused = plan.pause_after_events == 0;
    let mut consecutive_failures = 0u32;
    loop {
        let cut = cuts.pop_front();
        let index = connections.len() as u32;
        let conn = connect_once(
            &target,
            &ledger,
            &plan,
            &mut sig,
            epoch,
            &mut st,
            index,
            cut.clone(),
            &mut paused,
        )
        .await;
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
            ConnEnd::Cut { .. } => !plan.reconnect && cuts.is_empty(),
            ConnEnd::ServerClosed | ConnEnd::Failed { .. } | ConnEnd::ConnectFailed { .. } => {
                !plan.reconnect || matches!(plan.until, Until::ServerEnds)
            }
        };
        if done || Instant::now() >= plan.deadline || *sig.stop.borrow() {
            break;
        }
        if consecutive_failures >= 20 || connections.len() >= 5000 {
            break;
        }
        if consecutive_failures > 0 {
            // A target that refuses or drops connections: back off a little, bounded.
            tokio::time::sleep(Duration::from_millis(50 * u64::from(consecutive_failures))).await;
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
    }
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

/// Scans raw bytes for the place a framing-aimed cut targets.
struct AimScanner {
    aim: CutAim,
    /// The current line's first bytes (enough to see its field name).
    line: Vec<u8>,
    /// The current event has had an `id:` line (so it is a data event, not lifecycle).
    event_has_id: bool,
    /// The previous byte was a CR (a following LF belongs to the same line ending).
    prev_cr: bool,
    /// The line that ended last was a `data:` line.
    last_ended_data: bool,
}

impl AimScanner {
    fn new(aim: CutAim) -> AimScanner {
        AimScanner {
            aim,
            line: Vec::new(),
            event_has_id: false,
            prev_cr: false,
            last_ended_data: false,
        }
    }

    /// Feeds one byte; true when the cut should happen right after it.
    fn hit(&mut self, b: u8) -> bool {
        let term = b == b'\n' || b == b'\r';
        let l = &self.line;
        let hit = match self.aim {
            CutAim::InsideId => !term && l.starts_with(b"id:") && l.len() >= 4,
            CutAim::InsideData => {
                !term && self.event_has_id && l.starts_with(b"data:") && l.len() >= 9
            }
            CutAim::InsideEventName => {
                !term && self.event_has_id && l.starts_with(b"event:") && l.len() >= 8
            }
            CutAim::InsideUtf8 => self.event_has_id && b >= 0xC0,
            // After the first byte of an `id:` line's terminator: between CR and LF on CRLF servers.
            CutAim::CrLf => term && l.starts_with(b"id:"),
            // After a data line's full terminator, before the blank line that dispatches it.
            CutAim::BetweenNewlines => {
                b == b'\n'
                    && self.event_has_id
                    && (l.starts_with(b"data:")
                        || (self.prev_cr && l.is_empty() && self.last_ended_data))
            }
        };
        if term {
            if b == b'\n' && self.prev_cr && self.line.is_empty() {
                // The LF of a CRLF pair: the same line ending.
            } else if self.line.is_empty() {
                self.event_has_id = false;
                self.last_ended_data = false;
            } else {
                if self.line.starts_with(b"id:") {
                    self.event_has_id = true;
                }
                self.last_ended_data = self.line.starts_with(b"data:");
                self.line.clear();
            }
            self.prev_cr = b == b'\r';
        } else {
            if self.line.len() < 64 {
                self.line.push(b);
            }
            self.prev_cr = false;
        }
        hit
    }
}

#[allow(clippy::too_many_arguments)]
async fn connect_once(
    target: &Target,
    ledger: &Ledger,
    plan: &ClientPlan,
    sig: &mut Signals,
    epoch: Instant,
    st: &mut State,
    index: u32,
    cut: Option<Cut>,
    paused: &mut bool,
) -> Connection {
    let mut path = plan.path.clone();
    let mut headers = target.auth_headers();
    for (k, v) in &target.profile.subscribe.headers {
        headers.push((k.clone(), v.clone()));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
    {
        headers.push(("Accept".into(), "text/event-stream".into()));
    }
    let cursor = st.last_id.clone().filter(|c| !c.is_empty());
    if let Some(c) = &cursor {
        match &plan.cursor_query {
            Some(q) => {
                path.push(if path.contains('?') { '&' } else { '?' });
                path.push_str(&format!("{q}={}", crate::target::encode_segment(c)));
            }
            None => headers.push((target.profile.subscribe.cursor_header.clone(), c.clone())),
        }
    }
    if let Some(c) = &plan.correlation {
        headers.push(("X-Correlation-ID".into(), c.clone()));
    }
    let mut conn = Connection {
        index,
        cursor: cursor.clone(),
        correlation_sent: plan.correlation.clone(),
        opened_us: us(epoch),
        head_us: None,
        first_byte_us: None,
        status: None,
        headers: Default::default(),
        error_body: None,
        retries: Vec::new(),
        comments: Vec::new(),
        frames: Vec::new(),
        violations: Vec::new(),
        body_bytes: 0,
        end: ConnEnd::Finished,
        ended_us: 0,
    };
    let left = plan.deadline.saturating_duration_since(Instant::now());
    let opts = ConnectOptions {
        rcvbuf: plan.rcvbuf,
        connect_timeout: left.min(Duration::from_secs(10)),
        head_timeout: left.min(Duration::from_secs(15)),
    };
    let req = RequestSpec {
        method: "GET".into(),
        path_and_query: path,
        headers,
        body: None,
    };
    let mut resp = match sse_wire::open(&target.wire, &req, &opts).await {
        Ok(r) => r,
        Err(e) => {
            conn.end = ConnEnd::ConnectFailed {
                error: e.to_string(),
            };
            conn.ended_us = us(epoch);
            return conn;
        }
    };
    conn.head_us = Some(us(epoch));
    conn.status = Some(resp.status);
    conn.headers = resp
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    if !(200..300).contains(&resp.status) {
        st.established(&mut conn, None, &sig.opened, &plan.id);
        // The body of a refusal is the target's too: bounded in size and in time.
        let limit = target.limits.error_body_bytes;
        conn.error_body = Some(
            match tokio::time::timeout_at(plan.deadline, resp.read_to_end_limited(limit)).await {
                Ok(Ok(body)) => String::from_utf8_lossy(&body).into_owned(),
                Ok(Err(e)) => format!("(body unreadable: {e})"),
                Err(_) => "(body did not arrive before the scenario's deadline)".to_owned(),
            },
        );
        conn.end = ConnEnd::Refused;
        conn.ended_us = us(epoch);
        return conn;
    }

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
    let mut items = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut data_events = 0u64;
    let mut aim = match &cut {
        Some(Cut::Aim(a)) => Some(AimScanner::new(*a)),
        _ => None,
    };
    let started = Instant::now();
    let idle_until = match plan.until {
        Until::For(d) => Some(Instant::now() + d),
        _ => None,
    };
    // Waiting for heartbeats: once the stream has been silent for 3 x its interval the
    // evidence is in (the contract allows 2 x), so stop instead of waiting for the deadline.
    let waits_for_heartbeats = matches!(
        plan.until,
        Until::Frames {
            kind: Counted::Heartbeat,
            ..
        }
    );
    let mut heartbeat_ms = target.profile.heartbeat.interval_ms;
    let mut last_activity = Instant::now();
    // Publishing is over, the client reads at full speed, and no data came for this
    // long: what it is still owed is not coming (lost); stop instead of waiting for the
    // deadline. A correct target delivers continuously, so this only shortens failures.
    let mut last_data = Instant::now();
    let mut burst = sig.burst.clone();
    let mut published = sig.published.clone();
    let mut stop = sig.stop.clone();
    let end = loop {
        if *stop.borrow() {
            break ConnEnd::Finished;
        }
        if matches!(plan.until, Until::CaughtUp) && st.caught_up(ledger, *published.borrow()) {
            break ConnEnd::Finished;
        }
        let now = Instant::now();
        if now >= plan.deadline {
            break ConnEnd::Deadline;
        }
        if let Some(t) = idle_until
            && now >= t
        {
            break ConnEnd::Finished;
        }
        if let Until::Frames { kind, count } = plan.until
            && st.frames_of(kind) >= count
        {
            break ConnEnd::Finished;
        }
        // How many bytes this read may take.
        let slow = plan.bytes_per_sec > 0
            && (plan.slow_for.is_zero() || started.elapsed() < plan.slow_for);
        let mut want = buf.len();
        if slow {
            want = want.min(((plan.bytes_per_sec / 20).max(1)) as usize);
        }
        if aim.is_some() {
            want = 1;
        }
        if let Some(Cut::AtByte(k)) = &cut {
            let left = k.saturating_sub(conn.body_bytes);
            if left == 0 {
                break cut_end(&cut, conn.body_bytes);
            }
            want = want.min(left as usize);
        }
        if matches!(cut, Some(Cut::Rapid)) && conn.body_bytes > 0 {
            break cut_end(&cut, conn.body_bytes);
        }
        // (Readers slower than 1 KiB/s may go that long without a whole frame.)
        let trickle = slow && plan.bytes_per_sec < 1024;
        let stall_at = (matches!(plan.until, Until::CaughtUp) && *published.borrow() && !trickle)
            .then(|| last_data + STALL);
        if stall_at.is_some_and(|t| now >= t) {
            break ConnEnd::Deadline;
        }
        let silence_limit = heartbeat_ms
            .filter(|_| waits_for_heartbeats)
            .map(|ms| last_activity + Duration::from_millis(ms.saturating_mul(3)));
        if silence_limit.is_some_and(|t| now >= t) {
            break ConnEnd::Finished;
        }
        let wake = [Some(plan.deadline), idle_until, silence_limit, stall_at]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(plan.deadline);
        let read = tokio::select! {
            r = resp.read_body(&mut buf[..want]) => Some(r),
            _ = tokio::time::sleep_until(wake) => None,
            _ = burst.changed(), if matches!(cut, Some(Cut::Burst)) => {
                break cut_end(&cut, conn.body_bytes);
            }
            _ = published.changed(), if matches!(plan.until, Until::CaughtUp) => continue,
            _ = stop.changed() => continue,
        };
        let Some(read) = read else { continue };
        let n = match read {
            Ok(0) => break ConnEnd::ServerClosed,
            Ok(n) => n,
            Err(e) => {
                break ConnEnd::Failed {
                    error: e.to_string(),
                };
            }
        };
        let at = us(epoch);
        // Subscribed for sure once the first body bytes arrive (some targets register
        // the subscriber only when they send them).
        st.established(&mut conn, Some(at), &sig.opened, &plan.id);
        conn.body_bytes += n as u64;
        let chunk = &buf[..n];
        let mut aim_hit = false;
        if let Some(a) = &mut aim {
            aim_hit = chunk.iter().any(|&b| a.hit(b));
        }
        parser.feed(chunk, &mut items);
        last_activity = Instant::now();
        let data_before = data_events;
        let mut capped = None;
        for it in items.drain(..) {
            if let Item::Event(ev) = &it
                && ev.event_type == "connection_open"
                && heartbeat_ms.is_none()
            {
                heartbeat_ms = harness_model::heartbeat::interval_ms_of_data(&ev.data);
            }
            if let Err(limit) = admit(&conn, &it, mode, target, ledger) {
                capped = Some(limit);
                break;
            }
            record(&mut conn, target, mode, it, at, &mut data_events, st);
        }
        if let Some(limit) = capped {
            break ConnEnd::RecordLimit { limit };
        }
        if data_events > data_before {
            last_data = last_activity;
        }
        if parser.is_stopped() {
            break ConnEnd::ParserLimit;
        }
        if aim_hit {
            break cut_end(&cut, conn.body_bytes);
        }
        if let Some(Cut::AfterEvents(k)) = &cut
            && data_events >= *k
        {
            break cut_end(&cut, conn.body_bytes);
        }
        if !*paused && index == 0 && data_events >= plan.pause_after_events {
            *paused = true;
            tokio::time::sleep(
                plan.pause
                    .min(plan.deadline.saturating_duration_since(Instant::now())),
            )
            .await;
            last_data = Instant::now();
        }
        if slow {
            // Rate control, not synchronisation: hold the reader to its byte budget.
            let budget = Duration::from_secs_f64(n as f64 / plan.bytes_per_sec as f64);
            tokio::time::sleep(budget.min(plan.deadline.saturating_duration_since(Instant::now())))
                .await;
        }
    };
    let mut tail = Vec::new();
    parser.finish(&mut tail);
    let at = us(epoch);
    for it in tail {
        if admit(&conn, &it, mode, target, ledger).is_err() {
            break;
        }
        record(&mut conn, target, mode, it, at, &mut data_events, st);
    }
    // Resume with the id of the last event actually dispatched (not the id of an event
    // the cut interrupted). An empty id resets: the next connection has no cursor.
    st.last_id = Some(parser.reconnect_id().to_owned()).filter(|s| !s.is_empty());
    if matches!(end, ConnEnd::Cut { .. }) && plan.reset {
        resp.reset();
    } else {
        resp.close();
    }
    conn.end = end;
    conn.ended_us = us(epoch);
    conn
}

fn cut_end(cut: &Option<Cut>, after: u64) -> ConnEnd {
    ConnEnd::Cut {
        after_byte: after,
        aim: cut.as_ref().map(Cut::name).unwrap_or_default(),
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
            *st.seen.entry(Counted::Heartbeat).or_default() += 1;
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
                    kind: v.kind.name().to_owned(),
                    detail: v.detail,
                });
            }
        }
        Item::Discarded { .. } | Item::UnknownField { .. } => {}
    }
}
