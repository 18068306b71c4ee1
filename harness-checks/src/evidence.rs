//! The evidence that a scenario did what it set out to do, decided once, here: a pure
//! function from the recording (and the plan facts it carries) to the
//! [`Shortfall`]s that make a clean recording prove nothing. The runner turns a
//! scenario with no MUST finding but a shortfall into `Verdict::Inconclusive`, which
//! fails the run like a failure does.
//!
//! The rules, each judged only when the recording carries the facts it needs (older
//! recordings and probes without a workload skip the workload rules):
//!
//! - **clients**: every client in [`ScenarioPlan::clients`] left a transcript (a
//!   client whose task timed out, panicked or was aborted is named);
//! - **cuts**: the cuts the clients made (connections ended by [`ConnEnd::Cut`]) are as
//!   many as [`ScenarioPlan::cuts`] planned;
//! - **backpressure**: a group that reads slowly for a while through a small receive
//!   buffer (a backpressure group: `bytes_per_sec`, `slow_for_ms` and `rcvbuf` all
//!   set) ran at least [`BACKPRESSURE_BYTES`] behind the writes (the lag of
//!   `facts::lag_bytes`) with one of its clients;
//! - **delivery**: no events-stream client without a special shape received zero data
//!   events while the owed rule ([`harness_model::owed`]) owed it writes;
//! - **publishing**: every planned write was sent (acknowledged, failed or of unknown
//!   fate), and publishing ended at least the stall window before the deadline (else
//!   the clients had no time to catch up, and writes acknowledged at the end escape
//!   the lost-write rule); a scenario that cuts publish answers on purpose
//!   (`WorkloadPlan::publish_cuts`) lost at least one (else the cut never happened).
//! - **network**: every declared toxic (`[[toxics]]`) acted on some connection (the
//!   proxy's log), and every open stream the subscriber path held half-open (a
//!   `timeout` stall without a close) was given up by its client for silence
//!   ([`ConnEnd::Silent`]);
//! - **browsers cut**: where the subscriber path resets every stream in a window (a
//!   `reset_peer` toxic of toxicity 1), every browser that must keep reading opened a
//!   stream again after one ended: only the network cuts a browser, and one the resets
//!   never reached (it opened after them) showed nothing about resuming.

use harness_model::{
    Agent, ConnEnd, FrameKind, Recording, ScenarioPlan, Shortfall, StreamKind, Subscription,
};

use crate::CheckConfig;
use crate::facts::{lag_bytes, members};

/// How far (bytes) a backpressure group must run behind the writes: beyond what the
/// loopback socket buffers can hold between the target and the reader (Linux's
/// default `tcp_wmem` maximum is 4 MiB, the reader's `SO_RCVBUF` a few KiB), so the
/// target itself must hold, drop or throttle what the reader has not taken.
pub const BACKPRESSURE_BYTES: u64 = 4 * 1024 * 1024;

/// How many missing clients a shortfall names (the count is always complete).
const NAMED: usize = 5;

/// Every way the scenario fell short of what it set out to do, in rule order; empty
/// when the recording is evidence.
pub fn evidence(cfg: &CheckConfig, rec: &Recording) -> Vec<Shortfall> {
    let mut out = Vec::new();
    out.extend(clients(&rec.plan, rec));
    out.extend(cuts(&rec.plan, rec));
    out.extend(backpressure(rec));
    out.extend(nothing_delivered(cfg, rec));
    out.extend(publishing(rec));
    out.extend(network(rec));
    out.extend(browsers_cut(rec));
    out.extend(stalled_reader(rec));
    out
}

/// Every browser that must keep reading reconnected, where the subscriber path resets
/// every stream: a browser's streams, opened with an answer (a status), were at least two.
fn browsers_cut(rec: &Recording) -> Vec<Shortfall> {
    let Some(sub) = &rec.network.subscriber else {
        return Vec::new();
    };
    let resets: Vec<String> = sub
        .toxics
        .iter()
        .filter(|t| {
            matches!(t.toxic, harness_model::network::Toxic::ResetPeer(_)) && t.toxicity >= 1.0
        })
        .map(|t| t.name())
        .collect();
    if resets.is_empty() {
        return Vec::new();
    }
    rec.transcripts
        .iter()
        .filter(|t| t.agent == Agent::Browser && !rec.expect.browser_stops.contains(&t.client))
        .filter(|t| t.connections.iter().filter(|c| c.status.is_some()).count() < 2)
        .map(|t| Shortfall::BrowserNotCut {
            client: t.client.clone(),
            toxics: resets.clone(),
        })
        .collect()
}

