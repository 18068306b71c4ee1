//! `delivery.*`: every acknowledged write reaches every subscriber owed it, under the
//! seq it was acknowledged with, the same for everyone; every publish is acknowledged;
//! no events stream is dropped without a `connection_close`; every client receives each
//! write's content exactly as it was published.

use harness_model::ids;
use std::collections::{BTreeMap, BTreeSet};

use harness_model::{Ack, ClientId, ConnEnd, Evidence, Seq, StreamKind};

use crate::IdMode;
use crate::reuse::{numeric_consistent, reused_acks};
use crate::view::{
    ClientView, Ctx, Cursor, Delivery, at_frame, cursor_of, describe_end, is_lifecycle, ms,
};

/// A restart this close to a connection may have ended it without a close frame.
const RESTART_WINDOW_US: u64 = 5_000_000;

pub(crate) fn check(ctx: &mut Ctx) {
    if !ctx.enabled("delivery") {
        return;
    }
    lost_ack(ctx);
    let flagged = ack_matches(ctx);
    reused_acks(ctx);
    match ctx.cfg.ids {
        IdMode::Numeric => numeric_consistent(ctx, &flagged),
        IdMode::Opaque => opaque_consistent(ctx),
    }
    publish_acked(ctx);
    slow_consumer_close(ctx);
    only_requested(ctx);
    content_intact(ctx);
    crate::fairness::fast_not_held_back(ctx);
    crate::indeterminate::check(ctx);
}

/// A subscriber filtered to some jobs (channels) that receives another job's event:
/// the job is the one the marker was published to when the harness published it, else
/// the one the event names. One finding per connection (its first such event), so a
/// leak on the first connection and on each resume is each reported.
fn only_requested(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for c in ctx.log_clients().filter(|c| !c.t.jobs.is_empty()) {
        for ds in c.by_conn().values() {
            let stray = ds.iter().find_map(|d| {
                let job =
                    d.ev.marker
                        .as_deref()
                        .and_then(|m| ctx.ack_by_marker.get(m))
                        .map(|a| a.job.as_str())
                        .or(d.ev.job.as_deref())?;
                (!c.sub.reads(job)).then_some((d, job))
            });
            if let Some((d, job)) = stray {
                found.push(Evidence {
                    expected: format!("only events of {}", c.t.jobs.join(", ")),
                    seen: format!("an event of job {job}"),
                    ..d.evidence(c.id())
                });
            }
        }
    }
    for e in found {
        ctx.emit(ids::DELIVERY_ONLY_REQUESTED, e);
    }
}

pub(crate) fn loss_clients<'c, 'a>(ctx: &'c Ctx<'a>) -> impl Iterator<Item = &'c ClientView<'a>> {
    ctx.log_clients()
        .filter(|c| c.t.stream == StreamKind::Events)
}

pub(crate) fn ended(c: &ClientView) -> String {
    match c.t.connections.last() {
        Some(last) => format!(
            "stream ended by {} at {} ms",
            describe_end(&last.end),
            ms(last.ended_us)
        ),
        None => "no connection".to_owned(),
    }
}

fn lost_evidence(
    c: &ClientView,
    missing: &[&Ack],
    last: Option<&Delivery>,
    numeric: bool,
) -> Evidence {
    let a = missing[0];
    let conn =
        c.t.connections
            .last()
            .expect("a client with owed acks has a connection");
    let more = match (missing.len(), numeric) {
        (1, _) => String::new(),
        (n, true) => format!(
            " and {} more acked seqs up to {}",
            n - 1,
            missing[n - 1].seq.map_or(0, |s| s.0)
        ),
        (n, false) => format!(" and {} more acked markers", n - 1),
    };
    let name = match (a.seq, numeric) {
        (Some(s), true) => format!("seq {s}"),
        _ => format!("marker {} of publisher {}", a.marker, a.publisher),
    };
    let got = match (last, numeric) {
        (Some(d), true) => format!("last delivered seq {}", d.ev.seq.map_or(0, |s| s.0)),
        (Some(d), false) => format!(
            "last delivered marker {}",
            d.ev.marker.as_deref().unwrap_or("?")
        ),
        (None, _) => "nothing delivered".to_owned(),
    };
    Evidence {
        seq: a.seq,
        marker: Some(a.marker.clone()),
        expected: format!(
            "{name}{more} (acked at {} ms, job {}) delivered",
            ms(a.acked_us),
            a.job
        ),
        seen: format!("{got}; {}", ended(c)),
        ..at_frame(c.id(), conn, None)
    }
}

