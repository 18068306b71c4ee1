//! `resume.*`: what a client that reconnects with its last id must get: every matching
//! event after the cursor (no gap), nothing twice, in order; malformed and too-high
//! cursors answered in the spine's shape; `head_seq` never behind what was sent.
//!
//! Numeric targets are judged by seq. A seq is *known* to belong to a client when an
//! ack for one of its jobs carries it, or another client received it under one of its
//! jobs. Opaque targets are judged by the harness's publish markers, in each
//! publisher's ack order. A miss after the client's last delivery is not a gap but a
//! tail loss (`delivery.lost-ack`), so one problem is reported once.

use harness_model::{CloseReason, KnownContract, ids};
use std::collections::{BTreeMap, BTreeSet};

use harness_model::{Ack, Evidence, Frame, FrameKind, Seq, StreamKind};
use serde_json::Value;

use crate::IdMode;
use crate::view::{
    ClientView, Ctx, Cursor, Delivery, at_conn, at_frame, cursor_of, describe, describe_end,
    error_shape, is_lifecycle, lifecycle, server_time_us, str_field,
};

/// Slack on a heartbeat's earliest send time: `server_time` has ms precision, and
/// two clocks may drift apart a little over one connection.
const HEARTBEAT_STAMP_SLACK_US: u64 = 50_000;

pub(crate) fn check(ctx: &mut Ctx) {
    if !ctx.enabled("resume") {
        return;
    }
    match ctx.cfg.ids {
        IdMode::Numeric => {
            numeric_order(ctx);
            numeric_gaps(ctx);
            if ctx.cfg.lifecycle_frames {
                head_not_behind(ctx);
                told_ahead_at_a_known_seq(ctx);
            }
        }
        IdMode::Opaque => {
            opaque_order(ctx);
            opaque_gaps(ctx);
        }
    }
    invalid_cursor(ctx);
    cursor_ahead(ctx);
    crate::resume_ids::check(ctx);
}

/// Why a seq is known to exist.
#[derive(Clone, Debug)]
enum Source<'a> {
    Acked,
    DeliveredTo(&'a str),
}

fn numeric_order(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for c in ctx.log_clients() {
        let mut earlier: BTreeMap<Seq, Delivery> = BTreeMap::new();
        for ds in c.by_conn().values() {
            let cursor = cursor_of(&ds[0].conn.cursor);
            let mut here: BTreeMap<Seq, Delivery> = BTreeMap::new();
            let mut max: Option<Seq> = None;
            for d in ds {
                let Some(s) = d.ev.seq else { continue };
                if let Some(first) = here.get(&s) {
                    found.push(dup(c, d, first, "in the same connection"));
                } else if let Cursor::Seq(l) = cursor
                    && s.0 <= l
                {
                    match earlier.get(&s) {
                        Some(first) => {
                            found.push(dup(c, d, first, &format!("resumed from cursor {l}")))
                        }
                        None => found.push((
                            ids::RESUME_MONOTONIC,
                            Evidence {
                                expected: format!("only seqs above cursor {l}"),
                                seen: format!("seq {s}"),
                                ..d.evidence(c.id())
                            },
                        )),
                    }
                } else if let Some(m) = max
                    && s < m
                {
                    found.push((
                        ids::RESUME_MONOTONIC,
                        Evidence {
                            expected: format!("a seq above {m} (the previous one)"),
                            seen: format!("seq {s}"),
                            ..d.evidence(c.id())
                        },
                    ));
                }
                here.entry(s).or_insert(*d);
                max = max.max(Some(s));
            }
            for (s, d) in here {
                earlier.entry(s).or_insert(d);
            }
        }
    }
    for (id, e) in found {
        ctx.emit(id, e);
    }
}

fn dup(c: &ClientView, d: &Delivery, first: &Delivery, how: &str) -> (KnownContract, Evidence) {
    (
        ids::RESUME_NO_DUPLICATE,
        Evidence {
            expected: format!("each event once ({how})"),
            seen: format!("{} again, first at {}", what(d), first.place()),
            ..d.evidence(c.id())
        },
    )
}

