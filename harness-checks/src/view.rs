//! The derived view every family reads, computed in one pass before any family runs:
//! the per-client list of delivered data events and its owed rule, the ack ledger
//! indexed by seq and marker, each publisher's ack order, the writes that vanished in
//! a restart; the helpers that name places and shapes in evidence (`error_shape`); and
//! the checking context that collects findings for the judged families only.
//! Families read this view and emit findings; they never call each other.

use std::collections::{BTreeMap, BTreeSet};

pub(crate) use harness_model::Cursor;
use harness_model::{
    Ack, ClientId, CloseReason, ConnEnd, Connection, Contracts, DataEvent, Evidence, Finding,
    Frame, FrameKind, Indeterminate, KnownContract, Recording, Seq, StreamKind, Subscription,
    Transcript,
};
use serde_json::Value;

use crate::{CheckConfig, IdMode};

/// Grace after an ack before a client that stopped reading is considered to have
/// missed it at the tail: deliveries in flight when the scenario ended are not losses.
pub(crate) const TAIL_GRACE_US: u64 = 1_000_000;

/// One data event as a client received it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Delivery<'a> {
    /// Position of the connection in `Transcript::connections`.
    pub conn_pos: usize,
    /// Index of the frame in its connection.
    pub frame_pos: usize,
    /// The connection it came on.
    pub conn: &'a Connection,
    /// The frame.
    pub frame: &'a Frame,
    /// Its identity.
    pub ev: &'a DataEvent,
}

impl Delivery<'_> {
    /// Evidence pointing at this delivery.
    pub fn evidence(&self, client: &ClientId) -> Evidence {
        Evidence {
            seq: self.ev.seq,
            marker: self.ev.marker.clone(),
            ..at_frame(client, self.conn, Some(self.frame))
        }
    }

    /// "conn 2 byte 881", for naming the other place of a pair.
    pub fn place(&self) -> String {
        format!("conn {} byte {}", self.conn.index, self.frame.start)
    }
}

/// A client's transcript with its deliveries in receive order.
#[derive(Debug)]
pub(crate) struct ClientView<'a> {
    /// The transcript.
    pub t: &'a Transcript,
    /// Every data frame received, in order, over all connections.
    pub deliveries: Vec<Delivery<'a>>,
    /// What the owed rule knows about it.
    pub sub: Subscription,
}

/// Reads a cursor as sent.
pub(crate) fn cursor_of(c: &Option<String>) -> Cursor<'_> {
    Cursor::parse(c.as_deref())
}

impl<'a> ClientView<'a> {
    fn new(t: &'a Transcript) -> Self {
        let mut deliveries = Vec::new();
        for (conn_pos, conn) in t.connections.iter().enumerate() {
            for (frame_pos, frame) in conn.frames.iter().enumerate() {
                if let FrameKind::Data(ev) = &frame.kind {
                    deliveries.push(Delivery {
                        conn_pos,
                        frame_pos,
                        conn,
                        frame,
                        ev,
                    });
                }
            }
        }
        ClientView {
            t,
            deliveries,
            sub: Subscription::of(t),
        }
    }

    /// The client's name.
    pub fn id(&self) -> &'a ClientId {
        &self.t.client
    }

    /// Whether an event of `job` is one this client must receive (unknown job: only
    /// when the client takes every job).
    pub fn wants(&self, job: Option<&str>) -> bool {
        self.t.jobs.is_empty() || job.is_some_and(|j| self.sub.reads(j))
    }

    /// The connections' deliveries, grouped by connection position.
    pub fn by_conn(&self) -> BTreeMap<usize, Vec<Delivery<'a>>> {
        let mut m: BTreeMap<usize, Vec<Delivery<'a>>> = BTreeMap::new();
        for d in &self.deliveries {
            m.entry(d.conn_pos).or_default().push(*d);
        }
        m
    }

    /// Whether a correct target must deliver this ack to the client: the one owed
    /// rule of [`harness_model::owed`] (a client that never connected is owed nothing).
    pub fn owed(&self, ack: &Ack, ids: IdMode) -> bool {
        !self.t.connections.is_empty() && self.sub.owes(ack, ids)
    }

    /// Whether a missing ack after the client's last delivery is a loss: the client was
    /// owed it and did not get it, whatever ended its last connection, except where the
    /// harness itself stopped reading: a cut of its own that it did not follow with a
    /// reconnect, or a recording cap (what came after the cap was not recorded, so it
    /// cannot be judged; `gate.record-limit` fails the scenario). The target refused
    /// the reconnect (or its body never came), the harness read until the end or a
    /// deadline well after the ack, or the target closed or reset the stream after
    /// acknowledging the write and the client did not come back.
    pub fn tail_owed(&self, ack: &Ack, ids: IdMode) -> bool {
        if !self.owed(ack, ids) {
            return false;
        }
        let Some(last) = self.t.connections.last() else {
            return false;
        };
        match last.end {
            ConnEnd::Refused | ConnEnd::ConnectFailed { .. } => true,
            ConnEnd::Finished | ConnEnd::Deadline | ConnEnd::Silent { .. } => {
                ack.acked_us.saturating_add(TAIL_GRACE_US) <= last.ended_us
            }
            // Acked while the stream was still open: a correct target had it to send.
            ConnEnd::ServerClosed | ConnEnd::Failed { .. } | ConnEnd::ParserLimit => {
                ack.acked_us <= last.ended_us
            }
            ConnEnd::Cut { .. } | ConnEnd::RecordLimit { .. } => false,
        }
    }
}