/// A stalled-reader probe shows something only when the proxy stalled every stream it
/// opened and enough was published after that to fill the buffers.
fn stalled_reader(rec: &Recording) -> Vec<Shortfall> {
    let Some(p) = &rec.expect.stalled_reader else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if p.stalled < p.clients {
        out.push(Shortfall::StallNotReached {
            stalled: p.stalled,
            clients: p.clients,
        });
    }
    if p.filled_us.is_none() {
        out.push(Shortfall::StallNotFilled {
            published: p.published_bytes,
            needed: p.fill_bytes,
        });
    }
    out
}

/// The network rules: declared toxics acted; half-open streams were detected.
fn network(rec: &Recording) -> Vec<Shortfall> {
    use harness_model::network::{Action, ProxyPath};
    let mut out = Vec::new();
    for p in [&rec.network.publisher, &rec.network.subscriber]
        .into_iter()
        .flatten()
    {
        let path = match p.path {
            ProxyPath::Publisher => "publisher",
            ProxyPath::Subscriber => "subscriber",
        };
        for t in p.toxics.iter().filter(|t| t.toxicity > 0.0) {
            let name = t.name();
            let acted = p
                .log
                .events
                .iter()
                .any(|e| e.toxic.as_deref() == Some(&name));
            if !acted && p.log.dropped == 0 {
                out.push(Shortfall::ToxicIdle {
                    path: path.into(),
                    toxic: name,
                });
            }
        }
    }
    let Some(sub) = &rec.network.subscriber else {
        return out;
    };
    for e in &sub.log.events {
        let Action::StallStarted { timeout_ms: 0 } = e.action else {
            continue;
        };
        let stalled_us = (e.at_ms * 1000.0) as u64;
        let port = sub.log.of_conn(e.conn).find_map(|o| match o.action {
            Action::Opened { client } => Some(client.port()),
            _ => None,
        });
        for t in &rec.transcripts {
            for (i, c) in t.connections.iter().enumerate() {
                let held = port.is_some() && c.local_port == port;
                // A client that cut its connection itself (a burst) had nothing to detect.
                let cut_by_client = matches!(c.end, ConnEnd::Cut { .. });
                let open_then =
                    c.head_us.is_some_and(|h| h < stalled_us) && c.ended_us > stalled_us;
                if held && open_then && !cut_by_client && !matches!(c.end, ConnEnd::Silent { .. }) {
                    out.push(Shortfall::StallNotDetected {
                        client: t.client.clone(),
                        conn: i as u32,
                    });
                }
            }
        }
    }
    out
}

fn clients(plan: &ScenarioPlan, rec: &Recording) -> Option<Shortfall> {
    let recorded = |c: &harness_model::ClientId| rec.transcripts.iter().any(|t| &t.client == c);
    let mut missing: Vec<_> = plan.clients.iter().filter(|c| !recorded(c)).collect();
    for c in &rec.unfinished {
        if !missing.contains(&c) {
            missing.push(c);
        }
    }
    if missing.is_empty() {
        return None;
    }
    let planned = plan
        .clients
        .len()
        .max(rec.transcripts.len() + missing.len()) as u64;
    Some(Shortfall::ClientsMissing {
        planned,
        recorded: rec.transcripts.len() as u64,
        missing: missing.into_iter().take(NAMED).cloned().collect(),
    })
}

/// The cuts the clients made, over all their connections.
pub fn cuts_executed(rec: &Recording) -> u64 {
    rec.transcripts
        .iter()
        .flat_map(|t| &t.connections)
        .filter(|c| matches!(c.end, ConnEnd::Cut { .. }))
        .count() as u64
}