fn what(d: &Delivery) -> String {
    match (&d.ev.seq, &d.ev.marker) {
        (Some(s), _) => format!("seq {s}"),
        (None, Some(m)) => format!("marker {m}"),
        _ => "the event".to_owned(),
    }
}

/// Every seq known to exist, with its job and why it is known (acks first).
fn known_seqs<'a>(ctx: &Ctx<'a>) -> BTreeMap<Seq, (Option<&'a str>, Source<'a>)> {
    let mut known = BTreeMap::new();
    for a in &ctx.rec.acks {
        if let Some(s) = a.seq
            && !ctx.vanished.contains(a.marker.as_str())
        {
            known
                .entry(s)
                .or_insert((Some(a.job.as_str()), Source::Acked));
        }
    }
    for c in &ctx.clients {
        for d in &c.deliveries {
            if let Some(s) = d.ev.seq {
                known
                    .entry(s)
                    .or_insert((d.ev.job.as_deref(), Source::DeliveredTo(c.id().0.as_str())));
            }
        }
    }
    known
}

fn numeric_gaps(ctx: &mut Ctx) {
    let known = known_seqs(ctx);
    let mut found = Vec::new();
    for c in ctx.log_clients() {
        let delivered: BTreeSet<Seq> = c.deliveries.iter().filter_map(|d| d.ev.seq).collect();
        let mut reported = BTreeSet::new();
        for ds in c.by_conn().values() {
            let seqd: Vec<(Seq, &Delivery)> =
                ds.iter().filter_map(|d| d.ev.seq.map(|s| (s, d))).collect();
            let Some(&(first, _)) = seqd.first() else {
                continue;
            };
            let Some(hi) = seqd.iter().map(|(s, _)| *s).max() else {
                continue;
            };
            let (lo, start) = match cursor_of(&ds[0].conn.cursor) {
                Cursor::Seq(l) => (l, format!("cursor {l}")),
                Cursor::Absent if c.t.from_start => (0, "the start of the log".to_owned()),
                _ => (first.0, String::new()),
            };
            if lo.saturating_add(1) >= hi.0 {
                continue;
            }
            // Missing seqs, grouped by the delivery they were skipped at.
            let mut at: BTreeMap<usize, Vec<(Seq, &Source)>> = BTreeMap::new();
            for (s, (job, src)) in known.range(Seq(lo + 1)..hi) {
                if delivered.contains(s) || reported.contains(s) || !c.wants(*job) {
                    continue;
                }
                if let Some(i) = seqd.iter().position(|(q, _)| q > s) {
                    at.entry(i).or_default().push((*s, src));
                    reported.insert(*s);
                }
            }
            for (i, missing) in at {
                let (b, d) = seqd[i];
                let after = if i == 0 {
                    start.clone()
                } else {
                    format!("seq {}", seqd[i - 1].0)
                };
                let (s0, src) = missing[0];
                let why = match src {
                    Source::Acked => "acked".to_owned(),
                    Source::DeliveredTo(other) => format!("delivered to {other}"),
                };
                let more = match missing.len() {
                    1 => String::new(),
                    n => format!(" and {} more known seqs up to {}", n - 1, missing[n - 1].0),
                };
                found.push(Evidence {
                    expected: format!("seq {s0}{more} ({why}, after {after})"),
                    seen: format!("seq {b}"),
                    ..d.evidence(c.id())
                });
            }
        }
    }
    for e in found {
        ctx.emit(ids::RESUME_NO_GAP, e);
    }
}