/// The checking context: inputs, derived views, and the findings so far.
pub(crate) struct Ctx<'a> {
    pub contracts: &'a Contracts,
    pub cfg: &'a CheckConfig,
    pub rec: &'a Recording,
    /// One view per transcript, in recording order.
    pub clients: Vec<ClientView<'a>>,
    /// Acks by the seq the target returned.
    pub ack_by_seq: BTreeMap<Seq, Vec<&'a Ack>>,
    /// Acks by marker.
    pub ack_by_marker: BTreeMap<&'a str, &'a Ack>,
    /// Each publisher's acks in ack order.
    pub order: PublisherOrder<'a>,
    /// Markers of acks that durability reports as lost in a restart; the delivery and
    /// resume families leave them alone so one problem is reported once.
    pub vanished: BTreeSet<&'a str>,
    /// The writes of publish requests that lost an answer (resolved by a retry's ack
    /// or not), by marker: `delivery.indeterminate` judges them.
    pub uncertain: BTreeMap<&'a str, &'a Indeterminate>,
    out: Vec<Finding>,
}

impl<'a> Ctx<'a> {
    /// Whether `conn` of `t` is a `204 No Content` answering a task stream resumed at
    /// or after its job's terminal event: spine v1.1 §4.1.2 allows it there ("the task
    /// is over", said the way that stops a bare `EventSource`). Only there: the cursor
    /// sent must be at or above the id of a terminal event some client of the same job
    /// received, so a 204 where events were still owed is judged like any answer that
    /// is not a stream.
    pub fn finished_task_204(&self, t: &Transcript, conn: &Connection) -> bool {
        if t.stream != StreamKind::Task || conn.status != Some(204) {
            return false;
        }
        let Some(cursor) = conn.cursor.as_deref().and_then(|c| c.parse::<u64>().ok()) else {
            return false;
        };
        self.rec
            .transcripts
            .iter()
            .filter(|o| o.stream == StreamKind::Task && o.jobs == t.jobs)
            .flat_map(|o| &o.connections)
            .flat_map(|c| &c.frames)
            .filter_map(|f| match &f.kind {
                FrameKind::Data(d)
                    if matches!(
                        d.event_type.as_deref(),
                        Some("task_completed" | "task_failed")
                    ) =>
                {
                    f.id.as_deref().and_then(|id| id.parse::<u64>().ok())
                }
                _ => None,
            })
            .any(|terminal| cursor >= terminal)
    }

    pub fn new(contracts: &'a Contracts, cfg: &'a CheckConfig, rec: &'a Recording) -> Self {
        let clients = rec.transcripts.iter().map(ClientView::new).collect();
        let mut ack_by_seq: BTreeMap<Seq, Vec<&Ack>> = BTreeMap::new();
        let mut ack_by_marker = BTreeMap::new();
        for a in &rec.acks {
            if let Some(s) = a.seq {
                ack_by_seq.entry(s).or_default().push(a);
            }
            ack_by_marker.entry(a.marker.as_str()).or_insert(a);
        }
        let mut ctx = Ctx {
            contracts,
            cfg,
            rec,
            clients,
            ack_by_seq,
            ack_by_marker,
            order: PublisherOrder::new(&rec.acks),
            vanished: BTreeSet::new(),
            uncertain: rec
                .indeterminate
                .iter()
                .flat_map(|w| w.markers.iter().map(move |m| (m.as_str(), w)))
                .collect(),
            out: Vec::new(),
        };
        if ctx.enabled("durability") {
            ctx.vanished = vanished(&ctx);
        }
        ctx
    }

