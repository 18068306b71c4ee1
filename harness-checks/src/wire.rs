//! `wire.*`: what reaches the client, and when: the bug class public SSE trackers show
//! most often, something on the path (a compression layer, a proxy, a framework's
//! response wrapper) buffering the stream.
//!
//! - `wire.stream-headers` is judged on every 2xx stream of every scenario (a header is
//!   there or not; nothing the harness does can explain it): a `text/event-stream`
//!   Content-Type whose charset, if any, is `utf-8`; no `Content-Length` (a length
//!   makes the stream finite, and proxies buffer such responses); over HTTP/2 none of
//!   the connection-specific fields (the h2 client refuses such a response as
//!   malformed before it is recorded, so this mostly guards recordings from elsewhere).
//!   A Content-Type that is not `text/event-stream` at all is `lifecycle.headers`'.
//! - `wire.open-time`, in scenarios that judge the `wire` family: every connection's
//!   response head, and on lifecycle targets its first frame, arrives within
//!   [`CheckConfig::open_within_ms`](crate::CheckConfig) of the request being sent. A
//!   server (or proxy) that holds the head until the first event fails on an idle
//!   stream. A connection that ended before the bound without a head proves nothing.
//! - `wire.event-latency`, in `wire` scenarios whose workload publishes a slow trickle
//!   (`WorkloadPlan::trickle_ms`): every live write owed to a client that reads at full
//!   speed and is never cut is decodable within
//!   [`CheckConfig::event_within_ms`](crate::CheckConfig) of its acknowledgement
//!   (measured from the ack, not the send: a slow fsync before the ack is not latency on
//!   the wire), or, never decoded, the stream stayed open past that bound. The finding
//!   names what the recording shows of the cause: the write arrived together with the
//!   next one (one behind), in a burst with writes acknowledged far apart, under a
//!   `Content-Encoding` (a compressor that does not flush per event), through a proxy
//!   (`Via`), without `X-Accel-Buffering: no`.
//! - `wire.field-injection`, in `wire` scenarios whose writes carry a publisher-chosen
//!   event type with CR, LF or NUL (`WorkloadPlan::hostile_event_type`): the target may
//!   refuse them (a 4xx is then not a `delivery.publish-acked` finding) or carry them
//!   escaped, but no client may see a frame the text made: an event of an unknown name,
//!   or a malformed one (strict profiles: data that is not the profile's JSON).

use std::collections::BTreeMap;

use harness_model::{Ack, ClientId, Connection, Evidence, FrameKind, HttpProtocol, ids};

use crate::view::{ClientView, Ctx, at_conn, at_frame, describe, ms};

/// Arrivals this close together were decoded from one burst.
const BURST_US: u64 = 20_000;

/// An event decoded this soon after the next write's ack came with that write.
const WITH_NEXT_US: u64 = 250_000;

pub(crate) fn check(ctx: &mut Ctx) {
    stream_headers(ctx);
    if !ctx.enabled("wire") {
        return;
    }
    open_time(ctx);
    event_latency(ctx);
    field_injection(ctx);
}

/// On a scenario whose writes carry a hostile event type: every frame a client got is
/// a known one (lifecycle, heartbeat, or a data event that parsed), so nothing the
/// publisher wrote became a field or an event of its own. Refusing the writes is fine.
fn field_injection(ctx: &mut Ctx) {
    let Some(hostile) = ctx
        .rec
        .workload
        .as_ref()
        .and_then(|w| w.hostile_event_type())
    else {
        return;
    };
    let expected = format!(
        "writes whose event type is {hostile:?} refused or delivered as one event each, with no field or event of their own"
    );
    let mut found = Vec::new();
    for c in ctx.log_clients() {
        for conn in &c.t.connections {
            // An event of its own first (the clearest evidence), else a malformed one.
            let split = conn
                .frames
                .iter()
                .find(|f| matches!(f.kind, FrameKind::Other))
                .or_else(|| {
                    conn.frames
                        .iter()
                        .find(|f| matches!(f.kind, FrameKind::Malformed { .. }))
                });
            if let Some(f) = split {
                found.push(Evidence {
                    expected: expected.clone(),
                    seen: format!("a frame the publisher's text made: {}", describe(f)),
                    ..at_frame(c.id(), conn, Some(f))
                });
            }
        }
    }
    for e in found {
        ctx.emit_at(ids::WIRE_FIELD_INJECTION, ctx.cfg.wire_level, e, false);
    }
}

/// Judged on every stream whatever the scenario's families (see the module doc).
fn stream_headers(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for c in &ctx.clients {
        for conn in &c.t.connections {
            if conn.status.is_some_and(|s| (200..300).contains(&s)) {
                found.extend(headers(c.id(), conn));
            }
        }
    }
    for e in found {
        ctx.emit_at(ids::WIRE_STREAM_HEADERS, ctx.cfg.wire_level, e, true);
    }
}

