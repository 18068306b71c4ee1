//! What a subscriber is owed: the one rule that decides which acknowledged writes a
//! correct target must deliver to a client. The live client asks it to know when it
//! has caught up, the checkers to know what a missing write proves, and the metrics
//! to know when a reconnected client holds everything again; all three build a
//! [`Subscription`] and call [`Subscription::owes`].
//!
//! # The rule
//!
//! An ack is owed when both hold:
//!
//! 1. **Channel**: the subscriber reads the ack's channel (an empty channel list
//!    means every channel, as in [`Transcript::jobs`]).
//! 2. **Position**, judged against the cursor the first connection sent:
//!    - a numeric cursor `L`, numeric ids and an ack that carries its seq `S`: owed
//!      when `S > L` (the target replays everything after the cursor);
//!    - no cursor on a from-start subscription: owed (the whole history);
//!    - otherwise (no cursor on a from-now subscription, an opaque cursor, or a
//!      numeric cursor that cannot be compared because the ids are opaque or the ack
//!      has no seq): owed when its publish request was sent at or after the moment
//!      the first connection was surely subscribed (see
//!      [`Connection::subscribed_us`]). A write sent later is after any cursor the
//!      client could hold and reaches a live subscriber; a write sent earlier cannot
//!      be placed relative to an opaque cursor, so nothing proves it owed. Before
//!      that moment is known (a live client not yet subscribed), every ack of its
//!      channels counts: the client errs on waiting.
//!
//! And it is not owed when it fell in an **away window**: the harness cut a connection
//! of a from-now subscription, and the next one that got subscribed sent no cursor, so
//! the target had no way to replay what was published meanwhile. Every ack whose
//! publish overlaps the window (sent before it closed, acked after it opened) is
//! excused. Only the harness's own cuts open such a window: when the target ended the
//! connection (closed, reset, refused), what it acknowledged meanwhile is still owed.
//!
//! # How the three copies disagreed, and why this rule
//!
//! - The checkers owed *every* ack to a client whose cursor was opaque (or numeric
//!   with opaque ids or seq-less acks), although nothing places those writes after the
//!   cursor; the client and the metrics used the publish time, as this rule does
//!   (only provable debts become findings).
//! - Only the checkers knew away windows; the client waited (up to its stall
//!   timeout) for writes published while it was away without a cursor, and the
//!   metrics counted them as needed for "caught up" (so the reconnect was never
//!   measured).
//! - The client and the metrics let `from_start` override a numeric cursor; the
//!   checkers let the cursor win. The target only sees the cursor, so it wins.
//! - The client started the clock at the first body byte, the checkers and the
//!   metrics at the response head; some targets register a subscriber only when
//!   they send the first bytes, so the later moment is the safe one, and the
//!   recording now carries it ([`Connection::first_byte_us`]).
//! - The client's ledger owed nothing to an empty channel list, the checkers and
//!   metrics everything; a transcript's empty `jobs` means every channel, so that wins.

use serde::{Deserialize, Serialize};

use crate::transcript::{Ack, ConnEnd, Connection, Transcript};

/// How the target's SSE ids are judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdMode {
    /// `id:` is the store's seq (a decimal u64): order and gaps are judged by seq.
    Numeric,
    /// `id:` is opaque: order and gaps are judged by the harness's publish markers.
    Opaque,
}

/// What a connection's `Last-Event-ID` was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor<'a> {
    /// None sent (or empty, which counts as none).
    Absent,
    /// A decimal u64 (digits only).
    Seq(u64),
    /// Anything else (an opaque id, or a malformed one).
    Opaque(&'a str),
}

impl<'a> Cursor<'a> {
    /// Reads a cursor as sent.
    pub fn parse(c: Option<&'a str>) -> Cursor<'a> {
        match c {
            None | Some("") => Cursor::Absent,
            Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => match s.parse::<u64>() {
                Ok(n) => Cursor::Seq(n),
                Err(_) => Cursor::Opaque(s),
            },
            Some(s) => Cursor::Opaque(s),
        }
    }
}

/// A window in which a subscriber was away and the reconnect that ended it did not
/// resume (no cursor), in µs since the scenario started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Away {
    /// When the connection before it ended.
    pub from_us: u64,
    /// When the next connection was subscribed.
    pub to_us: u64,
}