    /// Whether `marker` is a write whose fate stayed unknown (no attempt of its request
    /// was acknowledged): it is owed to no one until someone receives it.
    pub fn unknown_fate(&self, marker: &str) -> bool {
        self.uncertain.get(marker).is_some_and(|w| !w.resolved)
    }

    /// Whether `family` is judged in this scenario.
    pub fn enabled(&self, family: &str) -> bool {
        self.cfg.families.is_empty() || self.cfg.families.iter().any(|f| f.name() == family)
    }

    /// Records a finding for contract `id` whatever families are judged (gates).
    pub fn emit_always(&mut self, id: KnownContract, evidence: Evidence) {
        self.out.push(self.contracts.finding(id, evidence));
    }

    /// Records a finding for contract `id` when its family is judged.
    pub fn emit(&mut self, id: KnownContract, evidence: Evidence) {
        if self.enabled(id.id().family()) {
            self.out.push(self.contracts.finding(id, evidence));
        }
    }

    /// Records a finding for contract `id` at `level` (where the profile sets the
    /// level, as for `wire.*`), when its family is judged or `always`.
    pub fn emit_at(
        &mut self,
        id: KnownContract,
        level: harness_model::Level,
        evidence: Evidence,
        always: bool,
    ) {
        if always || self.enabled(id.id().family()) {
            let mut f = self.contracts.finding(id, evidence);
            f.level = level;
            self.out.push(f);
        }
    }

    /// The client's view, by name.
    pub fn client(&self, id: &ClientId) -> Option<&ClientView<'a>> {
        self.clients.iter().find(|c| c.id() == id)
    }

    /// Whether the scenario arranged something special for this client (a 400, a
    /// cursor above the head, an unknown task, a version stream): such clients are
    /// judged by their own shape contracts, not by the generic delivery rules.
    pub fn has_expectation(&self, id: &ClientId) -> bool {
        self.rec.expect.shapes(id)
    }

    /// Clients whose log deliveries are judged (events and task streams, no special shape).
    pub fn log_clients(&self) -> impl Iterator<Item = &ClientView<'a>> {
        self.clients
            .iter()
            .filter(|c| c.t.stream != StreamKind::Version && !self.has_expectation(c.id()))
    }

    /// The findings, sorted.
    pub fn finish(mut self) -> Vec<Finding> {
        self.out.sort_by(|a, b| {
            let (x, y) = (&a.evidence, &b.evidence);
            (
                &a.contract,
                &x.client,
                x.connection,
                x.seq,
                x.byte_offset,
                &x.marker,
            )
                .cmp(&(
                    &b.contract,
                    &y.client,
                    y.connection,
                    y.seq,
                    y.byte_offset,
                    &y.marker,
                ))
                .then_with(|| (&x.expected, &x.seen).cmp(&(&y.expected, &y.seen)))
        });
        self.out
    }
}

/// Each publisher's acks in ack order, and each ack's (publisher, position).
pub(crate) struct PublisherOrder<'a> {
    /// Each publisher's acks, in ack order.
    pub lists: BTreeMap<u32, Vec<&'a Ack>>,
    /// Each marker's publisher and position in its list.
    pub pos: BTreeMap<&'a str, (u32, usize)>,
}

impl<'a> PublisherOrder<'a> {
    fn new(acks: &'a [Ack]) -> Self {
        let mut lists: BTreeMap<u32, Vec<&Ack>> = BTreeMap::new();
        let mut pos = BTreeMap::new();
        for a in acks {
            let l = lists.entry(a.publisher).or_default();
            pos.entry(a.marker.as_str())
                .or_insert((a.publisher, l.len()));
            l.push(a);
        }
        PublisherOrder { lists, pos }
    }
}

/// The markers of writes acknowledged before a restart that no client received, although
/// a client owed them was back and reading to the end after that restart.
fn vanished<'a>(ctx: &Ctx<'a>) -> BTreeSet<&'a str> {
    let Some(&last_restart) = ctx.rec.restarts.iter().max() else {
        return BTreeSet::new();
    };
    let delivered: BTreeSet<&str> = ctx
        .clients
        .iter()
        .flat_map(|c| c.deliveries.iter().filter_map(|d| d.ev.marker.as_deref()))
        .collect();
    ctx.rec
        .acks
        .iter()
        .filter(|a| a.acked_us < last_restart && !delivered.contains(a.marker.as_str()))
        .filter(|a| {
            let restart =
                first_restart_after(&ctx.rec.restarts, a.acked_us).unwrap_or(last_restart);
            ctx.log_clients().any(|c| {
                c.t.stream != StreamKind::Version
                    && c.owed(a, ctx.cfg.ids)
                    && c.t
                        .connections
                        .iter()
                        .any(|k| k.head_us.is_some_and(|h| h > restart) && k.status == Some(200))
                    && c.t
                        .connections
                        .last()
                        .is_some_and(|k| matches!(k.end, ConnEnd::Finished | ConnEnd::Deadline))
            })
        })
        .map(|a| a.marker.as_str())
        .collect()
}