fn lost_ack(ctx: &mut Ctx) {
    let numeric = ctx.cfg.ids == IdMode::Numeric;
    let order = &ctx.order;
    let mut found = Vec::new();
    for c in loss_clients(ctx) {
        let live =
            |a: &&Ack| !ctx.vanished.contains(a.marker.as_str()) && c.tail_owed(a, ctx.cfg.ids);
        if numeric {
            let last = c
                .deliveries
                .iter()
                .filter(|d| d.ev.seq.is_some())
                .max_by_key(|d| d.ev.seq);
            let top = last.and_then(|d| d.ev.seq);
            let mut missing: Vec<&Ack> = ctx
                .rec
                .acks
                .iter()
                .filter(|a| a.seq.is_some_and(|s| Some(s) > top))
                .filter(live)
                .collect();
            missing.sort_by_key(|a| a.seq);
            if !missing.is_empty() {
                found.push(lost_evidence(c, &missing, last, true));
            }
            // Skipped below a later cursor: owed, never delivered, not after the last
            // delivery and not between two deliveries of one connection (those are
            // resume.no-gap). The client resumed past them, e.g. because the target
            // sent an id: on a block without data, or the client resumed with an id it
            // never received.
            let got: BTreeSet<Seq> = c.deliveries.iter().filter_map(|d| d.ev.seq).collect();
            let spans = connection_spans(c);
            let mut skipped: Vec<&Ack> = ctx
                .rec
                .acks
                .iter()
                .filter(|a| a.seq.is_some_and(|s| Some(s) < top && !got.contains(&s)))
                .filter(|a| {
                    !spans
                        .iter()
                        .any(|(lo, hi)| a.seq.is_some_and(|s| s.0 > *lo && s.0 < *hi))
                })
                .filter(|a| !ctx.vanished.contains(a.marker.as_str()) && c.owed(a, ctx.cfg.ids))
                .collect();
            skipped.sort_by_key(|a| a.seq);
            if let Some(first) = skipped.first() {
                let after = c
                    .deliveries
                    .iter()
                    .find(|d| d.ev.seq.is_some_and(|s| Some(s) > first.seq));
                let mut e = after.map(|d| d.evidence(c.id())).unwrap_or_default();
                e.client = Some(c.id().clone());
                e.seq = first.seq;
                e.marker = Some(first.marker.clone());
                e.expected = format!(
                    "acked seq {} delivered (owed: the client read that job over it)",
                    first.seq.map(|s| s.0).unwrap_or_default()
                );
                e.seen = format!(
                    "{} acked seq(s) never delivered, skipped below a later cursor{}",
                    skipped.len(),
                    after.map_or(String::new(), |d| format!(
                        " (next delivered: seq {})",
                        d.ev.seq.map(|s| s.0).unwrap_or_default()
                    ))
                );
                found.push(e);
            }
        }
        let delivered: BTreeMap<&str, &Delivery> = c
            .deliveries
            .iter()
            .filter_map(|d| d.ev.marker.as_deref().map(|m| (m, d)))
            .collect();
        for list in order.lists.values() {
            // Numeric targets judge seq-less acks here too.
            let list: Vec<&Ack> = list
                .iter()
                .copied()
                .filter(|a| !numeric || a.seq.is_none())
                .collect();
            let after = list
                .iter()
                .rposition(|a| delivered.contains_key(a.marker.as_str()))
                .map_or(0, |i| i + 1);
            let last = after
                .checked_sub(1)
                .map(|i| delivered[list[i].marker.as_str()]);
            let missing: Vec<&Ack> = list[after..].iter().copied().filter(live).collect();
            if !missing.is_empty() {
                found.push(lost_evidence(c, &missing, last, false));
            }
        }
    }
    for e in found {
        ctx.emit(ids::DELIVERY_LOST_ACK, e);
    }
}

/// Per connection, the open interval in which resume.no-gap judges missing seqs:
/// from its numeric cursor (or its first delivery) to its last delivery.
pub(crate) fn connection_spans(c: &ClientView<'_>) -> Vec<(u64, u64)> {
    let mut spans = Vec::new();
    for (pos, conn) in c.t.connections.iter().enumerate() {
        let seqs: Vec<u64> = c
            .deliveries
            .iter()
            .filter(|d| d.conn_pos == pos)
            .filter_map(|d| d.ev.seq.map(|s| s.0))
            .collect();
        let (Some(first), Some(last)) = (seqs.first(), seqs.last()) else {
            continue;
        };
        let lo = match cursor_of(&conn.cursor) {
            Cursor::Seq(l) => l.min(*first),
            _ => *first,
        };
        spans.push((lo, *last));
    }
    spans
}