fn opaque_order(ctx: &mut Ctx) {
    let order = &ctx.order;
    let mut found = Vec::new();
    for c in ctx.log_clients() {
        let mut prior: Vec<Delivery> = Vec::new();
        for ds in c.by_conn().values() {
            // Where the cursor points in what the client had: events after it may come again.
            let rewind = match cursor_of(&ds[0].conn.cursor) {
                Cursor::Absent => None,
                _ => {
                    let cur = ds[0].conn.cursor.as_deref();
                    c.t.connections[..ds[0].conn_pos]
                        .iter()
                        .enumerate()
                        .flat_map(|(cp, conn)| {
                            conn.frames
                                .iter()
                                .enumerate()
                                .map(move |(fp, f)| (cp, fp, f))
                        })
                        .rev()
                        .find(|(_, _, f)| f.id.as_deref() == cur)
                        .map(|(cp, fp, _)| {
                            prior
                                .iter()
                                .filter(|d| (d.conn_pos, d.frame_pos) <= (cp, fp))
                                .count()
                        })
                }
            };
            let mut here: BTreeMap<&str, Delivery> = BTreeMap::new();
            let mut latest: BTreeMap<u32, &Ack> = BTreeMap::new();
            for d in ds {
                let Some(m) = d.ev.marker.as_deref() else {
                    continue;
                };
                if let Some(first) = here.get(m) {
                    found.push(dup(c, d, first, "in the same connection"));
                    continue;
                }
                if let Some(p) = rewind
                    && let Some(first) = prior[..p]
                        .iter()
                        .find(|e| e.ev.marker.as_deref() == Some(m))
                {
                    found.push(dup(c, d, first, "resumed after it"));
                }
                here.insert(m, *d);
                let Some(&(publisher, i)) = order.pos.get(m) else {
                    continue;
                };
                let ack = order.lists[&publisher][i];
                match latest.get(&publisher) {
                    Some(prev) if order.pos[prev.marker.as_str()].1 > i => {
                        // Order is only defined when this write was sent after the other's ack.
                        if ack.acked_us <= prev.sent_us {
                            found.push((
                                ids::RESUME_MONOTONIC,
                                Evidence {
                                    expected: format!(
                                        "publisher {publisher}'s ack order (marker {m} before marker {})",
                                        prev.marker
                                    ),
                                    seen: format!("marker {m} after marker {}", prev.marker),
                                    ..d.evidence(c.id())
                                },
                            ));
                        }
                    }
                    _ => {
                        latest.insert(publisher, ack);
                    }
                }
            }
            prior.extend(ds.iter().copied());
        }
    }
    for (id, e) in found {
        ctx.emit(id, e);
    }
}

fn opaque_gaps(ctx: &mut Ctx) {
    let order = &ctx.order;
    let mut found = Vec::new();
    for c in ctx.log_clients() {
        let mut first: BTreeMap<&str, &Delivery> = BTreeMap::new();
        for d in &c.deliveries {
            if let Some(m) = d.ev.marker.as_deref() {
                first.entry(m).or_insert(d);
            }
        }
        for (publisher, list) in &order.lists {
            let list: Vec<&Ack> = list
                .iter()
                .copied()
                .filter(|a| c.wants(Some(&a.job)) && !ctx.vanished.contains(a.marker.as_str()))
                .collect();
            let got: Vec<usize> = (0..list.len())
                .filter(|&i| first.contains_key(list[i].marker.as_str()))
                .collect();
            let (Some(&lo), Some(&hi)) = (got.first(), got.last()) else {
                continue;
            };
            let mut at: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for (j, a) in list.iter().enumerate().take(hi).skip(lo + 1) {
                if first.contains_key(a.marker.as_str()) || !c.owed(a, ctx.cfg.ids) {
                    continue;
                }
                let k = got.iter().copied().find(|&k| k > j).unwrap_or(hi);
                at.entry(k).or_default().push(j);
            }
            for (k, missing) in at {
                let d = first[list[k].marker.as_str()];
                let j = missing[0];
                let i = got.iter().copied().rev().find(|&i| i < j).unwrap_or(lo);
                let more = match missing.len() {
                    1 => String::new(),
                    n => format!(" and {} more acked markers", n - 1),
                };
                found.push(Evidence {
                    expected: format!(
                        "marker {}{more} (publisher {publisher}, acked after marker {})",
                        list[j].marker, list[i].marker
                    ),
                    seen: format!("marker {}", list[k].marker),
                    ..d.evidence(c.id())
                });
            }
        }
    }
    for e in found {
        ctx.emit(ids::RESUME_NO_GAP, e);
    }
}