/// Connection-specific header fields, which HTTP/2 forbids (RFC 9113 §8.2.2).
const H2_FORBIDDEN: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

fn headers(id: &ClientId, conn: &Connection) -> Option<Evidence> {
    let mut wrong = Vec::new();
    if let Some(ct) = conn.headers.get("content-type") {
        let lower = ct.to_ascii_lowercase();
        let mut params = lower.split(';');
        if params.next().map(str::trim) == Some("text/event-stream") {
            for p in params {
                if let Some((name, value)) = p.split_once('=')
                    && name.trim() == "charset"
                    && !value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
                {
                    wrong.push(format!("content-type {ct}"));
                }
            }
        }
    }
    if let Some(len) = conn.headers.get("content-length") {
        wrong.push(format!("content-length {len}"));
    }
    if conn.protocol == HttpProtocol::H2 {
        for name in H2_FORBIDDEN {
            if let Some(v) = conn.headers.get(*name) {
                wrong.push(format!("{name} {v} over HTTP/2"));
            }
        }
    }
    (!wrong.is_empty()).then(|| Evidence {
        expected: "content-type text/event-stream (charset, if any, utf-8), no content-length, \
                   and over HTTP/2 no connection-specific fields"
            .to_owned(),
        seen: wrong.join(", "),
        ..at_conn(id, conn)
    })
}

fn open_time(ctx: &mut Ctx) {
    let bound = ctx.cfg.open_within_ms.saturating_mul(1000);
    let lifecycle = ctx.cfg.lifecycle_frames;
    let mut found = Vec::new();
    for c in &ctx.clients {
        for conn in &c.t.connections {
            found.extend(open_late(c.id(), conn, bound, lifecycle));
        }
    }
    for e in found {
        ctx.emit_at(ids::WIRE_OPEN_TIME, ctx.cfg.wire_level, e, false);
    }
}

/// How a connection opened late, if it did: its head, then (lifecycle targets, 2xx) its
/// first frame.
fn open_late(id: &ClientId, conn: &Connection, bound: u64, lifecycle: bool) -> Option<Evidence> {
    let after = |t: u64| t.saturating_sub(conn.opened_us);
    let expected = |what: &str| {
        format!(
            "{what} within {} ms of sending the request",
            ms(bound) as u64
        )
    };
    let late = |what: &str, seen: String| {
        Some(Evidence {
            expected: expected(what),
            seen,
            ..at_conn(id, conn)
        })
    };
    let Some(head) = conn.head_us else {
        let waited = after(conn.ended_us);
        return (waited > bound)
            .then(|| {
                late(
                    "the response head",
                    format!("no head after {} ms", ms(waited)),
                )
            })
            .flatten();
    };
    if after(head) > bound {
        return late(
            "the response head",
            format!("the head after {} ms", ms(after(head))),
        );
    }
    if !lifecycle || !conn.status.is_some_and(|s| (200..300).contains(&s)) {
        return None;
    }
    let what = "the response head and connection_open";
    match conn.frames.first() {
        Some(f) if after(f.at_us) > bound => Some(Evidence {
            expected: expected(what),
            seen: format!(
                "the head after {} ms, its first frame ({}) after {} ms",
                ms(after(head)),
                if f.event.is_empty() {
                    "message"
                } else {
                    &f.event
                },
                ms(after(f.at_us))
            ),
            ..at_frame(id, conn, Some(f))
        }),
        None if after(conn.ended_us) > bound => late(
            what,
            format!(
                "the head after {} ms and no frame in the {} ms the stream stayed open",
                ms(after(head)),
                ms(after(conn.ended_us))
            ),
        ),
        _ => None,
    }
}

fn event_latency(ctx: &mut Ctx) {
    let Some(w) = ctx.rec.workload.as_ref().filter(|w| w.trickle_ms > 0) else {
        return;
    };
    let bound = ctx.cfg.event_within_ms.saturating_mul(1000);
    let live: Vec<&Ack> = ctx
        .rec
        .acks
        .iter()
        .filter(|a| a.sent_us >= w.live_from_us)
        .collect();
    let full_speed = |c: &ClientView| {
        let group = c.id().0.split('#').next().unwrap_or_default();
        !ctx.rec.plan.cuts.contains_key(c.id())
            && w.groups
                .iter()
                .find(|g| g.name == group)
                .is_some_and(|g| g.bytes_per_sec == 0 && g.pause_ms == 0)
    };
    let mut found = Vec::new();
    for c in ctx.log_clients().filter(|c| full_speed(c)) {
        let judge = Latency {
            client: c,
            live: &live,
            bound,
            ids: ctx.cfg.ids,
        };
        found.extend(judge.late());
    }
    for e in found {
        ctx.emit_at(ids::WIRE_EVENT_LATENCY, ctx.cfg.wire_level, e, false);
    }
}