/// What the owed rule knows about one subscriber; built from a [`Transcript`] after
/// the fact ([`Subscription::of`]) or step by step by a live client
/// ([`Subscription::new`], then [`Subscription::add`] for each connection).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    /// The channels read; empty means every channel.
    pub channels: Vec<String>,
    /// Whether a connection without cursor gets the whole history.
    pub from_start: bool,
    /// The cursor the first connection sent.
    pub cursor: Option<String>,
    /// When the first connection was surely subscribed (None: not yet).
    pub since_us: Option<u64>,
    /// The away windows so far.
    pub away: Vec<Away>,
}

impl Subscription {
    /// A subscriber of `channels` whose first connection sends `cursor`.
    pub fn new(channels: Vec<String>, from_start: bool, cursor: Option<String>) -> Subscription {
        Subscription {
            channels,
            from_start,
            cursor: cursor.filter(|c| !c.is_empty()),
            ..Subscription::default()
        }
    }

    /// The subscription a recorded transcript describes.
    pub fn of(t: &Transcript) -> Subscription {
        let first_cursor = t.connections.first().and_then(|c| c.cursor.clone());
        let mut s = Subscription::new(t.jobs.clone(), t.from_start, first_cursor);
        let mut prev_cut_us = None;
        for c in &t.connections {
            s.add(c, prev_cut_us);
            prev_cut_us = c.cut_at_us();
        }
        s
    }

    /// Adds one connection, once: when it is subscribed ([`Connection::subscribed_us`]
    /// is known), or else when it has ended. `prev_cut_us`: when the connection before
    /// it ended, if the harness cut it ([`Connection::cut_at_us`]; None otherwise and
    /// for the first).
    pub fn add(&mut self, conn: &Connection, prev_cut_us: Option<u64>) {
        let after = prev_cut_us.map(|e| (e, conn.cursor.as_deref()));
        match conn.subscribed_us() {
            Some(at) => {
                self.since_us.get_or_insert(at);
                self.away_until(at, after);
            }
            // Never subscribed: away until it ended (or got its refusal).
            None => self.away_until(conn.head_us.unwrap_or(conn.ended_us), after),
        }
    }

    fn away_until(&mut self, to_us: u64, after: Option<(u64, Option<&str>)>) {
        if let Some((from_us, cursor)) = after
            && Cursor::parse(cursor) == Cursor::Absent
            && !self.from_start
        {
            self.away.push(Away { from_us, to_us });
        }
    }

    /// Whether the subscriber reads `channel`.
    pub fn reads(&self, channel: &str) -> bool {
        self.channels.is_empty() || self.channels.iter().any(|c| c == channel)
    }

    /// Whether a correct target must deliver `ack` to this subscriber (the rule in the
    /// module doc).
    pub fn owes(&self, ack: &Ack, ids: IdMode) -> bool {
        if !self.reads(&ack.job) {
            return false;
        }
        let placed = match (Cursor::parse(self.cursor.as_deref()), ids, ack.seq) {
            (Cursor::Seq(l), IdMode::Numeric, Some(s)) => s.0 > l,
            (Cursor::Absent, _, _) if self.from_start => true,
            _ => self.since_us.is_none_or(|h| ack.sent_us >= h),
        };
        placed
            && !self
                .away
                .iter()
                .any(|w| ack.sent_us <= w.to_us && ack.acked_us >= w.from_us)
    }

    /// The acks of `acks` this subscriber is owed, in order.
    pub fn owed<'a>(&self, acks: &'a [Ack], ids: IdMode) -> impl Iterator<Item = &'a Ack> {
        acks.iter().filter(move |a| self.owes(a, ids))
    }
}

impl Connection {
    /// A connection just opened (request `index` of its client, sending `cursor`), with
    /// nothing received yet.
    pub fn opened(
        index: u32,
        cursor: Option<String>,
        correlation_sent: Option<String>,
        opened_us: u64,
    ) -> Connection {
        Connection {
            index,
            cursor,
            correlation_sent,
            opened_us,
            head_us: None,
            first_byte_us: None,
            protocol: Default::default(),
            local_port: None,
            status: None,
            headers: Default::default(),
            error_body: None,
            retries: Vec::new(),
            comments: Vec::new(),
            frames: Vec::new(),
            violations: Vec::new(),
            body_bytes: 0,
            wire_bytes: 0,
            aims_without_place: Vec::new(),
            end: ConnEnd::Finished,
            ended_us: 0,
        }
    }

    /// When this connection ended, if the harness cut it on purpose (the only ending
    /// that can open an away window).
    pub fn cut_at_us(&self) -> Option<u64> {
        matches!(self.end, ConnEnd::Cut { .. }).then_some(self.ended_us)
    }