fn invalid_cursor(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for id in &ctx.rec.expect.invalid_cursor {
        let Some(c) = ctx.client(id) else { continue };
        for conn in &c.t.connections {
            let body: Option<Value> = conn
                .error_body
                .as_deref()
                .and_then(|b| serde_json::from_str(b).ok());
            let code = body.as_ref().and_then(|b| str_field(b, "error"));
            let seen = if conn.status != Some(400) {
                Some(match conn.status {
                    Some(s) => format!("status {s}"),
                    None => format!("no response ({})", describe_end(&conn.end)),
                })
            } else if !conn.frames.is_empty()
                || !conn.retries.is_empty()
                || !conn.comments.is_empty()
            {
                Some("stream bytes after the 400".to_owned())
            } else if code != Some("invalid_last_event_id") {
                Some(match (&conn.error_body, code) {
                    (_, Some(code)) => format!("error {code}"),
                    (Some(b), None) => format!("body {b:?}"),
                    (None, None) => "no body".to_owned(),
                })
            } else {
                None
            };
            if let Some(seen) = seen {
                found.push(Evidence {
                    expected: "400 {\"error\":\"invalid_last_event_id\"} before any stream byte"
                        .to_owned(),
                    seen,
                    ..at_conn(id, conn)
                });
            }
        }
    }
    for e in found {
        ctx.emit(ids::RESUME_INVALID_CURSOR, e);
    }
}

fn cursor_ahead(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for id in &ctx.rec.expect.cursor_ahead {
        let Some(c) = ctx.client(id) else { continue };
        for conn in &c.t.connections {
            found.extend(error_shape(id, conn, CloseReason::CursorAhead));
        }
    }
    for e in found {
        ctx.emit(ids::RESUME_CURSOR_AHEAD, e);
    }
}

fn head_not_behind(ctx: &mut Ctx) {
    // (receive time, seq) of every delivery, and the running maximum seq by time.
    let mut all: Vec<(u64, Seq, &str)> = ctx
        .clients
        .iter()
        .flat_map(|c| {
            c.deliveries
                .iter()
                .filter_map(|d| d.ev.seq.map(|s| (d.frame.at_us, s, c.id().0.as_str())))
        })
        .collect();
    all.sort();
    let mut prefix_max: Vec<(u64, Seq, &str)> = Vec::with_capacity(all.len());
    for (t, s, who) in all {
        match prefix_max.last() {
            Some(&(_, m, w)) if m >= s => prefix_max.push((t, m, w)),
            _ => prefix_max.push((t, s, who)),
        }
    }
    // The highest seq received by anyone strictly before `t`.
    let max_before = |t: u64| -> Option<(Seq, &str)> {
        let n = prefix_max.partition_point(|(at, _, _)| *at < t);
        n.checked_sub(1).map(|i| (prefix_max[i].1, prefix_max[i].2))
    };
    let mut found = Vec::new();
    for c in &ctx.clients {
        if c.t.stream == StreamKind::Version {
            continue;
        }
        for conn in &c.t.connections {
            let mut own_max: Option<Seq> = None;
            // The connection's first heartbeat stamp: it was sent after the request.
            let mut first_stamp: Option<u64> = None;
            for f in &conn.frames {
                let (fields, bound, what) = match &f.kind {
                    FrameKind::Data(d) => {
                        own_max = own_max.max(d.seq);
                        continue;
                    }
                    FrameKind::Heartbeat { fields } => (
                        fields,
                        heartbeat_sent_after(conn.opened_us, f, &mut first_stamp),
                        "heartbeat",
                    ),
                    FrameKind::Lifecycle { .. } if is_lifecycle(f, "connection_open") => (
                        lifecycle(f).map(|x| x.1).unwrap_or(&Value::Null),
                        conn.opened_us,
                        "connection_open",
                    ),
                    _ => continue,
                };
                let Some(head) = fields.get("head_seq").and_then(Value::as_u64) else {
                    continue;
                };
                let others = max_before(bound);
                let worst = match (others, own_max) {
                    (Some((s, _)), Some(o)) if o >= s => Some((o, c.id().0.as_str())),
                    (Some(x), _) => Some(x),
                    (None, Some(o)) => Some((o, c.id().0.as_str())),
                    (None, None) => None,
                };
                if let Some((s, who)) = worst
                    && head < s.0
                {
                    found.push(Evidence {
                        seq: Some(s),
                        expected: format!("{what} head_seq ≥ {s} (already sent to {who})"),
                        seen: format!("head_seq {head}"),
                        ..at_frame(c.id(), conn, Some(f))
                    });
                    // One per connection: later frames repeat the same fault.
                    break;
                }
            }
        }
    }
    for e in found {
        ctx.emit(ids::RESUME_HEAD_NOT_BEHIND, e);
    }
}