/// Every planned cut was made, or gave way for want of its place in the target's
/// framing (the target chose a framing without it: legal); and some cut was made.
fn cuts(plan: &ScenarioPlan, rec: &Recording) -> Option<Shortfall> {
    let planned: u64 = plan.cuts.values().sum();
    let executed = cuts_executed(rec);
    let without_place = rec
        .transcripts
        .iter()
        .flat_map(|t| &t.connections)
        .map(|c| c.aims_without_place.len() as u64)
        .sum();
    let short = executed + without_place < planned || (planned > 0 && executed == 0);
    short.then_some(Shortfall::CutsNotExecuted {
        planned,
        executed,
        without_place,
    })
}

fn backpressure(rec: &Recording) -> Vec<Shortfall> {
    let Some(w) = &rec.workload else {
        return Vec::new();
    };
    w.groups
        .iter()
        .filter(|g| g.bytes_per_sec > 0 && g.slow_for_ms > 0 && g.rcvbuf > 0)
        .filter_map(|g| {
            let max_lag_bytes = members(rec, &g.name)
                .into_iter()
                .filter_map(|t| lag_bytes(t, g.slow_for_ms, &rec.acks))
                .max()
                .unwrap_or(0);
            (max_lag_bytes < BACKPRESSURE_BYTES).then(|| Shortfall::NoBackpressure {
                group: g.name.clone(),
                max_lag_bytes,
                needed_bytes: BACKPRESSURE_BYTES,
            })
        })
        .collect()
}

fn nothing_delivered(cfg: &CheckConfig, rec: &Recording) -> Vec<Shortfall> {
    rec.transcripts
        .iter()
        .filter(|t| t.stream == StreamKind::Events && !rec.expect.shapes(&t.client))
        .filter(|t| {
            !t.connections
                .iter()
                .flat_map(|c| &c.frames)
                .any(|f| matches!(f.kind, FrameKind::Data(_)))
        })
        .filter(|t| !rec.expect.browser_stops.contains(&t.client))
        .filter_map(|t| {
            // A browser that never opened is owed its channels' writes all the same:
            // its page asked for them, and a pass needs it to have read some.
            let owed = match t.agent {
                Agent::Browser => rec
                    .acks
                    .iter()
                    .filter(|a| t.jobs.is_empty() || t.jobs.contains(&a.job))
                    .count() as u64,
                Agent::Wire => Subscription::of(t).owed(&rec.acks, cfg.ids).count() as u64,
            };
            (owed > 0).then(|| Shortfall::NothingDelivered {
                client: t.client.clone(),
                owed,
            })
        })
        .collect()
}

