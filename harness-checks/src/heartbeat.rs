//! `heartbeat.*`: an idle stream is never silent for more than 2 x `heartbeat_ms`, and
//! heartbeat frames carry `server_time` and `head_seq` and no id.
//!
//! Between two consecutive heartbeats silence is measured on the server's clock (their
//! `server_time`): the receive times only corroborate, so a stall of the harness never
//! fails a correct server. Other silences are measured on the client's receive times,
//! which a paused reader stretches. Clients the scenario left idle on purpose read
//! promptly, so every such silence on them is judged, the one before the end of the
//! stream too, whatever ended it. On other connections a silence that ends in a burst
//! (two or more items within [`BURST_US`]) is what a paused reader sees of a
//! heartbeating server (the heartbeats waited in the socket), so it is not held against
//! the target; nor is the silence before such a connection's end.
//!
//! One receive silence is judged even between well-stamped heartbeats: on an idle
//! client, heartbeats the server stamped on time that reach the client only after a
//! silence above both the limit and [`HELD_MIN_US`] were held on the way. That is what a
//! proxy that buffers responses (nginx `proxy_buffering on`, a CDN) does to a stream,
//! and the finding says so; a stall of the harness itself is far shorter than that.
//!
//! Through a toxic proxy on the subscriber path (`[[toxics]]` with `latency`), a
//! receive silence is judged as the least the server's own silence can have been: the
//! proxy's log says how long it held each downstream chunk, and the frame before the
//! silence was held at least the declared least delay (latency − jitter), so the
//! allowance widens by exactly (the longest hold of a chunk released in the silence −
//! that least delay); at the end of a stream, where no chunk ends the silence, by the
//! declared spread (latency + jitter − (latency − jitter)). No fudge factor. A finding
//! then says how long the proxy held the chunks that ended the silence, so a reader
//! knows whether the server or the network was late.

use harness_model::ids;
use harness_model::{Connection, Evidence, FrameKind};
use serde_json::Value;

use crate::view::{Ctx, at_frame, ms, server_time_us, str_field};
use crate::{HeartbeatForm, IdMode};

/// Items received this close together were read from one buffered burst.
const BURST_US: u64 = 20_000;

/// The shortest receive silence between on-time heartbeats judged as held on the way
/// (5 s): longer than any stall of the harness, shorter than a buffering proxy's.
const HELD_MIN_US: u64 = 5_000_000;

pub(crate) fn check(ctx: &mut Ctx) {
    if !ctx.enabled("heartbeat") {
        return;
    }
    interval(ctx);
    fields(ctx);
}

/// The interval a connection is judged by: the profile's, else the one its
/// `connection_open` announced (clamped by [`harness_model::heartbeat::interval_ms`]),
/// bounded by the profile's longest allowed interval: a target cannot switch the check
/// off by announcing a huge interval.
fn interval_ms(ctx: &Ctx, conn: &Connection) -> Option<u64> {
    ctx.cfg
        .heartbeat_ms
        .or_else(|| {
            conn.frames.iter().find_map(|f| match &f.kind {
                FrameKind::Lifecycle { name, fields } if name == "connection_open" => {
                    harness_model::heartbeat::interval_ms(fields)
                }
                _ => None,
            })
        })
        .map(|i| ctx.cfg.heartbeat_max_ms.map_or(i, |max| i.min(max)))
        .filter(|&i| i > 0)
}

fn interval(ctx: &mut Ctx) {
    if ctx.cfg.heartbeat == HeartbeatForm::None {
        return;
    }
    let mut found = Vec::new();
    for c in &ctx.clients {
        let idle = ctx.rec.expect.idle.contains(c.id());
        for conn in &c.t.connections {
            if !conn.status.is_some_and(|s| (200..300).contains(&s)) {
                continue;
            }
            let Some(every) = interval_ms(ctx, conn) else {
                continue;
            };
            let limit = every.saturating_mul(2_000);
            let start = conn.head_us.unwrap_or(conn.opened_us);
            let long = conn.ended_us.saturating_sub(start) > every.saturating_mul(3_000);
            if !(idle || ctx.cfg.lifecycle_frames && long) {
                continue;
            }
            let holds = crate::network::Holds::of(ctx.rec, conn);
            let Some(Silence {
                from,
                to,
                frame,
                clock,
                held_us,
            }) = silence(conn, start, limit, idle, &holds)
            else {
                continue;
            };
            let f = frame.map(|i| &conn.frames[i]);
            let network = holds.describe(held_us, to, clock == Clock::Server);
            found.push(Evidence {
                expected: format!(
                    "no silence above 2 x heartbeat_ms = {} ms",
                    every.saturating_mul(2)
                ),
                seen: match clock {
                    Clock::Receive => format!(
                        "{} ms of silence (from {} ms to {} ms)",
                        ms(to - from),
                        ms(from),
                        ms(to)
                    ) + &network,
                    Clock::Server => format!(
                        "{} ms between consecutive heartbeats by their server_time",
                        ms(to - from)
                    ) + &network,
                    Clock::Held => format!(
                        "{} ms of silence (from {} ms to {} ms) ended by heartbeats the server stamped on time: \
they were held on the way, as a proxy that buffers responses does (nginx proxy_buffering on, a CDN): \
the likely cause is buffering between the server and the client",
                        ms(to - from),
                        ms(from),
                        ms(to)
                    ) + &network,
                },
                ..at_frame(c.id(), conn, f)
            });
        }
    }
    for e in found {
        ctx.emit(ids::HEARTBEAT_INTERVAL, e);
    }
}