/// The first restart (µs) after time `t`, if any.
pub(crate) fn first_restart_after(restarts: &[u64], t: u64) -> Option<u64> {
    restarts.iter().copied().filter(|&r| r > t).min()
}

/// Milliseconds, for evidence.
pub(crate) fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Evidence naming a client's connection and, when given, a frame in it.
pub(crate) fn at_frame(client: &ClientId, conn: &Connection, frame: Option<&Frame>) -> Evidence {
    Evidence {
        client: Some(client.clone()),
        connection: Some(conn.index),
        byte_offset: frame.map(|f| f.start),
        at_ms: Some(ms(frame.map_or(conn.ended_us, |f| f.at_us))),
        ..Evidence::default()
    }
}

/// Evidence naming a client's connection as a whole.
pub(crate) fn at_conn(client: &ClientId, conn: &Connection) -> Evidence {
    Evidence {
        at_ms: Some(ms(conn.opened_us)),
        byte_offset: None,
        ..at_frame(client, conn, None)
    }
}

/// A lifecycle frame's name and fields.
pub(crate) fn lifecycle(f: &Frame) -> Option<(&str, &Value)> {
    match &f.kind {
        FrameKind::Lifecycle { name, fields } => Some((name.as_str(), fields)),
        _ => None,
    }
}

/// Whether `f` is the lifecycle frame `name`.
pub(crate) fn is_lifecycle(f: &Frame, name: &str) -> bool {
    lifecycle(f).is_some_and(|(n, _)| n == name)
}

/// A string field of a JSON object.
pub(crate) fn str_field<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// A frame in a few words, for `seen`: `connection_close{reason:replaced}`, `data seq 7`.
pub(crate) fn describe(f: &Frame) -> String {
    match &f.kind {
        FrameKind::Lifecycle { name, fields } => {
            let detail = str_field(fields, "reason")
                .map(|r| format!("{{reason:{r}}}"))
                .or_else(|| str_field(fields, "code").map(|c| format!("{{code:{c}}}")))
                .unwrap_or_default();
            format!("{name}{detail}")
        }
        FrameKind::Heartbeat { .. } => "heartbeat".to_owned(),
        FrameKind::Version { fields } => match str_field(fields, "version") {
            Some(v) => format!("version {v}"),
            None => "version".to_owned(),
        },
        FrameKind::Data(d) => match (&d.seq, &d.marker, &d.opaque_id) {
            (Some(s), _, _) => format!("data seq {s}"),
            (None, Some(m), _) => format!("data marker {m}"),
            (None, None, Some(o)) => format!("data id {o}"),
            _ => "data".to_owned(),
        },
        FrameKind::Other => format!("event {}", f.event),
        FrameKind::Malformed { reason } => format!("malformed {} ({reason})", f.event),
    }
}

/// When a connection did not end with `connection_close{reason}`: how it did end
/// (its last frame, then how the response ended), for `seen`; `None` when it did.
pub(crate) fn not_closed_with(conn: &Connection, reason: CloseReason) -> Option<String> {
    let last = conn.frames.last();
    let closed = last.is_some_and(|f| {
        lifecycle(f).is_some_and(|(n, fl)| {
            n == "connection_close" && str_field(fl, "reason") == Some(reason.name())
        })
    });
    if closed {
        return None;
    }
    Some(match last {
        Some(f) => format!("{} last, then {}", describe(f), describe_end(&conn.end)),
        None => format!("no frame, then {}", describe_end(&conn.end)),
    })
}