    /// When this connection surely subscribed, in µs since the scenario started: a
    /// refused request at its response head; an accepted one at its first body byte
    /// (recordings without that time: at the head, when any body byte came); None
    /// when it never got that far.
    pub fn subscribed_us(&self) -> Option<u64> {
        match self.status {
            Some(s) if (200..300).contains(&s) => self
                .first_byte_us
                .or(self.head_us.filter(|_| self.body_bytes > 0)),
            Some(_) => self.head_us,
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClientId, Seq};
    use crate::transcript::StreamKind;

    /// An ack of `job` with `seq`, sent at `sent` ms and acked 1 ms later.
    fn ack(seq: Option<u64>, job: &str, sent: u64) -> Ack {
        Ack {
            marker: format!("m{sent}"),
            job: job.into(),
            seq: seq.map(Seq),
            publisher: 0,
            sent_us: sent * 1000,
            acked_us: sent * 1000 + 1000,
        }
    }

    /// A 200 connection sending `cursor`, opened at `opened` ms, head 1 ms later, first
    /// byte 2 ms later, ended at `ended` ms.
    fn conn(cursor: Option<&str>, opened: u64, ended: u64) -> Connection {
        Connection {
            head_us: Some(opened * 1000 + 1000),
            first_byte_us: Some(opened * 1000 + 2000),
            status: Some(200),
            body_bytes: 100,
            ended_us: ended * 1000,
            ..Connection::opened(0, cursor.map(str::to_owned), None, opened * 1000)
        }
    }

    fn transcript(jobs: &[&str], from_start: bool, connections: Vec<Connection>) -> Transcript {
        Transcript {
            client: ClientId("c#0".into()),
            stream: StreamKind::Events,
            jobs: jobs.iter().map(|j| (*j).to_owned()).collect(),
            initial_cursor: connections.first().and_then(|c| c.cursor.clone()),
            from_start,
            connections,
            agent: Default::default(),
            gave_up_us: None,
        }
    }

    fn owed(t: &Transcript, acks: &[Ack], ids: IdMode) -> Vec<String> {
        Subscription::of(t)
            .owed(acks, ids)
            .map(|a| a.marker.clone())
            .collect()
    }

    #[test]
    fn cursors_parse_as_absent_seq_or_opaque() {
        assert_eq!(Cursor::parse(None), Cursor::Absent);
        assert_eq!(Cursor::parse(Some("")), Cursor::Absent);
        assert_eq!(Cursor::parse(Some("42")), Cursor::Seq(42));
        assert_eq!(Cursor::parse(Some("+42")), Cursor::Opaque("+42"));
        assert_eq!(Cursor::parse(Some("1:2")), Cursor::Opaque("1:2"));
        let huge = "99999999999999999999999";
        assert_eq!(Cursor::parse(Some(huge)), Cursor::Opaque(huge));
    }

    #[test]
    fn a_numeric_cursor_owes_the_seqs_above_it() {
        let t = transcript(&["j"], false, vec![conn(Some("5"), 100, 200)]);
        let acks = [
            ack(Some(5), "j", 10),
            ack(Some(6), "j", 20),
            ack(Some(7), "j", 150),
        ];
        assert_eq!(owed(&t, &acks, IdMode::Numeric), ["m20", "m150"]);
    }

    #[test]
    fn a_numeric_cursor_wins_over_from_start() {
        let t = transcript(&["j"], true, vec![conn(Some("5"), 100, 200)]);
        let acks = [ack(Some(5), "j", 10), ack(Some(6), "j", 20)];
        assert_eq!(owed(&t, &acks, IdMode::Numeric), ["m20"]);
    }

    #[test]
    fn an_uncomparable_cursor_owes_what_was_sent_after_subscribing() {
        // Subscribed at the first body byte: 102 ms.
        let acks = [
            ack(Some(6), "j", 50),
            ack(None, "j", 101),
            ack(None, "j", 102),
        ];
        let opaque = transcript(&["j"], false, vec![conn(Some("abc"), 100, 200)]);
        assert_eq!(owed(&opaque, &acks, IdMode::Opaque), ["m102"]);
        assert_eq!(owed(&opaque, &acks, IdMode::Numeric), ["m102"]);
        // A numeric-looking cursor of an opaque target, and seq-less acks of a numeric one.
        let numeric = transcript(&["j"], false, vec![conn(Some("5"), 100, 200)]);
        assert_eq!(owed(&numeric, &acks, IdMode::Opaque), ["m102"]);
        assert_eq!(owed(&numeric, &acks, IdMode::Numeric), ["m50", "m102"]);
    }

    #[test]
    fn no_cursor_owes_everything_from_start_and_the_later_writes_from_now() {
        let acks = [ack(Some(1), "j", 50), ack(Some(2), "j", 150)];
        let start = transcript(&["j"], true, vec![conn(None, 100, 200)]);
        assert_eq!(owed(&start, &acks, IdMode::Numeric), ["m50", "m150"]);
        let now = transcript(&["j"], false, vec![conn(None, 100, 200)]);
        assert_eq!(owed(&now, &acks, IdMode::Numeric), ["m150"]);
    }

    #[test]
    fn a_cursor_less_reconnect_after_a_harness_cut_excuses_what_was_published_while_away() {
        let first = cut(conn(None, 100, 200));
        let conns = vec![first.clone(), conn(None, 300, 400)];
        // Away from 200 ms to the second connection's first byte at 302 ms.
        let acks = [
            ack(None, "j", 150),
            ack(None, "j", 199),
            ack(None, "j", 250),
            ack(None, "j", 302),
            ack(None, "j", 350),
        ];
        let now = transcript(&["j"], false, conns.clone());
        assert_eq!(owed(&now, &acks, IdMode::Opaque), ["m150", "m350"]);
        // From the start, a cursor-less reconnect replays everything.
        let start = transcript(&["j"], true, conns);
        assert_eq!(owed(&start, &acks, IdMode::Opaque).len(), 5);
        // A reconnect with a cursor resumes: nothing is excused.
        let resumed = transcript(&["j"], false, vec![first, conn(Some("x"), 300, 400)]);
        assert_eq!(owed(&resumed, &acks, IdMode::Opaque).len(), 5);
        // The target ended the connection: what it acknowledged meanwhile is still owed.
        let closed = transcript(
            &["j"],
            false,
            vec![conn(None, 100, 200), conn(None, 300, 400)],
        );
        assert_eq!(owed(&closed, &acks, IdMode::Opaque).len(), 5);
    }

    /// The same connection, ended by a harness cut.
    fn cut(mut c: Connection) -> Connection {
        c.end = ConnEnd::Cut {
            after_byte: 10,
            aim: "random-byte".into(),
        };
        c
    }

    #[test]
    fn a_reconnect_that_never_subscribed_keeps_the_client_away_until_it_ended() {
        let mut failed = conn(None, 300, 310);
        failed.status = None;
        failed.head_us = None;
        failed.first_byte_us = None;
        let t = transcript(&["j"], false, vec![cut(conn(None, 100, 200)), failed]);
        let acks = [ack(None, "j", 250), ack(None, "j", 320)];
        assert_eq!(owed(&t, &acks, IdMode::Opaque), ["m320"]);
    }

    #[test]
    fn only_the_channels_read_are_owed() {
        let acks = [
            ack(Some(1), "a", 10),
            ack(Some(2), "b", 20),
            ack(Some(3), "c", 30),
        ];
        let two = transcript(&["a", "c"], true, vec![conn(None, 0, 100)]);
        assert_eq!(owed(&two, &acks, IdMode::Numeric), ["m10", "m30"]);
        let all = transcript(&[], true, vec![conn(None, 0, 100)]);
        assert_eq!(owed(&all, &acks, IdMode::Numeric).len(), 3);
    }

    #[test]
    fn a_live_client_builds_the_same_subscription_as_its_transcript() {
        let t = transcript(
            &["j"],
            false,
            vec![cut(conn(None, 100, 200)), conn(None, 300, 400)],
        );
        let mut live = Subscription::new(vec!["j".into()], false, None);
        let acks = [ack(None, "j", 50), ack(None, "j", 150)];
        // Not yet subscribed: every ack of its channels counts.
        assert_eq!(live.owed(&acks, IdMode::Opaque).count(), 2);
        live.add(&t.connections[0], None);
        assert_eq!(live.owed(&acks, IdMode::Opaque).count(), 1);
        live.add(&t.connections[1], Some(200_000));
        assert_eq!(live, Subscription::of(&t));
    }

    #[test]
    fn a_refused_request_subscribes_at_its_head_and_old_recordings_fall_back_to_it() {
        let mut refused = conn(None, 100, 200);
        refused.status = Some(400);
        assert_eq!(refused.subscribed_us(), Some(101_000));
        let mut old = conn(None, 100, 200);
        old.first_byte_us = None;
        assert_eq!(old.subscribed_us(), Some(101_000));
        old.body_bytes = 0;
        assert_eq!(old.subscribed_us(), None);
    }
}