/// Checks each delivery against the ack of its seq and of its marker. Returns the
/// (client, seq) pairs it flagged, so that consistency does not report them again.
fn ack_matches(ctx: &mut Ctx) -> BTreeSet<(ClientId, Seq)> {
    let mut found = Vec::new();
    let mut flagged = BTreeSet::new();
    let mut seen_marker = BTreeSet::new();
    for c in &ctx.clients {
        for d in &c.deliveries {
            let by_marker =
                d.ev.marker
                    .as_deref()
                    .and_then(|m| ctx.ack_by_marker.get(m));
            let problem = match d.ev.seq.and_then(|s| ctx.ack_by_seq.get(&s)) {
                Some(acks) if ctx.cfg.ids == IdMode::Numeric => {
                    let fits = |a: &&&Ack| {
                        d.ev.marker.as_deref() == Some(a.marker.as_str())
                            && d.ev.job.as_deref().is_none_or(|j| j == a.job)
                    };
                    if acks.iter().any(|a| fits(&a)) {
                        None
                    } else {
                        let a = acks[0];
                        Some(format!(
                            "marker {} of job {} (acked under this seq)",
                            a.marker, a.job
                        ))
                    }
                }
                _ => match by_marker {
                    // A retried write under another seq than its ack's is a second copy
                    // (`delivery.indeterminate`), or its ack's seq never comes (lost-ack).
                    Some(a)
                        if ctx.cfg.ids == IdMode::Numeric
                            && a.seq.is_some()
                            && a.seq != d.ev.seq
                            && !ctx.uncertain.contains_key(a.marker.as_str()) =>
                    {
                        Some(format!(
                            "seq {} (the seq marker {} was acked with)",
                            a.seq.map_or(0, |s| s.0),
                            a.marker
                        ))
                    }
                    Some(a) if d.ev.job.as_deref().is_some_and(|j| j != a.job) => Some(format!(
                        "job {} (the job marker {} was published to)",
                        a.job, a.marker
                    )),
                    _ => None,
                },
            };
            let Some(expected) = problem else { continue };
            let key = (
                c.id().clone(),
                d.ev.seq.unwrap_or(Seq(u64::MAX)),
                d.ev.marker.clone(),
            );
            if !seen_marker.insert(key) {
                continue;
            }
            if let Some(s) = d.ev.seq {
                flagged.insert((c.id().clone(), s));
            }
            let seen = format!(
                "marker {} of job {}",
                d.ev.marker.as_deref().unwrap_or("(none)"),
                d.ev.job.as_deref().unwrap_or("(none)")
            );
            found.push((
                ids::DELIVERY_ACK_MATCHES,
                Evidence {
                    expected,
                    seen,
                    ..d.evidence(c.id())
                },
            ));
        }
    }
    for (id, e) in found {
        ctx.emit(id, e);
    }
    flagged
}