/// How a connection ended, in a few words.
pub(crate) fn describe_end(end: &ConnEnd) -> String {
    match end {
        ConnEnd::Cut { after_byte, aim } => {
            format!("a harness cut after byte {after_byte} ({aim})")
        }
        ConnEnd::ServerClosed => "the server ending the response".to_owned(),
        ConnEnd::Failed { error } => format!("a socket failure ({error})"),
        ConnEnd::Finished => "the scenario's end".to_owned(),
        ConnEnd::Deadline => "a deadline with the response still open".to_owned(),
        ConnEnd::ParserLimit => "the parser's size limit".to_owned(),
        ConnEnd::Refused => "a refused request".to_owned(),
        ConnEnd::ConnectFailed { error } => format!("a failed connect ({error})"),
        ConnEnd::RecordLimit { limit } => format!("the harness's recording cap {}", limit.name()),
        ConnEnd::Silent { allowance_ms } => {
            format!("the harness giving up on a stream silent for over {allowance_ms} ms")
        }
    }
}

/// Judges a stream that must be exactly open, error `code`, close `code`, then EOF.
/// Returns the evidence of the first deviation.
pub(crate) fn error_shape(
    client: &ClientId,
    conn: &Connection,
    reason: CloseReason,
) -> Option<Evidence> {
    let code = reason.name();
    let expected = format!(
        "200 with connection_open, error{{code:{code}}}, connection_close{{reason:{code}}}, then the end of the response"
    );
    if conn.status != Some(200) {
        let seen = match conn.status {
            Some(s) => format!("status {s}"),
            None => format!("no response ({})", describe_end(&conn.end)),
        };
        return Some(Evidence {
            expected,
            seen,
            ..at_conn(client, conn)
        });
    }
    let want: [(&str, Option<(&str, &str)>); 3] = [
        ("connection_open", None),
        ("error", Some(("code", code))),
        ("connection_close", Some(("reason", code))),
    ];
    for (i, (name, field)) in want.iter().enumerate() {
        let ok = |f: &Frame| {
            lifecycle(f).is_some_and(|(n, fields)| {
                n == *name && field.is_none_or(|(k, v)| str_field(fields, k) == Some(v))
            })
        };
        match conn.frames.get(i) {
            Some(f) if ok(f) => {}
            Some(f) => {
                let seen = format!("{} as frame {}", describe(f), i + 1);
                return Some(Evidence {
                    expected,
                    seen,
                    ..at_frame(client, conn, Some(f))
                });
            }
            None => {
                let seen = format!("no frame {} but {}", i + 1, describe_end(&conn.end));
                return Some(Evidence {
                    expected,
                    seen,
                    ..at_frame(client, conn, None)
                });
            }
        }
    }
    if let Some(f) = conn.frames.get(3) {
        return Some(Evidence {
            expected,
            seen: format!("{} after connection_close", describe(f)),
            ..at_frame(client, conn, Some(f))
        });
    }
    if conn.end != ConnEnd::ServerClosed
        && !matches!(conn.end, ConnEnd::Cut { .. } | ConnEnd::Finished)
    {
        return Some(Evidence {
            expected,
            seen: format!("the stream ending with {}", describe_end(&conn.end)),
            ..at_frame(client, conn, None)
        });
    }
    None
}

/// A heartbeat's `server_time` in µs since the epoch.
pub(crate) fn server_time_us(f: &Frame) -> Option<u64> {
    match &f.kind {
        FrameKind::Heartbeat { fields } => {
            rfc3339_ms(str_field(fields, "server_time")?).map(|t| t.saturating_mul(1000))
        }
        _ => None,
    }
}

/// An RFC 3339 UTC time (`2025-01-01T00:00:00.123Z`, fraction optional) in ms since
/// the epoch; None for any other shape. Written here (a dozen lines) so the pure
/// checkers need no date crate.
fn rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = s.get(19..)?.strip_suffix(['Z', 'z'])?;
    let millis = match rest.strip_prefix('.') {
        None if rest.is_empty() => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()) => {
            let f3: String = f.chars().chain("000".chars()).take(3).collect();
            f3.parse().ok()?
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm), years from 1970 on.
    let y = if mo <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + millis)
}

/// Each acknowledged write delivered in `frames`: (when it was sent, how long after
/// that it arrived), both in µs. Frames without a known marker are skipped.
pub(crate) fn delivery_latencies<'a>(
    frames: impl Iterator<Item = &'a Frame> + 'a,
    by_marker: &'a BTreeMap<&str, &Ack>,
) -> impl Iterator<Item = (u64, u64)> + 'a {
    frames.filter_map(move |f| {
        let FrameKind::Data(d) = &f.kind else {
            return None;
        };
        let a = by_marker.get(d.marker.as_deref()?)?;
        Some((a.sent_us, f.at_us.saturating_sub(a.sent_us)))
    })
}