fn publishing(rec: &Recording) -> Vec<Shortfall> {
    let Some(w) = &rec.workload else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let failed: u64 = rec
        .publish_failures
        .iter()
        .map(|f| f.markers.len() as u64)
        .sum();
    let unknown: u64 = rec
        .indeterminate
        .iter()
        .filter(|w| !w.resolved)
        .map(|w| w.markers.len() as u64)
        .sum();
    let sent = rec.acks.len() as u64 + failed + unknown;
    if w.publish_cuts && rec.indeterminate.is_empty() {
        out.push(Shortfall::NoIndeterminateWrite {
            writes: rec.acks.len() as u64 + failed,
        });
    }
    if sent < w.writes {
        out.push(Shortfall::PublishingIncomplete {
            planned: w.writes,
            sent,
        });
    }
    let latest_us = w
        .deadline_us
        .saturating_sub(w.stall_ms.saturating_mul(1000));
    if w.deadline_us > 0 && w.published_us > latest_us {
        out.push(Shortfall::PublishingLate {
            ended_ms: w.published_us / 1000,
            latest_ms: latest_us / 1000,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use harness_model::{ClientId, CutAim, GroupPlan, PublishFailure, WorkloadPlan};

    use super::*;
    use crate::testkit::*;

    /// One client `a#0` of job j1 that read seqs 1..=3 (acked), cut once, planned once.
    fn clean() -> Recording {
        let c0 = Conn::new(0, 0)
            .data(112, 1, "j1")
            .data(122, 2, "j1")
            .end(cut(), 130);
        let c1 = Conn::new(1, 140)
            .cursor("2")
            .data(150, 3, "j1")
            .end(ConnEnd::Finished, 200);
        Recording {
            transcripts: vec![client("a#0", StreamKind::Events, &["j1"], vec![c0, c1])],
            acks: (1..=3).map(|s| ack(s, "j1", 100 + 10 * s)).collect(),
            plan: ScenarioPlan {
                clients: vec![cid("a#0")],
                cuts: [(cid("a#0"), 1)].into_iter().collect(),
            },
            workload: Some(WorkloadPlan {
                writes: 3,
                published_us: ms(140),
                deadline_us: ms(20_000),
                stall_ms: 10_000,
                ..WorkloadPlan::default()
            }),
            ..Recording::default()
        }
    }

    #[test]
    fn a_clean_recording_is_evidence() {
        assert_eq!(evidence(&numeric_cfg(), &clean()), []);
        // An older recording without any plan facts is judged on delivery alone.
        let old = Recording {
            plan: ScenarioPlan::default(),
            workload: None,
            ..clean()
        };
        assert_eq!(evidence(&numeric_cfg(), &old), []);
    }

    #[test]
    fn a_planned_client_without_a_transcript_is_named() {
        let mut r = clean();
        r.plan.clients.push(cid("a#1"));
        r.unfinished.push(cid("a#2"));
        assert_eq!(
            evidence(&numeric_cfg(), &r),
            [Shortfall::ClientsMissing {
                planned: 3,
                recorded: 1,
                missing: vec![cid("a#1"), cid("a#2")],
            }]
        );
    }

    #[test]
    fn cuts_that_never_happened_are_counted() {
        let mut r = clean();
        r.plan.cuts.insert(cid("a#0"), 4);
        assert_eq!(
            evidence(&numeric_cfg(), &r),
            [Shortfall::CutsNotExecuted {
                planned: 4,
                executed: 1,
                without_place: 0,
            }]
        );
    }

    /// An aimed cut whose place the target's framing never had (no CR, say) is not
    /// missing: the target chose a legal framing. Some cut must still be made.
    #[test]
    fn aims_without_a_place_are_not_missing_but_something_must_be_cut() {
        let mut r = clean();
        r.plan.cuts.insert(cid("a#0"), 3);
        r.transcripts[0].connections[0]
            .aims_without_place
            .extend([CutAim::CrLf, CutAim::InsideEventName]);
        assert_eq!(evidence(&numeric_cfg(), &r), []);
        r.transcripts[0].connections[0].end = ConnEnd::Finished;
        r.transcripts[0].connections[0]
            .aims_without_place
            .push(CutAim::CrLf);
        assert_eq!(
            evidence(&numeric_cfg(), &r),
            [Shortfall::CutsNotExecuted {
                planned: 3,
                executed: 0,
                without_place: 3,
            }]
        );
    }

    #[test]
    fn a_backpressure_group_must_run_far_behind() {
        let mut r = clean();
        let w = r.workload.as_mut().unwrap();
        w.groups.push(GroupPlan {
            name: "a".into(),
            bytes_per_sec: 1,
            slow_for_ms: 6000,
            rcvbuf: 4096,
            ..GroupPlan::default()
        });
        // Three 50-byte events acked: 150 bytes behind at most.
        let got = evidence(&numeric_cfg(), &r);
        assert!(
            matches!(&got[..], [Shortfall::NoBackpressure { group, max_lag_bytes, .. }]
                if group == "a" && *max_lag_bytes < 200),
            "{got:?}"
        );
        // Enough acked writes before the slow phase ended: evidence.
        let many: u64 = BACKPRESSURE_BYTES / 50 + 10;
        r.acks = (1..=many).map(|s| ack(s, "j9", 10)).collect();
        r.workload.as_mut().unwrap().writes = many;
        assert_eq!(evidence(&numeric_cfg(), &r), []);
    }

    #[test]
    fn a_client_owed_writes_that_received_none_is_named() {
        let mut r = clean();
        let silent = Conn::new(0, 0).end(ConnEnd::ServerClosed, 300);
        r.transcripts
            .push(client("b#0", StreamKind::Events, &["j1"], vec![silent]));
        r.plan.clients.push(cid("b#0"));
        assert_eq!(
            evidence(&numeric_cfg(), &r),
            [Shortfall::NothingDelivered {
                client: ClientId("b#0".into()),
                owed: 3
            }]
        );
        // Owed nothing (another job): nothing to prove.
        r.transcripts[1].jobs = vec!["j2".into()];
        assert_eq!(evidence(&numeric_cfg(), &r), []);
    }

    #[test]
    fn publishing_late_or_incomplete_is_reported() {
        let mut r = clean();
        r.publish_failures.push(PublishFailure {
            markers: vec!["m4".into()],
            status: Some(500),
            error: "internal".into(),
        });
        let w = r.workload.as_mut().unwrap();
        w.writes = 6;
        w.published_us = ms(15_000);
        assert_eq!(
            evidence(&numeric_cfg(), &r),
            [
                Shortfall::PublishingIncomplete {
                    planned: 6,
                    sent: 4
                },
                Shortfall::PublishingLate {
                    ended_ms: 15_000,
                    latest_ms: 10_000
                }
            ]
        );
    }
    #[test]
    fn a_scenario_that_cuts_publish_answers_needs_a_write_of_unknown_fate() {
        let mut r = clean();
        r.workload.as_mut().unwrap().publish_cuts = true;
        assert_eq!(
            evidence(&numeric_cfg(), &r),
            [Shortfall::NoIndeterminateWrite { writes: 3 }]
        );
        // One write lost its answer (and counts as sent): the cut happened.
        r.workload.as_mut().unwrap().writes = 4;
        r.indeterminate.push(harness_model::Indeterminate {
            markers: vec!["m4".into()],
            job: "j1".into(),
            key: None,
            publisher: 0,
            sent_us: ms(150),
            ended_us: ms(151),
            cause: harness_model::IndeterminateCause::ConnectionLost,
            error: "reset".into(),
            attempts: 1,
            resolved: false,
        });
        assert_eq!(evidence(&numeric_cfg(), &r), []);
    }

    /// A subscriber proxy whose `timeout` toxic held conn 1 (client port 5000)
    /// half-open from 50 ms, and a latency toxic that never acted.
    fn stalled(end: ConnEnd) -> Recording {
        use harness_model::network::{Action, LogSnapshot, ToxicEvent};
        let specs = sse_toxics::parse_toml(
            "[[toxics]]\npath = \"subscriber\"\nkind = \"timeout\"\n\
             [[toxics]]\npath = \"subscriber\"\nkind = \"latency\"\nlatency = 9\n",
        )
        .unwrap();
        let ev = |at_ms: f64, toxic: Option<&str>, action: Action| ToxicEvent {
            at_ms,
            conn: 1,
            toxic: toxic.map(str::to_owned),
            stream: None,
            action,
        };
        let log = LogSnapshot {
            events: vec![
                ev(
                    1.0,
                    None,
                    Action::Opened {
                        client: "127.0.0.1:5000".parse().unwrap(),
                    },
                ),
                ev(
                    50.0,
                    Some("timeout_downstream"),
                    Action::StallStarted { timeout_ms: 0 },
                ),
            ],
            dropped: 0,
        };
        let mut c0 = Conn::new(0, 0).data(20, 1, "j1").end(end, 300);
        c0.local_port = Some(5000);
        let mut r = clean();
        r.transcripts[0].connections = vec![c0];
        r.plan.cuts.clear();
        r.acks.truncate(1);
        r.network.subscriber = Some(harness_model::ProxyLog {
            path: sse_toxics::ProxyPath::Subscriber,
            toxics: sse_toxics::for_path(&specs, sse_toxics::ProxyPath::Subscriber),
            live_ms: None,
            log,
        });
        r
    }

    #[test]
    fn idle_toxics_and_undetected_half_open_streams_are_shortfalls() {
        let r = stalled(ConnEnd::Finished);
        let got = evidence(&numeric_cfg(), &r);
        assert!(
            got.contains(&Shortfall::ToxicIdle {
                path: "subscriber".into(),
                toxic: "latency_downstream".into(),
            }),
            "{got:?}"
        );
        assert!(
            got.contains(&Shortfall::StallNotDetected {
                client: cid("a#0"),
                conn: 0,
            }),
            "{got:?}"
        );
        let r = stalled(ConnEnd::Silent { allowance_ms: 100 });
        let got = evidence(&numeric_cfg(), &r);
        assert!(
            !got.iter()
                .any(|s| matches!(s, Shortfall::StallNotDetected { .. })),
            "{got:?}"
        );
    }

    #[test]
    fn a_browser_the_resets_never_reached_is_a_shortfall() {
        let specs = sse_toxics::parse_toml(
            "[[toxics]]\npath = \"subscriber\"\nkind = \"reset_peer\"\nname = \"cut\"\nclock = \"live\"\nfrom_ms = 100\nuntil_ms = 200\n",
        )
        .unwrap();
        let mut r = clean();
        r.transcripts[0].agent = Agent::Browser;
        r.network.subscriber = Some(harness_model::ProxyLog {
            path: sse_toxics::ProxyPath::Subscriber,
            toxics: sse_toxics::for_path(&specs, sse_toxics::ProxyPath::Subscriber),
            live_ms: Some(10.0),
            log: Default::default(),
        });
        let not_cut = |r: &Recording| {
            evidence(&numeric_cfg(), r)
                .into_iter()
                .filter(|s| matches!(s, Shortfall::BrowserNotCut { .. }))
                .collect::<Vec<_>>()
        };
        assert_eq!(not_cut(&r), [], "two streams: it reconnected");
        let mut once = r.clone();
        once.transcripts[0].connections.truncate(1);
        assert_eq!(
            not_cut(&once),
            [Shortfall::BrowserNotCut {
                client: cid("a#0"),
                toxics: vec!["cut".into()],
            }]
        );
        // One that must stop for good is not owed a reconnection.
        once.expect.browser_stops.push(cid("a#0"));
        assert_eq!(not_cut(&once), []);
        // Nor is a browser where only some streams are reset.
        let mut some = r.clone();
        some.transcripts[0].connections.truncate(1);
        if let Some(p) = some.network.subscriber.as_mut() {
            p.toxics[0].toxicity = 0.5;
        }
        assert_eq!(not_cut(&some), []);
    }

    #[test]
    fn a_client_that_cut_its_stalled_stream_itself_had_nothing_to_detect() {
        let got = evidence(&numeric_cfg(), &stalled(cut()));
        assert!(
            !got.iter()
                .any(|s| matches!(s, Shortfall::StallNotDetected { .. })),
            "{got:?}"
        );
    }

    #[test]
    fn a_stalled_reader_probe_that_missed_a_stream_or_its_fill_is_a_shortfall() {
        let probe = |stalled: u32, filled_us: Option<u64>| harness_model::StalledReaderProbe {
            gauge: "g".into(),
            baseline: 0.0,
            counter: None,
            counter_baseline: None,
            clients: 2,
            stalled,
            fill_bytes: 100,
            published_bytes: 40,
            filled_us,
            write_stall_ms: 1000,
            heartbeat_ms: 500,
        };
        let mut r = clean();
        r.expect.stalled_reader = Some(probe(1, None));
        let got = evidence(&numeric_cfg(), &r);
        assert!(
            got.contains(&Shortfall::StallNotReached {
                stalled: 1,
                clients: 2
            }),
            "{got:?}"
        );
        assert!(
            got.contains(&Shortfall::StallNotFilled {
                published: 40,
                needed: 100
            }),
            "{got:?}"
        );
        r.expect.stalled_reader = Some(probe(2, Some(5)));
        let got = evidence(&numeric_cfg(), &r);
        assert!(
            !got.iter().any(|s| matches!(
                s,
                Shortfall::StallNotReached { .. } | Shortfall::StallNotFilled { .. }
            )),
            "{got:?}"
        );
    }
}