/// One client's writes of a trickle, judged against the bound.
struct Latency<'a, 'c> {
    client: &'c ClientView<'a>,
    /// The live acks, in ack order.
    live: &'c [&'a Ack],
    bound: u64,
    ids: crate::IdMode,
}

impl Latency<'_, '_> {
    /// The first owed live write decoded later than the bound, or never while the
    /// stream stayed open past it, with how many more were (one finding per client).
    fn late(&self) -> Option<Evidence> {
        let c = self.client;
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, d) in c.deliveries.iter().enumerate() {
            if let Some(m) = d.ev.marker.as_deref() {
                first.entry(m).or_insert(i);
            }
        }
        let mut late = self.live.iter().enumerate().filter_map(|(k, ack)| {
            if !c.owed(ack, self.ids) {
                return None;
            }
            match first.get(ack.marker.as_str()) {
                Some(&i) => self.decoded_late(k, i),
                None => self.never_decoded(ack),
            }
        });
        let mut e = late.next()?;
        let more = late.count();
        if more > 0 {
            e.seen.push_str(&format!(
                " (and {more} later write{} of this client late too)",
                if more == 1 { "" } else { "s" }
            ));
        }
        Some(e)
    }

    fn expected(&self) -> String {
        format!(
            "each event of a slow trickle decodable within {} ms of its publish being acknowledged",
            ms(self.bound) as u64
        )
    }

    /// The `k`-th live write, decoded as delivery `i`.
    fn decoded_late(&self, k: usize, i: usize) -> Option<Evidence> {
        let ack = self.live[k];
        let d = &self.client.deliveries[i];
        let latency = d.frame.at_us.saturating_sub(ack.acked_us);
        if latency <= self.bound {
            return None;
        }
        let mut why = Vec::new();
        if let Some(next) = self.live.get(k + 1)
            && next.acked_us <= d.frame.at_us + BURST_US
            && d.frame.at_us.saturating_sub(next.acked_us) < WITH_NEXT_US
        {
            why.push(format!(
                "it arrived with the next write (acknowledged at {} ms): delivered one behind",
                ms(next.acked_us)
            ));
        }
        let burst = self
            .client
            .deliveries
            .iter()
            .filter(|o| o.frame.at_us.abs_diff(d.frame.at_us) <= BURST_US)
            .count();
        if burst > 1 {
            why.push(format!(
                "it arrived in a burst of {burst} events within {} ms",
                BURST_US / 1000
            ));
        }
        why.extend(causes(d.conn));
        Some(Evidence {
            expected: self.expected(),
            seen: format!(
                "decoded {} ms after its ack (acknowledged at {} ms){}",
                ms(latency),
                ms(ack.acked_us),
                because(&why)
            ),
            ..d.evidence(self.client.id())
        })
    }

    /// An owed write never decoded: late if the stream stayed open past the bound.
    fn never_decoded(&self, ack: &Ack) -> Option<Evidence> {
        let conn = self
            .client
            .t
            .connections
            .iter()
            .find(|c| c.opened_us <= ack.acked_us && c.ended_us > ack.acked_us)?;
        let open_for = conn.ended_us - ack.acked_us;
        if open_for <= self.bound {
            return None;
        }
        Some(Evidence {
            seq: ack.seq,
            marker: Some(ack.marker.clone()),
            expected: self.expected(),
            seen: format!(
                "never decoded, though the stream stayed open {} ms after its ack (acknowledged at {} ms){}",
                ms(open_for),
                ms(ack.acked_us),
                because(&causes(conn))
            ),
            ..at_conn(self.client.id(), conn)
        })
    }
}

/// What the response's headers say about who may have held the events.
fn causes(conn: &Connection) -> Vec<String> {
    let h = |n: &str| conn.headers.get(n).map(String::as_str);
    let mut why = Vec::new();
    if let Some(enc) = h("content-encoding").filter(|e| !e.eq_ignore_ascii_case("identity")) {
        why.push(format!(
            "the stream is compressed (content-encoding {enc}): a compressor that does not flush after each event holds them"
        ));
    }
    if let Some(via) = h("via") {
        why.push(format!(
            "it came through a proxy (via {via}), which may buffer responses"
        ));
    }
    if (h("via").is_some() || h("server").is_some_and(|s| s.contains("nginx")))
        && !h("x-accel-buffering").is_some_and(|v| v.eq_ignore_ascii_case("no"))
    {
        why.push("the response has no X-Accel-Buffering: no".to_owned());
    }
    why
}

fn because(why: &[String]) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!("; {}", why.join("; "))
    }
}