fn opaque_consistent(ctx: &mut Ctx) {
    let mut found = Vec::new();
    // The same opaque id for two different events of one channel (an opaque id names
    // a place in its own channel's stream: another channel may use it too).
    let mut by_id: BTreeMap<(Option<&str>, &str), (&ClientId, &Delivery)> = BTreeMap::new();
    let mut reported = BTreeSet::new();
    for c in &ctx.clients {
        for d in &c.deliveries {
            let (Some(o), Some(m)) = (d.ev.opaque_id.as_deref(), d.ev.marker.as_deref()) else {
                continue;
            };
            let channel = ctx.ack_by_marker.get(m).map(|a| a.job.as_str());
            match by_id.get(&(channel, o)) {
                None => {
                    by_id.insert((channel, o), (c.id(), d));
                }
                Some((rc, r))
                    if r.ev.marker.as_deref() != Some(m) && reported.insert((c.id(), o)) =>
                {
                    found.push(Evidence {
                        expected: format!(
                            "id {o} to be marker {} as {rc} got it at {}",
                            r.ev.marker.as_deref().unwrap_or("?"),
                            r.place()
                        ),
                        seen: format!("marker {m} under id {o}"),
                        ..d.evidence(c.id())
                    });
                }
                Some(_) => {}
            }
        }
    }
    // Two clients seeing two writes in opposite order (same-publisher writes whose order
    // is causal are resume.monotonic's).
    let order: Vec<(&ClientId, BTreeMap<&str, usize>, Vec<&Delivery>)> = ctx
        .clients
        .iter()
        .map(|c| {
            let mut pos = BTreeMap::new();
            let mut firsts = Vec::new();
            for d in &c.deliveries {
                if let Some(m) = d.ev.marker.as_deref()
                    && !pos.contains_key(m)
                {
                    pos.insert(m, firsts.len());
                    firsts.push(d);
                }
            }
            (c.id(), pos, firsts)
        })
        .collect();
    let causal = |x: &str, y: &str| match (ctx.ack_by_marker.get(x), ctx.ack_by_marker.get(y)) {
        (Some(a), Some(b)) => {
            a.publisher == b.publisher && (a.acked_us <= b.sent_us || b.acked_us <= a.sent_us)
        }
        _ => false,
    };
    for (bi, (b, _, firsts)) in order.iter().enumerate() {
        'pairs: for (a, apos, _) in &order[..bi] {
            let mut top: Option<(usize, &str)> = None;
            for d in firsts {
                let Some(m) = d.ev.marker.as_deref() else {
                    continue;
                };
                let Some(&p) = apos.get(m) else { continue };
                match top {
                    Some((tp, tm)) if p < tp => {
                        if causal(m, tm) {
                            continue;
                        }
                        found.push(Evidence {
                            expected: format!("marker {m} before marker {tm}, the order {a} saw"),
                            seen: format!("marker {m} after marker {tm}"),
                            ..d.evidence(b)
                        });
                        break 'pairs;
                    }
                    Some((tp, _)) if p < tp => {}
                    _ => top = Some((p, m)),
                }
            }
        }
    }
    for e in found {
        ctx.emit(ids::DELIVERY_CONSISTENT, e);
    }
}

fn publish_acked(ctx: &mut Ctx) {
    // Writes that try to inject fields may be refused (`wire.field-injection`).
    let refusable = ctx
        .rec
        .workload
        .as_ref()
        .is_some_and(|w| w.hostile_event_type().is_some());
    // A scenario that cuts publish connections on purpose (a `reset_peer` on the
    // publisher path also resets TLS handshakes, before any request byte): a publish
    // with no response at all is the cut's doing and certainly not applied, so it is
    // neither owed nor held against the server; a status still is.
    let cut_on_purpose = ctx.rec.workload.as_ref().is_some_and(|w| w.publish_cuts);
    let found: Vec<Evidence> = ctx
        .rec
        .publish_failures
        .iter()
        .filter(|p| !(refusable && p.status.is_some_and(|s| (400..500).contains(&s))))
        .filter(|p| !(cut_on_purpose && p.status.is_none()))
        .map(|p| Evidence {
            marker: p.markers.first().cloned(),
            expected: format!("a 2xx ack for the publish of {} event(s)", p.markers.len()),
            seen: match p.status {
                Some(s) => format!("status {s}: {}", p.error),
                None => format!("no response: {}", p.error),
            },
            ..Evidence::default()
        })
        .collect();
    let lost = ctx
        .rec
        .indeterminate
        .iter()
        .filter(|_| !cut_on_purpose)
        .map(|w| Evidence {
            marker: w.markers.first().cloned(),
            at_ms: Some(ms(w.sent_us)),
            expected: format!("a 2xx ack for the publish of {} event(s)", w.markers.len()),
            seen: match w.resolved {
                true => format!(
                    "no answer ({}: {}), acked by attempt {} of the same key",
                    w.cause, w.error, w.attempts
                ),
                false => format!(
                    "no answer in {} attempt(s) ({}: {}): the write's fate is unknown",
                    w.attempts, w.cause, w.error
                ),
            },
            ..Evidence::default()
        });
    let found: Vec<Evidence> = found.into_iter().chain(lost).collect();
    for e in found {
        ctx.emit(ids::DELIVERY_PUBLISH_ACKED, e);
    }
}

