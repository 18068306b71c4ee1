//! What the toxic proxy on the subscriber path did to one connection's bytes
//! (`Recording::network`), for the checkers that judge timing: how long the proxy held
//! each downstream chunk (`latency`), so receive times can be taken back to when the
//! server's bytes reached the proxy.

use harness_model::network::{Action, ProxyLog, Stream, Toxic};
use harness_model::{Connection, Recording};

/// The proxy's holds of one connection's downstream chunks (empty without a proxy, or
/// when the connection is not in its log).
#[derive(Debug, Default)]
pub(crate) struct Holds<'a> {
    /// (release time, hold) in µs since the scenario's start, in release order.
    releases: Vec<(u64, u64)>,
    proxy: Option<&'a ProxyLog>,
}

/// The subscriber proxy's connection that carried `conn`: its client port among the
/// proxy's opened connections (the latest opened by the connection's head or end).
pub(crate) fn proxy_conn<'a>(rec: &'a Recording, conn: &Connection) -> Option<(&'a ProxyLog, u64)> {
    let (proxy, port) = (rec.network.subscriber.as_ref()?, conn.local_port?);
    let opened_by = conn.head_us.unwrap_or(conn.ended_us) as f64 / 1000.0;
    let pc = proxy
        .log
        .events
        .iter()
        .filter(|e| e.at_ms <= opened_by + 1.0)
        .filter_map(|e| match e.action {
            Action::Opened { client } if client.port() == port => Some(e.conn),
            _ => None,
        })
        .next_back()?;
    Some((proxy, pc))
}

/// Whether the subscriber proxy itself cut `conn` (a `reset_peer`, a `timeout` with a
/// close, `limit_data`, its own stop): then the server did not end that stream.
pub(crate) fn cut_by_proxy(rec: &Recording, conn: &Connection) -> bool {
    proxy_conn(rec, conn).is_some_and(|(p, pc)| {
        p.log.of_conn(pc).any(|e| match e.action {
            Action::Closed { how, .. } => how.by_proxy(),
            _ => false,
        })
    })
}

