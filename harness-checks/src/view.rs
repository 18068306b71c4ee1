//! Shared derivations every family needs: the per-client list of delivered data
//! events, the ack ledger indexed by seq and marker, which acks a client is owed, and
//! the checking context that collects findings for the judged families only.

use std::collections::{BTreeMap, BTreeSet};

use harness_model::{
    Ack, ClientId, ConnEnd, Connection, Contracts, DataEvent, Evidence, Finding, Frame, FrameKind,
    Recording, Seq, StreamKind, Transcript,
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
}

/// What a connection's `Last-Event-ID` was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cursor<'a> {
    /// None sent (or empty, which counts as none).
    Absent,
    /// A decimal u64.
    Seq(u64),
    /// Anything else (an opaque id, or a malformed one).
    Other(&'a str),
}

/// Reads a cursor as sent.
pub(crate) fn cursor_of(c: &Option<String>) -> Cursor<'_> {
    match c.as_deref() {
        None | Some("") => Cursor::Absent,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => Cursor::Seq(n),
            _ => Cursor::Other(s),
        },
    }
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
        ClientView { t, deliveries }
    }

    /// The client's name.
    pub fn id(&self) -> &'a ClientId {
        &self.t.client
    }

    /// Whether an event of `job` is one this client must receive (unknown job: only
    /// when the client takes every job).
    pub fn wants(&self, job: Option<&str>) -> bool {
        self.t.jobs.is_empty() || job.is_some_and(|j| self.t.jobs.iter().any(|w| w == j))
    }

    /// The connections' deliveries, grouped by connection position.
    pub fn by_conn(&self) -> BTreeMap<usize, Vec<Delivery<'a>>> {
        let mut m: BTreeMap<usize, Vec<Delivery<'a>>> = BTreeMap::new();
        for d in &self.deliveries {
            m.entry(d.conn_pos).or_default().push(*d);
        }
        m
    }

    /// Whether the client was subscribed (or resumed) over this ack, so that a correct
    /// target must deliver it: after the client's start, and not published while the
    /// client was away on a reconnect that did not resume.
    pub fn owed(&self, ack: &Ack, ids: IdMode) -> bool {
        if !self.wants(Some(&ack.job)) {
            return false;
        }
        let Some(first) = self.t.connections.first() else {
            return false;
        };
        let started = match (cursor_of(&first.cursor), ids, ack.seq) {
            (Cursor::Seq(l), IdMode::Numeric, Some(s)) => s.0 > l,
            (Cursor::Other(_), _, _) => true,
            (Cursor::Seq(_), _, _) => true,
            (Cursor::Absent, _, _) if self.t.from_start => true,
            (Cursor::Absent, _, _) => ack.sent_us >= first.head_us.unwrap_or(first.opened_us),
        };
        if !started {
            return false;
        }
        // A reconnect without a cursor on a "from now" target leaves a hole, when the
        // harness chose to be away (a cut). When the target ended the connection
        // (closed, reset, refused), what it acknowledged meanwhile is still owed.
        for w in self.t.connections.windows(2) {
            let (prev, next) = (&w[0], &w[1]);
            if cursor_of(&next.cursor) == Cursor::Absent
                && !self.t.from_start
                && matches!(prev.end, ConnEnd::Cut { .. })
            {
                let hole_start = prev.ended_us;
                let hole_end = next.head_us.unwrap_or(next.ended_us);
                if ack.sent_us <= hole_end && ack.acked_us >= hole_start {
                    return false;
                }
            }
        }
        true
    }

    /// Whether a missing ack after the client's last delivery is a loss: the client was
    /// owed it and did not get it, whatever ended its last connection, except a cut of
    /// the harness's own that it did not follow with a reconnect. The target refused
    /// the reconnect (or its body never came), the harness read until the end, a
    /// deadline or a recording cap well after the ack, or the target closed or reset
    /// the stream after acknowledging the write and the client did not come back.
    pub fn tail_owed(&self, ack: &Ack, ids: IdMode) -> bool {
        if !self.owed(ack, ids) {
            return false;
        }
        let Some(last) = self.t.connections.last() else {
            return false;
        };
        match last.end {
            ConnEnd::Refused | ConnEnd::ConnectFailed { .. } => true,
            ConnEnd::Finished | ConnEnd::Deadline | ConnEnd::RecordLimit { .. } => {
                ack.acked_us.saturating_add(TAIL_GRACE_US) <= last.ended_us
            }
            // Acked while the stream was still open: a correct target had it to send.
            ConnEnd::ServerClosed | ConnEnd::Failed { .. } | ConnEnd::ParserLimit => {
                ack.acked_us <= last.ended_us
            }
            ConnEnd::Cut { .. } => false,
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
    /// Markers of acks that durability reports as lost in a restart; the delivery and
    /// resume families leave them alone so one problem is reported once.
    pub vanished: BTreeSet<&'a str>,
    out: Vec<Finding>,
}

impl<'a> Ctx<'a> {
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
            vanished: BTreeSet::new(),
            out: Vec::new(),
        };
        if ctx.enabled("durability") {
            ctx.vanished = crate::durability::vanished(&ctx);
        }
        ctx
    }

    /// Whether `family` is judged in this scenario.
    pub fn enabled(&self, family: &str) -> bool {
        self.cfg.families.is_empty() || self.cfg.families.iter().any(|f| f == family)
    }

    /// Records a finding for contract `id` whatever families are judged (gates).
    pub fn emit_always(&mut self, id: &str, evidence: Evidence) {
        self.out.push(self.contracts.finding(id, evidence));
    }

    /// Records a finding for contract `id` when its family is judged.
    pub fn emit(&mut self, id: &str, evidence: Evidence) {
        let family = id.split('.').next().unwrap_or(id);
        if self.enabled(family) {
            self.out.push(self.contracts.finding(id, evidence));
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
        let e = &self.rec.expect;
        e.invalid_cursor.contains(id)
            || e.cursor_ahead.contains(id)
            || e.task_not_found.contains(id)
            || e.versions.contains_key(id)
            || e.replaced.contains(id)
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
pub(crate) fn not_closed_with(conn: &Connection, reason: &str) -> Option<String> {
    let last = conn.frames.last();
    let closed = last.is_some_and(|f| {
        lifecycle(f).is_some_and(|(n, fl)| {
            n == "connection_close" && str_field(fl, "reason") == Some(reason)
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
    }
}