fn slow_consumer_close(ctx: &mut Ctx) {
    if !ctx.cfg.lifecycle_frames {
        return;
    }
    let mut found = Vec::new();
    for c in loss_clients(ctx) {
        for conn in &c.t.connections {
            // A clean end, or an abrupt one (a reset, an EOF inside a chunk): either way
            // the server ended a stream that only a close frame may end.
            let abrupt = matches!(conn.end, ConnEnd::Failed { .. });
            if !(conn.end == ConnEnd::ServerClosed || abrupt) || conn.status != Some(200) {
                continue;
            }
            // A toxic proxy between the parts cut it, not the server.
            if crate::network::cut_by_proxy(ctx.rec, conn) {
                continue;
            }
            if conn
                .frames
                .iter()
                .any(|f| is_lifecycle(f, "connection_close"))
            {
                continue;
            }
            let near_restart = ctx.rec.restarts.iter().any(|&r| {
                r.saturating_add(RESTART_WINDOW_US) >= conn.opened_us
                    && r <= conn.ended_us.saturating_add(RESTART_WINDOW_US)
            });
            if near_restart {
                continue;
            }
            let how = if abrupt {
                describe_end(&conn.end)
            } else {
                "the response ended".to_owned()
            };
            found.push(Evidence {
                expected: "connection_close (slow_consumer, server_shutdown, ...) before an events stream ends".to_owned(),
                seen: format!(
                    "{how} after {} bytes at {} ms without connection_close",
                    conn.body_bytes,
                    ms(conn.ended_us)
                ),
                ..at_frame(c.id(), conn, None)
            });
        }
    }
    for e in found {
        ctx.emit(ids::DELIVERY_SLOW_CONSUMER_CLOSE, e);
    }
}

/// What a delivered data event carries as content: the compact JSON at the pointer
/// (None when the data is not JSON or has nothing there), or the data text.
fn delivered_content(data: &str, pointer: Option<&str>) -> Option<String> {
    match pointer {
        None => Some(data.to_owned()),
        Some(p) => {
            let v: serde_json::Value = serde_json::from_str(data).ok()?;
            Some(crate::jobs::canonical(v.pointer(p)?).to_string())
        }
    }
}

/// The content a client must receive for a write published as `published`: JSON is
/// compared in its canonical form; text as SSE carries it (a data line ends at CR LF,
/// CR or LF and the lines are joined with LF, so a CR cannot arrive as itself).
fn expected_content(published: &str, pointer: Option<&str>) -> String {
    match pointer {
        Some(_) => serde_json::from_str::<serde_json::Value>(published)
            .map(|v| crate::jobs::canonical(&v).to_string())
            .unwrap_or_else(|_| published.to_owned()),
        None => published.replace("\r\n", "\n").replace('\r', "\n"),
    }
}

/// The first byte where `a` and `b` differ (the shorter one's length when one is the
/// other's prefix), or None when they are equal.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(a.iter().zip(b).take_while(|(x, y)| x == y).count())
}

/// A few bytes of `s` from `at`, escaped, for evidence.
fn excerpt(s: &[u8], at: usize) -> String {
    let from = at.saturating_sub(8).min(s.len());
    let to = (at + 16).min(s.len());
    let text = String::from_utf8_lossy(&s[from..to]);
    format!("\"{}\"", harness_model::untrusted(&text))
}

/// `delivery.content-intact`: every client's copy of each published write is its
/// content as published, naming the first byte where it differs (one finding per
/// client, at its first differing copy, with how many differed).
fn content_intact(ctx: &mut Ctx) {
    let Some(published) = &ctx.rec.published else {
        return;
    };
    let pointer = published.pointer.as_deref();
    let mut found = Vec::new();
    for c in ctx.log_clients() {
        let mut first: Option<(Evidence, usize)> = None;
        let mut differing = 0usize;
        for d in &c.deliveries {
            let Some(sent) =
                d.ev.marker
                    .as_deref()
                    .and_then(|m| published.by_marker.get(m))
            else {
                continue;
            };
            let want = expected_content(sent, pointer);
            let got = delivered_content(&d.frame.data, pointer);
            let got_bytes = got.as_deref().map_or(&b""[..], str::as_bytes);
            let Some(at) = first_difference(want.as_bytes(), got_bytes) else {
                continue;
            };
            differing += 1;
            if first.is_none() {
                let seen = match &got {
                    Some(g) => format!(
                        "{} bytes that differ at byte {at}: {} where {} was published",
                        g.len(),
                        excerpt(g.as_bytes(), at),
                        excerpt(want.as_bytes(), at)
                    ),
                    None => format!("no content at {}", pointer.unwrap_or("the data")),
                };
                let what = pointer.map_or("data text".to_owned(), |p| format!("content at {p}"));
                let e = Evidence {
                    expected: format!("the {what} as published ({} bytes)", want.len()),
                    seen,
                    ..d.evidence(c.id())
                };
                first = Some((e, at));
            }
        }
        if let Some((mut e, _)) = first {
            if differing > 1 {
                e.seen = format!("{} ({differing} copies differ)", e.seen);
            }
            found.push(e);
        }
    }
    for e in found {
        ctx.emit(ids::DELIVERY_CONTENT_INTACT, e);
    }
}