impl<'a> Holds<'a> {
    /// The holds of `conn`'s chunks ([`proxy_conn`]).
    pub(crate) fn of(rec: &'a Recording, conn: &Connection) -> Holds<'a> {
        let Some((proxy, pc)) = proxy_conn(rec, conn) else {
            return Holds::default();
        };
        let releases = proxy
            .log
            .of_conn(pc)
            .filter(|e| e.stream == Some(Stream::Downstream))
            .filter_map(|e| match e.action {
                Action::Delayed { held_ms, .. } => {
                    Some(((e.at_ms * 1000.0) as u64, (held_ms * 1000.0) as u64))
                }
                _ => None,
            })
            .collect();
        Holds {
            releases,
            proxy: Some(proxy),
        }
    }

    /// How much the proxy may have widened a receive gap from `from_us` to `to_us`,
    /// and the longest hold of a chunk it released in the gap, in µs: that hold less
    /// the least delay the frame before the gap got (the declared latency − jitter).
    /// (0, 0) when the proxy released nothing in the gap.
    pub(crate) fn widening_us(&self, from_us: u64, to_us: u64) -> (u64, u64) {
        let lo = self.releases.partition_point(|&(r, _)| r <= from_us);
        let hi = self.releases.partition_point(|&(r, _)| r <= to_us);
        let held = self.releases[lo..hi]
            .iter()
            .map(|&(_, h)| h)
            .max()
            .unwrap_or(0);
        (held.saturating_sub(self.declared(from_us).0 * 1000), held)
    }

    /// The declared spread of the delay live at `at_us` (latency + jitter less
    /// latency − jitter, i.e. up to 2 × jitter), in µs: what may still have been on
    /// its way when a stream ended.
    pub(crate) fn spread_us(&self, at_us: u64) -> u64 {
        if self.releases.is_empty() {
            return 0;
        }
        let (least, latency, jitter) = self.declared(at_us);
        (latency + jitter).saturating_sub(least) * 1000
    }

    /// The declared downstream latency and jitter live at `at_us` (summed over the
    /// latency toxics), as (least, latency, jitter) in ms.
    fn declared(&self, at_us: u64) -> (u64, u64, u64) {
        let Some(p) = self.proxy else {
            return (0, 0, 0);
        };
        p.toxics
            .iter()
            .filter(|t| t.stream == Stream::Downstream && p.live_at(t, at_us / 1000))
            .filter_map(|t| match &t.toxic {
                Toxic::Latency(l) => {
                    Some((l.latency.saturating_sub(l.jitter), l.latency, l.jitter))
                }
                _ => None,
            })
            .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
    }

    /// The words a heartbeat finding adds: how long the proxy held the chunk that
    /// ended the silence, and what it declared (empty without a proxy that delays).
    pub(crate) fn describe(&self, held_us: u64, at_us: u64, server_clock: bool) -> String {
        if self.releases.is_empty() {
            return String::new();
        }
        let (least, latency, jitter) = self.declared(at_us);
        if server_clock {
            return format!(
                "; judged on server_time, so the proxy's latency ({latency} ± {jitter} ms declared) does not count"
            );
        }
        if held_us == 0 {
            return format!(
                "; {:.1} ms allowed for the toxic proxy's delay (latency {latency} ± {jitter} ms declared), so the server itself was silent for over the allowance",
                (latency + jitter).saturating_sub(least) as f64
            );
        }
        format!(
            "; the toxic proxy held the chunks that ended it at most {:.1} ms and the frame before it at least \
{least} ms (latency {latency} ± {jitter} ms declared), so the server itself was silent for over the allowance",
            held_us as f64 / 1000.0
        )
    }
}

/// The `network` fact: the toxic timeline of a recording whose scenario had toxics.
pub(crate) fn timeline(rec: &Recording) -> Option<harness_model::network::Timeline> {
    use harness_model::network::{ClientLine, ConnLine, PathTally, Timeline, ToxicWindow};
    if rec.network.is_empty() {
        return None;
    }
    let mut t = Timeline::default();
    for p in [&rec.network.publisher, &rec.network.subscriber]
        .into_iter()
        .flatten()
    {
        for c in &p.toxics {
            let name = c.name();
            let acts: Vec<u64> = p
                .log
                .events
                .iter()
                .filter(|e| e.toxic.as_deref() == Some(name.as_str()))
                .map(|e| e.conn)
                .collect();
            let mut conns = acts.clone();
            conns.sort_unstable();
            conns.dedup();
            // A window on the live clock of a scenario that never went live never
            // applied (no actions): shown as declared.
            let (from_ms, until_ms) = p.window(c).unwrap_or((c.from_ms, c.until_ms));
            t.toxics.push(ToxicWindow {
                path: p.path,
                kind: c.toxic.kind().to_owned(),
                name,
                stream: c.stream,
                from_ms,
                until_ms,
                toxicity: c.toxicity,
                connections: conns.len() as u64,
                actions: acts.len() as u64,
            });
        }
    }
    if let Some(p) = &rec.network.publisher {
        let mut tally = PathTally::default();
        for e in &p.log.events {
            match e.action {
                Action::Opened { .. } => tally.connections += 1,
                Action::Closed {
                    how, indeterminate, ..
                } => {
                    tally.cut_by_proxy += u64::from(how.by_proxy());
                    tally.indeterminate += u64::from(indeterminate);
                }
                _ => {}
            }
        }
        t.publisher = Some(tally);
    }
    if rec.network.subscriber.is_some() {
        for tr in &rec.transcripts {
            let connections = tr
                .connections
                .iter()
                .map(|c| {
                    let pc = proxy_conn(rec, c);
                    ConnLine {
                        index: c.index,
                        opened_ms: c.opened_us / 1000,
                        ended_ms: c.ended_us / 1000,
                        end: end_word(&c.end).to_owned(),
                        proxy_conn: pc.map(|(_, n)| n),
                        marks: pc.map(|(p, n)| marks(p, n)).unwrap_or_default(),
                    }
                })
                .collect();
            t.clients.push(ClientLine {
                client: tr.client.to_string(),
                connections,
            });
        }
    }
    Some(t)
}

/// A connection's end in a word.
fn end_word(end: &harness_model::ConnEnd) -> &'static str {
    use harness_model::ConnEnd as E;
    match end {
        E::Cut { .. } => "cut",
        E::ServerClosed => "server-closed",
        E::Failed { .. } => "failed",
        E::Finished => "finished",
        E::Deadline => "deadline",
        E::ParserLimit => "parser-limit",
        E::Refused => "refused",
        E::ConnectFailed { .. } => "connect-failed",
        E::RecordLimit { .. } => "record-limit",
        E::Silent { .. } => "silent",
    }
}