/// The earliest harness time heartbeat `f` can have been sent at, by the server's
/// clock: a reader that is behind receives a heartbeat long after the server computed
/// its `head_seq`, so the receive time proves nothing. The connection's first stamp
/// was sent after the request (`opened_us`); a later one `server_time` − first stamp
/// after that. A heartbeat without a stamp is bounded by the request alone.
fn heartbeat_sent_after(opened_us: u64, f: &Frame, first_stamp: &mut Option<u64>) -> u64 {
    let Some(stamp) = server_time_us(f) else {
        return opened_us;
    };
    let first = *first_stamp.get_or_insert(stamp);
    (opened_us + stamp.saturating_sub(first)).saturating_sub(HEARTBEAT_STAMP_SLACK_US)
}

/// A connection told `cursor_ahead` (an `error` or a `connection_close` with that
/// code) although its numeric cursor was at or below a seq known to exist when it
/// opened: acknowledged by then, or received by some client by then. Clients that the
/// scenario sent above the head on purpose are `resume.cursor-ahead`'s.
fn told_ahead_at_a_known_seq(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for c in &ctx.clients {
        if c.t.stream == StreamKind::Version || ctx.rec.expect.cursor_ahead.contains(c.id()) {
            continue;
        }
        for conn in &c.t.connections {
            let Cursor::Seq(l) = cursor_of(&conn.cursor) else {
                continue;
            };
            let Some(f) = conn.frames.iter().find(|f| {
                lifecycle(f).is_some_and(|(n, fl)| {
                    let code = match n {
                        "error" => str_field(fl, "code"),
                        "connection_close" => str_field(fl, "reason"),
                        _ => None,
                    };
                    code == Some(CloseReason::CursorAhead.name())
                })
            }) else {
                continue;
            };
            let Some((known, why)) = known_before(ctx, conn.opened_us) else {
                continue;
            };
            if l <= known.0 {
                found.push(Evidence {
                    seq: Some(known),
                    expected: format!(
                        "no cursor_ahead for cursor {l}: seq {known} existed before the request ({why})"
                    ),
                    seen: describe(f),
                    ..at_frame(c.id(), conn, Some(f))
                });
            }
        }
    }
    for e in found {
        ctx.emit(ids::RESUME_HEAD_NOT_BEHIND, e);
    }
}

/// The highest seq known to exist before `t` (acknowledged, or received by a client),
/// and why it is known.
fn known_before(ctx: &Ctx, t: u64) -> Option<(Seq, String)> {
    let acked = ctx
        .rec
        .acks
        .iter()
        .filter(|a| a.acked_us < t)
        .filter_map(|a| a.seq.map(|s| (s, "acknowledged".to_owned())));
    let delivered = ctx.clients.iter().flat_map(|c| {
        c.deliveries
            .iter()
            .filter(|d| d.frame.at_us < t)
            .filter_map(|d| d.ev.seq.map(|s| (s, format!("received by {}", c.id()))))
    });
    acked.chain(delivered).max_by_key(|(s, _)| *s)
}