/// Which clock measured a silence.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Clock {
    /// The harness's receive times.
    Receive,
    /// The `server_time` of two consecutive heartbeats (µs since the epoch).
    Server,
    /// The receive times, between heartbeats the server stamped on time.
    Held,
}

/// A silence found on a connection.
struct Silence {
    /// Its start, in µs (receive times with the proxy's holds taken off, or server_time).
    from: u64,
    /// Its end.
    to: u64,
    /// The frame that ended it, if a frame did.
    frame: Option<usize>,
    /// The clock that measured it.
    clock: Clock,
    /// How long the proxy held the chunk that ended it, in µs (0 without a proxy).
    held_us: u64,
}

/// The first silence above `limit` µs on a connection: from, to, the frame that ended
/// it, the clock that measured it and the proxy's hold of the chunk that ended it. Two consecutive heartbeats are judged by their
/// `server_time` alone, so a stall of the harness never fails a correct server and a
/// server that stamps a long silence fails however its frames arrived; other gaps by
/// receive time (a burst forgives a paused reader unless the client was idle). An idle
/// client's final silence is judged whatever ended the stream.
fn silence(
    conn: &Connection,
    start: u64,
    limit: u64,
    idle: bool,
    holds: &crate::network::Holds,
) -> Option<Silence> {
    // (receive time, frame index) of every frame and comment, in time order.
    let mut items: Vec<(u64, Option<usize>)> = conn
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| (f.at_us, Some(i)))
        .collect();
    items.extend(conn.comments.iter().map(|c| (c.at_us, None)));
    items.sort();
    let found = |from, to, frame, clock, held_us| {
        Some(Silence {
            from,
            to,
            frame,
            clock,
            held_us,
        })
    };
    let stamp = |i: Option<usize>| i.and_then(|i| server_time_us(&conn.frames[i]));
    let mut prev = start;
    let mut prev_stamp = None;
    for (k, &(t, frame)) in items.iter().enumerate() {
        let this_stamp = stamp(frame);
        // What the proxy may have added to this gap, by its log.
        let (extra, held) = holds.widening_us(prev, t);
        if let (Some(a), Some(b)) = (prev_stamp, this_stamp) {
            if b.saturating_sub(a) > limit {
                return found(a, b, frame, Clock::Server, 0);
            }
            if idle && t.saturating_sub(prev) > limit.max(HELD_MIN_US) + extra {
                return found(prev, t, frame, Clock::Held, held);
            }
        } else if t.saturating_sub(prev) > limit + extra {
            let burst = items[k..]
                .iter()
                .take_while(|(u, _)| *u <= t + BURST_US)
                .count()
                >= 2;
            if idle || !burst {
                return found(prev, t, frame, Clock::Receive, held);
            }
        }
        prev = prev.max(t);
        prev_stamp = this_stamp;
    }
    // An idle client was silent up to its end too, however the stream ended: the
    // deadline is when it gave up waiting, a close or reset is when the server ended it.
    // Through a proxy, what the server sent shortly before the end may still have been
    // on its way: the declared spread of the delay.
    let end = conn.ended_us;
    if idle && end.saturating_sub(prev) > limit + holds.spread_us(end) {
        return found(prev, end, None, Clock::Receive, 0);
    }
    None
}

fn fields(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for c in &ctx.clients {
        for conn in &c.t.connections {
            for f in &conn.frames {
                let FrameKind::Heartbeat { fields } = &f.kind else {
                    continue;
                };
                let head = fields.get("head_seq");
                let head_ok = match ctx.cfg.ids {
                    IdMode::Numeric => head.is_some_and(Value::is_u64),
                    IdMode::Opaque => head.is_some(),
                };
                let seen = if str_field(fields, "server_time").is_none() {
                    format!(
                        "server_time {}",
                        fields
                            .get("server_time")
                            .map_or("missing".to_owned(), Value::to_string)
                    )
                } else if !head_ok {
                    format!(
                        "head_seq {}",
                        head.map_or("missing".to_owned(), Value::to_string)
                    )
                } else if let Some(id) = &f.id {
                    format!("id: {id}")
                } else {
                    continue;
                };
                found.push(Evidence {
                    expected: "a heartbeat with server_time and head_seq, and no id".to_owned(),
                    seen,
                    ..at_frame(c.id(), conn, Some(f))
                });
                // One per connection: a target that gets it wrong gets it wrong every time.
                break;
            }
        }
    }
    for e in found {
        ctx.emit(ids::HEARTBEAT_FIELDS, e);
    }
}