/// What the proxy did to its connection `conn`, one line per action, runs of the
/// per-chunk actions of one toxic summed.
fn marks(p: &ProxyLog, conn: u64) -> Vec<harness_model::network::Mark> {
    use harness_model::network::Mark;
    let mut out: Vec<Mark> = Vec::new();
    // (toxic, kind) of the run the last mark sums, with its count and maximum.
    let mut run: Option<(String, &'static str, u64, f64)> = None;
    for e in p.log.of_conn(conn) {
        let per_chunk = match &e.action {
            Action::Delayed { held_ms, .. } => Some(("delayed", *held_ms)),
            Action::Throttled { waited_ms, .. } => Some(("throttled", *waited_ms)),
            Action::Sliced { pieces, .. } => Some(("sliced", *pieces as f64)),
            _ => None,
        };
        let toxic = e.toxic.clone();
        if let Some((kind, v)) = per_chunk {
            let name = toxic.clone().unwrap_or_default();
            match &mut run {
                Some((n, k, count, max)) if *n == name && *k == kind => {
                    *count += 1;
                    *max = max.max(v);
                    let last = out.last_mut().expect("a run has its mark");
                    last.what = run_text(kind, *count, *max);
                    continue;
                }
                _ => {
                    run = Some((name, kind, 1, v));
                    out.push(Mark {
                        at_ms: e.at_ms,
                        toxic,
                        what: run_text(kind, 1, v),
                    });
                    continue;
                }
            }
        }
        run = None;
        let what = match &e.action {
            Action::Opened { .. } => continue,
            Action::ConnectFailed { error } => format!("upstream connect failed: {error}"),
            Action::StallStarted { timeout_ms } => match timeout_ms {
                0 => "stall started (half-open: bytes dropped both ways, no FIN)".to_owned(),
                t => format!("stall started (closes after {t} ms)"),
            },
            Action::StallEnded { dropped_bytes } => {
                format!("stall ended ({dropped_bytes} bytes dropped)")
            }
            Action::ResetTriggered { timeout_ms, .. } => {
                format!("reset triggered (RST both ways after {timeout_ms} ms)")
            }
            Action::DataLimitReached { bytes } => format!("data limit reached at {bytes} bytes"),
            Action::SlowClose { delay_ms } => format!("close held {delay_ms} ms"),
            Action::Closed {
                how, indeterminate, ..
            } => format!(
                "closed: {}{}",
                serde_json::to_value(how)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                if *indeterminate {
                    " (a request unanswered: indeterminate)"
                } else {
                    ""
                }
            ),
            _ => continue,
        };
        out.push(Mark {
            at_ms: e.at_ms,
            toxic,
            what,
        });
    }
    out
}

fn run_text(kind: &str, count: u64, max: f64) -> String {
    match kind {
        "delayed" => format!("delayed ×{count} chunks, held up to {max:.1} ms"),
        "throttled" => format!("throttled ×{count} chunks, waited up to {max:.1} ms"),
        _ => format!("sliced ×{count} chunks, up to {max} pieces"),
    }
}
