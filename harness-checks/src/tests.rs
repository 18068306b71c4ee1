//! One hand-made recording per anomaly (each must yield exactly its finding), clean
//! recordings (numeric and opaque) that must yield none, and the registry cross-checks.

use std::collections::BTreeSet;

use harness_model::{
    ConnEnd, Contracts, FrameKind, LivenessProbe, PublishFailure, RecordLimit, Recording,
    StreamKind, WireIssue,
};
use serde_json::{Value, json};

use crate::testkit::*;

/// The clean numeric scenario. Acks seq 1..=5 of job j1 (sent at 110, 120, ... ms).
/// `a#0` reads everything, is cut after seq 3 and resumes from cursor 3; `b#0` reads
/// job j1 in one connection with the seqs given; `t#0` reads a task stream to its
/// terminal close; `idle#0` sits on an empty job with heartbeats; `v#0` and `v2#0`
/// read version streams (the second is replaced).
fn numeric_with(b_seqs: &[u64]) -> Recording {
    let acks = (1..=5).map(|s| ack(s, "j1", 100 + 10 * s)).collect();
    let a0 = Conn::new(0, 0)
        .open(2, "events", 0, Value::Null)
        .data(112, 1, "j1")
        .data(122, 2, "j1")
        .data(132, 3, "j1")
        .end(cut(), 140);
    let a1 = Conn::new(1, 150)
        .cursor("3")
        .open(152, "events", 4, json!(3))
        .data(153, 4, "j1")
        .data(162, 5, "j1")
        .end(ConnEnd::Finished, 1500);
    let mut b = Conn::new(0, 1).open(3, "events", 0, Value::Null);
    for (i, s) in b_seqs.iter().enumerate() {
        b = b.data(160 + i as u64, *s, "j1");
    }
    let b = b.end(ConnEnd::Finished, 1500);
    let mut term = event(9, "j2");
    term.event_type = Some("task_completed".into());
    term.marker = None;
    let t = Conn::new(0, 1000)
        .open(1001, "task", 9, Value::Null)
        .data_ev(1002, term)
        .close(1003, "task_completed")
        .end(ConnEnd::ServerClosed, 1004);
    let idle = Conn::new(0, 200)
        .open(201, "events", 5, Value::Null)
        .hb(1200, 9)
        .hb(2200, 9)
        .hb(3200, 9)
        .hb(4200, 9)
        .end(ConnEnd::Finished, 5000);
    let v = Conn::new(0, 300)
        .open(301, "version", 5, Value::Null)
        .version(302, "1.0")
        .version(303, "1.1")
        .end(ConnEnd::Finished, 400);
    let v2 = Conn::new(0, 300)
        .open(301, "version", 5, Value::Null)
        .version(302, "0.9")
        .close(350, "replaced")
        .end(ConnEnd::ServerClosed, 351);
    let mut rec = Recording {
        transcripts: vec![
            client("a#0", StreamKind::Events, &[], vec![a0, a1]),
            client("b#0", StreamKind::Events, &["j1"], vec![b]),
            client("t#0", StreamKind::Task, &["j2"], vec![t]),
            client("idle#0", StreamKind::Events, &["quiet"], vec![idle]),
            client("v#0", StreamKind::Version, &[], vec![v]),
            client("v2#0", StreamKind::Version, &[], vec![v2]),
        ],
        acks,
        ..Recording::default()
    };
    let ahead = Conn::new(0, 10)
        .cursor("99")
        .open(11, "events", 5, json!(99))
        .error(12, "cursor_ahead")
        .close(12, "cursor_ahead")
        .end(ConnEnd::ServerClosed, 13);
    let nf = Conn::new(0, 10)
        .open(11, "task", 5, Value::Null)
        .error(12, "task_not_found")
        .close(12, "task_not_found")
        .end(ConnEnd::ServerClosed, 13);
    let mut bad = Conn::new(0, 10).cursor("abc").end(ConnEnd::Refused, 11);
    bad.status = Some(400);
    bad.retries.clear();
    bad.body_bytes = 0;
    bad.error_body = Some(r#"{"error":"invalid_last_event_id","detail":"x"}"#.into());
    rec.transcripts.extend([
        client("ahead#0", StreamKind::Events, &[], vec![ahead]),
        client("nf#0", StreamKind::Task, &["nope"], vec![nf]),
        client("bad#0", StreamKind::Events, &[], vec![bad]),
    ]);
    rec.expect.cursor_ahead.push(cid("ahead#0"));
    rec.expect.task_not_found.push(cid("nf#0"));
    rec.expect.invalid_cursor.push(cid("bad#0"));
    rec.expect
        .task_terminal
        .insert(cid("t#0"), harness_model::CloseReason::TaskCompleted);
    rec.expect.idle.push(cid("idle#0"));
    rec.expect
        .versions
        .insert(cid("v#0"), vec!["1.0".into(), "1.1".into()]);
    rec.expect.replaced.push(cid("v2#0"));
    rec
}

fn numeric() -> Recording {
    numeric_with(&[1, 2, 3, 4, 5])
}

/// The transcript of `name`.
fn tr<'a>(rec: &'a mut Recording, name: &str) -> &'a mut harness_model::Transcript {
    rec.transcripts
        .iter_mut()
        .find(|t| t.client.0 == name)
        .expect("client exists")
}

/// Connection `i` of `name`.
fn conn<'a>(rec: &'a mut Recording, name: &str, i: usize) -> &'a mut harness_model::Connection {
    &mut tr(rec, name).connections[i]
}

/// The clean numeric scenario plus `p#0`, a reader of a quiet job whose first
/// heartbeat (stamped at 50 ms, head 0) arrives at 1000 ms; with `second`, another one
/// stamped at 1050 ms, still head 0, arrives right after it.
fn paused_reader(second: bool) -> Recording {
    let mut r = numeric();
    let mut c = Conn::new(0, 0)
        .open(1, "events", 0, Value::Null)
        .hb_stamped(1000, 50, 0);
    if second {
        c = c.hb_stamped(1001, 1050, 0);
    }
    r.transcripts.push(client(
        "p#0",
        StreamKind::Events,
        &["quiet"],
        vec![c.end(ConnEnd::Finished, 1100)],
    ));
    r
}

/// The clean opaque scenario: two publishers (x1..x4 and y1..y2) on job j1; `a#0` is cut
/// after x2 and resumes with its id; `b#0` reads in one go.
fn opaque() -> Recording {
    let acks = vec![
        oack("x1", "j1", 0, 100),
        oack("y1", "j1", 1, 105),
        oack("x2", "j1", 0, 110),
        oack("x3", "j1", 0, 120),
        oack("y2", "j1", 1, 125),
        oack("x4", "j1", 0, 130),
    ];
    let order = [
        ("1:0", "x1"),
        ("1:1", "y1"),
        ("1:2", "x2"),
        ("1:3", "x3"),
        ("1:4", "y2"),
        ("1:5", "x4"),
    ];
    let a0 = order[..3]
        .iter()
        .enumerate()
        .fold(Conn::new(0, 0), |c, (i, (id, m))| {
            c.odata(102 + 5 * i as u64, id, m, "j1")
        })
        .end(cut(), 115);
    let a1 = order[3..]
        .iter()
        .enumerate()
        .fold(Conn::new(1, 116).cursor("1:2"), |c, (i, (id, m))| {
            c.odata(122 + 5 * i as u64, id, m, "j1")
        })
        .end(ConnEnd::Finished, 1500);
    let b = order
        .iter()
        .enumerate()
        .fold(Conn::new(0, 1), |c, (i, (id, m))| {
            c.odata(102 + 6 * i as u64, id, m, "j1")
        })
        .end(ConnEnd::Finished, 1500);
    Recording {
        transcripts: vec![
            client("a#0", StreamKind::Events, &["j1"], vec![a0, a1]),
            client("b#0", StreamKind::Events, &["j1"], vec![b]),
        ],
        acks,
        ..Recording::default()
    }
}

/// Removes the data frame of seq `seq` (or marker) from a connection.
fn drop_data(c: &mut harness_model::Connection, what: &str) {
    c.frames.retain(|f| match &f.kind {
        FrameKind::Data(d) => {
            d.seq.map(|s| s.to_string()).as_deref() != Some(what)
                && d.marker.as_deref() != Some(what)
        }
        _ => true,
    });
}

fn data_mut(c: &mut harness_model::Connection, seq: u64) -> &mut harness_model::DataEvent {
    c.frames
        .iter_mut()
        .find_map(|f| match &mut f.kind {
            FrameKind::Data(d) if d.seq.is_some_and(|s| s.0 == seq) => Some(d),
            _ => None,
        })
        .expect("the seq was delivered")
}

fn lifecycle_fields<'a>(c: &'a mut harness_model::Connection, name: &str) -> &'a mut Value {
    c.frames
        .iter_mut()
        .find_map(|f| match &mut f.kind {
            FrameKind::Lifecycle { name: n, fields } if n == name => Some(fields),
            FrameKind::Heartbeat { fields } if name == "heartbeat" => Some(fields),
            FrameKind::Version { fields } if name == "version" => Some(fields),
            _ => None,
        })
        .expect("the frame exists")
}

/// The clean numeric recording, its writes published with a hostile event type:
/// refused with 400 (`refused`), or carried and split by the target, so that `b#0`
/// also got an event of the injected name.
fn hostile_writes(refused: bool) -> Recording {
    let mut r = numeric();
    r.workload = Some(harness_model::WorkloadPlan {
        event_type: Some("x\n\nevent: injected".into()),
        ..Default::default()
    });
    if refused {
        r.publish_failures.push(harness_model::PublishFailure {
            markers: vec!["m9".into()],
            status: Some(400),
            error: "event_type has control characters".into(),
        });
    } else {
        let c = conn(&mut r, "b#0", 0);
        let at = c.frames.last().unwrap().at_us / 1000;
        let injected = Conn::new(0, 0).frame(at, "injected", Some("999".into()), FrameKind::Other);
        let mut f = injected.end(ConnEnd::Finished, at).frames.remove(0);
        f.start = c.frames.last().unwrap().end;
        f.end = f.start + 30;
        c.frames.push(f);
    }
    r
}

/// A spine-like target without heartbeats (a trickle's recording has none).
fn trickle_cfg() -> crate::CheckConfig {
    crate::CheckConfig {
        heartbeat: crate::HeartbeatForm::None,
        ..numeric_cfg()
    }
}

/// A slow trickle (`WIRE/trickle`): seqs 1..=4 of job j1 acked at 1001, 2501, 4001
/// and 5501 ms (1500 ms apart), one client `tr#0` reading at full speed from 0 ms until
/// 8000 ms; `at[i]` is when it decoded seq i + 1 (None: never).
fn trickle(at: &[Option<u64>]) -> Recording {
    let acks: Vec<_> = (1..=4)
        .map(|s| ack(s, "j1", 1000 + 1500 * (s - 1)))
        .collect();
    let mut c = Conn::new(0, 0).open(2, "events", 0, Value::Null);
    let mut got: Vec<(u64, u64)> = at
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.map(|t| (t, i as u64 + 1)))
        .collect();
    got.sort();
    for (t, s) in got {
        c = c.data(t, s, "j1");
    }
    Recording {
        transcripts: vec![client(
            "tr#0",
            StreamKind::Events,
            &["j1"],
            vec![c.end(ConnEnd::Finished, 8000)],
        )],
        acks,
        workload: Some(harness_model::WorkloadPlan {
            live_from_us: ms(500),
            groups: vec![harness_model::GroupPlan {
                name: "tr".into(),
                ..Default::default()
            }],
            trickle_ms: 1500,
            ..Default::default()
        }),
        ..Recording::default()
    }
}

/// The clean numeric scenario plus a write `u1` of job j1 whose answer was lost (sent
/// at 155 ms, given up at 156 ms; resolved by a retry's ack under `acked` when given),
/// received under each seq of `to_a` by `a#0` and of `to_b` by `b#0` at 210 ms and on,
/// with an ack for seq 8 after it received by both; `cuts`: publish answers cut on purpose.
fn lost_answer(to_a: &[u64], to_b: &[u64], acked: Option<u64>, cuts: bool) -> Recording {
    let mut r = numeric();
    let u = |s: u64| {
        let mut e = event(s, "j1");
        e.marker = Some("u1".into());
        e.digest = "du1".into();
        e
    };
    for (name, seqs, i) in [("a#0", to_a, 1), ("b#0", to_b, 0)] {
        let c = conn(&mut r, name, i);
        let frames = std::mem::take(&mut c.frames);
        let mut k = Conn::new(c.index, 0);
        for f in frames {
            k = k.frame(f.at_us / 1000, &f.event, f.id.clone(), f.kind.clone());
        }
        for (j, s) in seqs.iter().enumerate() {
            k = k.data_ev(210 + j as u64, u(*s));
        }
        let k = k.data(230, 8, "j1").end(ConnEnd::Finished, 1500);
        let c = conn(&mut r, name, i);
        (c.frames, c.body_bytes) = (k.frames, k.body_bytes);
    }
    r.acks.push(ack(8, "j1", 225));
    if let Some(s) = acked {
        let mut a = ack(s, "j1", 155);
        a.marker = "u1".into();
        a.acked_us = ms(400);
        r.acks.push(a);
    }
    r.indeterminate.push(harness_model::Indeterminate {
        markers: vec!["u1".into()],
        job: "j1".into(),
        key: Some("u1".into()),
        publisher: 0,
        sent_us: ms(155),
        ended_us: if acked.is_some() { ms(400) } else { ms(156) },
        cause: harness_model::IndeterminateCause::ConnectionLost,
        error: "connection reset".into(),
        attempts: if acked.is_some() { 2 } else { 3 },
        resolved: acked.is_some(),
    });
    r.workload = Some(harness_model::WorkloadPlan {
        publish_cuts: cuts,
        ..Default::default()
    });
    r
}

/// The clean opaque scenario plus a write `u1` of job j1 sent once (no key) whose
/// answer was lost at 131 ms: `a#0` receives it under id `1:6` at 160 ms on its second
/// connection when `to_a`; `b#0` at 161 ms when `to_b`, before `x4` when `early_b`.
fn opaque_lost_answer(to_a: bool, to_b: bool, early_b: bool) -> Recording {
    let mut r = opaque();
    let a = Conn::new(1, 116).cursor("1:2");
    let a = [("1:3", "x3"), ("1:4", "y2"), ("1:5", "x4")]
        .iter()
        .enumerate()
        .fold(a, |c, (i, (id, m))| {
            c.odata(122 + 5 * i as u64, id, m, "j1")
        });
    let a = if to_a {
        a.odata(160, "1:6", "u1", "j1")
    } else {
        a
    };
    conn(&mut r, "a#0", 1).frames = a.end(ConnEnd::Finished, 1500).frames;
    let b = conn(&mut r, "b#0", 0);
    if to_b {
        let at = if early_b { 4 } else { 6 };
        let mut k = Conn::new(0, 1);
        for f in std::mem::take(&mut b.frames).into_iter().take(at) {
            k = k.frame(f.at_us / 1000, &f.event, f.id.clone(), f.kind.clone());
        }
        k = k.odata(161, "1:6", "u1", "j1");
        if early_b {
            k = k
                .odata(162, "1:4", "y2", "j1")
                .odata(163, "1:5", "x4", "j1");
        }
        b.frames = k.end(ConnEnd::Finished, 1500).frames;
    }
    r.indeterminate.push(harness_model::Indeterminate {
        markers: vec!["u1".into()],
        job: "j1".into(),
        key: None,
        publisher: 0,
        sent_us: ms(131),
        ended_us: ms(132),
        cause: harness_model::IndeterminateCause::NoAnswer,
        error: "timed out".into(),
        attempts: 1,
        resolved: false,
    });
    r.workload = Some(harness_model::WorkloadPlan {
        publish_cuts: true,
        ..Default::default()
    });
    r
}

/// Declares one #[test] per case and `all_cases()` listing them.
macro_rules! cases {
    ($($name:ident => $body:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let case: Case = $body;
                case.assert();
            }
        )*
        fn all_cases() -> Vec<(&'static str, Case)> {
            vec![$((stringify!($name), $body)),*]
        }
    };
}

cases! {
    clean_numeric => Case::clean(numeric_cfg(), numeric());
    // A browser client is judged on what a page sees: a gap is a gap...
    browser_gap_is_judged => {
        let mut r = numeric_with(&[1, 2, 4, 5]);
        tr(&mut r, "b#0").agent = harness_model::Agent::Browser;
        Case::one(numeric_cfg(), r, "resume.no-gap", "[resume.no-gap] client b#0 conn 0 seq 4 marker m4 byte 162: expected seq 3 (acked, after seq 2), saw seq 4")
    };
    // ...but a page cannot tell a close from a reset, nor see connection_close's
    // absence for what it is: delivery.slow-consumer-close is not judged on it.
    browser_end_without_connection_close_is_not_judged => {
        let mut r = numeric();
        tr(&mut r, "b#0").agent = harness_model::Agent::Browser;
        conn(&mut r, "b#0", 0).end = ConnEnd::ServerClosed;
        Case::clean(numeric_cfg(), r)
    };
    browser_gave_up_for_good => {
        let mut r = numeric();
        let mut c = Conn::new(0, 0).end(ConnEnd::ConnectFailed { error: "blocked".into() }, 40);
        c.retries.clear();
        c.body_bytes = 0;
        c.status = None;
        let mut t = client("g#0", StreamKind::Events, &["j1"], vec![c]);
        t.agent = harness_model::Agent::Browser;
        t.gave_up_us = Some(40_000);
        r.transcripts.push(t);
        Case::one(numeric_cfg(), r, "wire.browser-stream", "[wire.browser-stream] client g#0 conn 0: expected the EventSource opens the stream and, when it ends or fails, reconnects by itself, saw the browser gave up for good (readyState CLOSED) at 40 ms after 0 opened connection(s): no CORS header for the page's origin, a 204, a refusal or a Content-Type other than text/event-stream")
            .also(&["delivery.lost-ack"])
    };
    clean_opaque => Case::clean(opaque_cfg(), opaque());

    gap_inside_a_connection => {
        Case::one(numeric_cfg(), numeric_with(&[1, 2, 4, 5]), "resume.no-gap", "[resume.no-gap] client b#0 conn 0 seq 4 marker m4 byte 162: expected seq 3 (acked, after seq 2), saw seq 4")
    };
    gap_at_resume => {
        let mut r = numeric();
        drop_data(conn(&mut r, "a#0", 1), "4");
        Case::one(numeric_cfg(), r, "resume.no-gap", "[resume.no-gap] client a#0 conn 1 seq 5 marker m5 byte 112: expected seq 4 (acked, after cursor 3), saw seq 5")
    };
    gap_opaque => {
        let mut r = opaque();
        drop_data(conn(&mut r, "b#0", 0), "x3");
        Case::one(opaque_cfg(), r, "resume.no-gap", "[resume.no-gap] client b#0 conn 0 marker x4 byte 262: expected marker x3 (publisher 0, acked after marker x2), saw marker x4")
    };
    duplicate_across_resume => {
        let mut r = numeric();
        let c = conn(&mut r, "a#0", 1);
        let dup = c.frames[1].clone();
        let mut dup3 = dup.clone();
        dup3.kind = FrameKind::Data(event(3, "j1"));
        c.frames.insert(1, dup3);
        Case::one(numeric_cfg(), r, "resume.no-duplicate", "[resume.no-duplicate] client a#0 conn 1 seq 3 marker m3 byte 62: expected each event once (resumed from cursor 3), saw seq 3 again, first at conn 0 byte 162")
    };
    duplicate_opaque => {
        let mut r = opaque();
        let c = conn(&mut r, "b#0", 0);
        let again = c.frames[1].clone();
        c.frames.insert(2, again);
        Case::one(opaque_cfg(), r, "resume.no-duplicate", "[resume.no-duplicate] client b#0 conn 0 marker y1 byte 62: expected each event once (in the same connection), saw marker y1 again, first at conn 0 byte 62")
    };
    out_of_order => Case::one(numeric_cfg(), numeric_with(&[1, 2, 3, 5, 4]), "resume.monotonic", "[resume.monotonic] client b#0 conn 0 seq 4 marker m4 byte 262: expected a seq above 5 (the previous one), saw seq 4");
    invalid_cursor_not_400 => {
        let mut r = numeric();
        conn(&mut r, "bad#0", 0).error_body = Some(r#"{"error":"bad_request"}"#.into());
        Case::one(numeric_cfg(), r, "resume.invalid-cursor", r#"[resume.invalid-cursor] client bad#0 conn 0: expected 400 {"error":"invalid_last_event_id"} before any stream byte, saw error bad_request"#)
    };
    cursor_ahead_without_error => {
        let mut r = numeric();
        conn(&mut r, "ahead#0", 0).frames.remove(1);
        Case::one(numeric_cfg(), r, "resume.cursor-ahead", "[resume.cursor-ahead] client ahead#0 conn 0 byte 112: expected 200 with connection_open, error{code:cursor_ahead}, connection_close{reason:cursor_ahead}, then the end of the response, saw connection_close{reason:cursor_ahead} as frame 2")
            .also(&["lifecycle.error-before-close"])
    };
    // A reader that is behind receives a heartbeat long after the server computed it:
    // stamped at 50 ms (head 0), received at 1000 ms, after b#0 had seq 5 at 164 ms.
    old_heartbeat_received_late => Case::clean(numeric_cfg(), paused_reader(false));
    // The same reader's next heartbeat is stamped 1000 ms after the first: sent long
    // after b#0 had seq 5, and still head 0.
    heartbeat_stamped_late_behind => Case::one(numeric_cfg(), paused_reader(true), "resume.head-not-behind", "[resume.head-not-behind] client p#0 conn 0 seq 5 byte 112: expected heartbeat head_seq ≥ 5 (already sent to a#0), saw head_seq 0");
    head_behind_on_resume => {
        let mut r = numeric();
        lifecycle_fields(conn(&mut r, "a#0", 1), "connection_open")["head_seq"] = json!(2);
        Case::one(numeric_cfg(), r, "resume.head-not-behind", "[resume.head-not-behind] client a#0 conn 1 seq 3 byte 12: expected connection_open head_seq ≥ 3 (already sent to a#0), saw head_seq 2")
    };

    // Issue 21: a target that closes (or resets) a stream after acknowledging writes
    // it never sent loses them, even when the client does not come back.
    lost_when_the_server_closes_after_the_ack => {
        let mut r = numeric_with(&[1, 2]);
        conn(&mut r, "b#0", 0).end = ConnEnd::ServerClosed;
        Case::one(numeric_cfg(), r, "delivery.lost-ack", "[delivery.lost-ack] client b#0 conn 0 seq 3 marker m3: expected seq 3 and 2 more acked seqs up to 5 (acked at 131 ms, job j1) delivered, saw last delivered seq 2; stream ended by the server ending the response at 1500 ms")
            .also(&["delivery.slow-consumer-close"])
    };
    lost_when_the_stream_is_reset_after_the_ack => {
        let mut r = numeric_with(&[1, 2]);
        conn(&mut r, "b#0", 0).end = ConnEnd::Failed { error: "io: connection reset by peer".into() };
        Case::one(numeric_cfg(), r, "delivery.lost-ack", "[delivery.lost-ack] client b#0 conn 0 seq 3 marker m3: expected seq 3 and 2 more acked seqs up to 5 (acked at 131 ms, job j1) delivered, saw last delivered seq 2; stream ended by a socket failure (io: connection reset by peer) at 1500 ms")
            .also(&["delivery.slow-consumer-close"])
    };
    // ...but a cut of the harness's own, not followed by a reconnect, owes nothing.
    a_harness_cut_without_reconnect_owes_nothing => {
        let mut r = numeric_with(&[1, 2]);
        conn(&mut r, "b#0", 0).end = cut();
        Case::clean(numeric_cfg(), r)
    };
    // A flood the harness stopped at a recording cap is reported, whatever the families.
    a_flood_stopped_at_a_recording_cap => {
        let mut r = numeric();
        conn(&mut r, "b#0", 0).end = ConnEnd::RecordLimit { limit: RecordLimit::Comments };
        let mut cfg = numeric_cfg();
        cfg.families = vec![harness_model::Family::Delivery];
        Case::one(cfg, r, "gate.record-limit", "[gate.record-limit] client b#0 conn 0 byte 312: expected a stream the harness can record within its caps, saw stopped at the cap comments-per-connection after 6 frames, 0 comments, 1 retries, 0 violations and 312 body bytes")
    };
    // What came after the harness's own recording cap was not recorded: not a loss,
    // only the cap itself (which fails the scenario).
    nothing_past_a_recording_cap_is_called_lost => {
        let mut r = numeric_with(&[1, 2]);
        conn(&mut r, "b#0", 0).end = ConnEnd::RecordLimit { limit: RecordLimit::ScenarioBytes };
        Case::one(numeric_cfg(), r, "gate.record-limit", "[gate.record-limit] client b#0 conn 0 byte 162: expected a stream the harness can record within its caps, saw stopped at the cap recorded-bytes-per-scenario after 3 frames, 0 comments, 1 retries, 0 violations and 162 body bytes")
    };
    lost_at_tail => Case::one(numeric_cfg(), numeric_with(&[1, 2, 3, 4]), "delivery.lost-ack", "[delivery.lost-ack] client b#0 conn 0 seq 5 marker m5: expected seq 5 (acked at 151 ms, job j1) delivered, saw last delivered seq 4; stream ended by the scenario's end at 1500 ms");
    // Regression: the harness once resumed with the id of an event a cut interrupted,
    // so seq 3 was never delivered, lay below the next cursor, and nobody reported it.
    skipped_below_a_later_cursor => {
        let mut r = numeric();
        drop_data(conn(&mut r, "a#0", 0), "m3");
        Case::one(numeric_cfg(), r, "delivery.lost-ack", "[delivery.lost-ack] client a#0 conn 1 seq 3 marker m3 byte 62: expected acked seq 3 delivered (owed: the client read that job over it), saw 1 acked seq(s) never delivered, skipped below a later cursor (next delivered: seq 4)")
    };
    lost_at_tail_opaque => {
        let mut r = opaque();
        drop_data(conn(&mut r, "b#0", 0), "x4");
        Case::one(opaque_cfg(), r, "delivery.lost-ack", "[delivery.lost-ack] client b#0 conn 0 marker x4: expected marker x4 of publisher 0 (acked at 131 ms, job j1) delivered, saw last delivered marker x3; stream ended by the scenario's end at 1500 ms")
    };
    wrong_marker_under_acked_seq => {
        let mut r = numeric();
        data_mut(conn(&mut r, "b#0", 0), 2).marker = Some("m9".into());
        Case::one(numeric_cfg(), r, "delivery.ack-matches", "[delivery.ack-matches] client b#0 conn 0 seq 2 marker m9 byte 112: expected marker m2 of job j1 (acked under this seq), saw marker m9 of job j1")
    };
    different_event_same_seq => {
        let mut r = numeric();
        data_mut(conn(&mut r, "b#0", 0), 2).digest = "other".into();
        Case::one(numeric_cfg(), r, "delivery.consistent", "[delivery.consistent] client b#0 conn 0 seq 2 marker m2 byte 112: expected seq 2 to be custom of job j1 digest d2 as a#0 got it at conn 0 byte 112, saw custom of job j1 digest other")
    };
    opposite_order_opaque => {
        let mut r = opaque();
        // b sees y1 before x1 while a saw x1 first (different publishers: the server's order must agree).
        let c = conn(&mut r, "b#0", 0);
        let (k0, k1) = (c.frames[0].kind.clone(), c.frames[1].kind.clone());
        c.frames[0].kind = k1;
        c.frames[1].kind = k0;
        Case::one(opaque_cfg(), r, "delivery.consistent", "[delivery.consistent] client b#0 conn 0 marker x1 byte 62: expected marker x1 before marker y1, the order a#0 saw, saw marker x1 after marker y1")
    };
    // nchan's ids are per channel: the same id on another channel is another event.
    opaque_id_of_another_channel_is_not_inconsistent => {
        let mut r = opaque();
        r.acks.push(oack("z1", "j2", 2, 140));
        let z = Conn::new(0, 139).odata(142, "1:0", "z1", "j2").end(ConnEnd::Finished, 1500);
        r.transcripts.push(client("z#0", StreamKind::Events, &["j2"], vec![z]));
        Case::clean(opaque_cfg(), r)
    };
    opaque_id_reused_in_one_channel => {
        let mut r = opaque();
        let f = &mut conn(&mut r, "b#0", 0).frames[2];
        f.id = Some("1:0".into());
        if let FrameKind::Data(d) = &mut f.kind {
            d.opaque_id = Some("1:0".into());
        }
        Case::one(opaque_cfg(), r, "delivery.consistent", "[delivery.consistent] client b#0 conn 0 marker x2 byte 112: expected id 1:0 to be marker x1 as a#0 got it at conn 0 byte 12, saw marker x2 under id 1:0")
    };
    publish_not_acked => {
        let mut r = numeric();
        r.publish_failures.push(PublishFailure { markers: vec!["m7".into()], status: Some(500), error: "internal".into() });
        Case::one(numeric_cfg(), r, "delivery.publish-acked", "[delivery.publish-acked] marker m7: expected a 2xx ack for the publish of 1 event(s), saw status 500: internal")
    };
    dropped_without_close => {
        let mut r = numeric();
        let c = Conn::new(0, 1).open(3, "events", 0, Value::Null);
        let c = (1..=5).fold(c, |c, s| c.data(113 + 10 * (s - 1), s, "j1")).end(ConnEnd::ServerClosed, 1500);
        r.transcripts.push(client("c#0", StreamKind::Events, &[], vec![c]));
        Case::one(numeric_cfg(), r, "delivery.slow-consumer-close", "[delivery.slow-consumer-close] client c#0 conn 0: expected connection_close (slow_consumer, server_shutdown, ...) before an events stream ends, saw the response ended after 312 bytes at 1500 ms without connection_close")
    };

    wrong_content_type => {
        let mut r = numeric();
        conn(&mut r, "b#0", 0).headers.insert("content-type".into(), "text/plain".into());
        Case::one(numeric_cfg(), r, "lifecycle.headers", "[lifecycle.headers] client b#0 conn 0: expected content-type text/event-stream and cache-control no-cache, saw content-type text/plain")
    };
    no_retry_block => {
        let mut r = numeric();
        conn(&mut r, "b#0", 0).retries.clear();
        Case::one(numeric_cfg(), r, "lifecycle.retry-first", "[lifecycle.retry-first] client b#0 conn 0 byte 12: expected a block of its own with retry: <ms> at byte 0, saw connection_open first, no retry")
    };
    data_before_open => {
        let mut r = numeric();
        conn(&mut r, "b#0", 0).frames.remove(0);
        Case::one(numeric_cfg(), r, "lifecycle.open-first", "[lifecycle.open-first] client b#0 conn 0 byte 62: expected connection_open with stream events, head_seq, resume_from and heartbeat_ms first, saw data seq 1")
    };
    id_on_connection_open => {
        let mut r = numeric();
        conn(&mut r, "b#0", 0).frames[0].id = Some("0".into());
        Case::one(numeric_cfg(), r, "lifecycle.no-id", "[lifecycle.no-id] client b#0 conn 0 byte 12: expected no id: on connection_open, saw id: 0")
    };
    frame_after_close => {
        let mut r = numeric();
        let c = Conn::new(0, 1).open(3, "events", 0, Value::Null);
        let c = (1..=5).fold(c, |c, s| c.data(113 + 10 * (s - 1), s, "j1")).close(200, "slow_consumer").hb(201, 5).end(ConnEnd::ServerClosed, 202);
        r.transcripts.push(client("c#0", StreamKind::Events, &[], vec![c]));
        Case::one(numeric_cfg(), r, "lifecycle.close-last", "[lifecycle.close-last] client c#0 conn 0 byte 362: expected nothing after connection_close, and the end of the response, saw heartbeat after it")
    };
    close_without_error => {
        let mut r = numeric();
        let c = Conn::new(0, 1).open(3, "events", 0, Value::Null);
        let c = (1..=5).fold(c, |c, s| c.data(113 + 10 * (s - 1), s, "j1")).close(200, "cursor_ahead").end(ConnEnd::ServerClosed, 202);
        r.transcripts.push(client("c#0", StreamKind::Events, &[], vec![c]));
        Case::one(numeric_cfg(), r, "lifecycle.error-before-close", "[lifecycle.error-before-close] client c#0 conn 0 byte 312: expected error{code:cursor_ahead} before connection_close{reason:cursor_ahead}, saw data seq 5 then connection_close{reason:cursor_ahead}")
    };
    terminal_without_close => {
        let mut r = numeric();
        let c = conn(&mut r, "t#0", 0);
        c.frames.pop();
        Case::one(numeric_cfg(), r, "lifecycle.terminal-close", "[lifecycle.terminal-close] client t#0 conn 0 byte 62: expected connection_close{reason:task_completed} right after the terminal event, saw data seq 9 then the server ending the response")
    };
    task_not_found_without_error => {
        let mut r = numeric();
        conn(&mut r, "nf#0", 0).frames.remove(1);
        Case::one(numeric_cfg(), r, "lifecycle.task-not-found", "[lifecycle.task-not-found] client nf#0 conn 0 byte 112: expected 200 with connection_open, error{code:task_not_found}, connection_close{reason:task_not_found}, then the end of the response, saw connection_close{reason:task_not_found} as frame 2")
            .also(&["lifecycle.error-before-close"])
    };
    correlation_changes => {
        let mut r = numeric();
        data_mut(conn(&mut r, "b#0", 0), 3).correlation_id = Some("zzz".into());
        Case::one(numeric_cfg(), r, "lifecycle.correlation-id", "[lifecycle.correlation-id] client b#0 conn 0 byte 162: expected correlation_id c1 in every frame (as in the frame at byte 12), saw correlation_id zzz on data seq 3")
    };

    idle_silence => {
        let mut r = numeric();
        let c = conn(&mut r, "idle#0", 0);
        c.frames.drain(2..4);
        Case::one(numeric_cfg(), r, "heartbeat.interval", "[heartbeat.interval] client idle#0 conn 0 byte 212: expected no silence above 2 x heartbeat_ms = 2000 ms, saw 3000 ms between consecutive heartbeats by their server_time")
    };
    // Regression: with heartbeats switched off, the idle client waited until its
    // deadline and the silence before that end was not judged.
    no_heartbeat_until_the_deadline => {
        let mut r = numeric();
        let c = conn(&mut r, "idle#0", 0);
        c.frames.truncate(1);
        c.end = ConnEnd::Deadline;
        Case::one(numeric_cfg(), r, "heartbeat.interval", "[heartbeat.interval] client idle#0 conn 0: expected no silence above 2 x heartbeat_ms = 2000 ms, saw 4799 ms of silence (from 201 ms to 5000 ms)")
    };
    heartbeat_without_server_time => {
        let mut r = numeric();
        let f = lifecycle_fields(conn(&mut r, "idle#0", 0), "heartbeat");
        f.as_object_mut().expect("object").remove("server_time");
        Case::one(numeric_cfg(), r, "heartbeat.fields", "[heartbeat.fields] client idle#0 conn 0 byte 62: expected a heartbeat with server_time and head_seq, and no id, saw server_time missing")
    };

    version_without_git_commit => {
        let mut r = numeric();
        let f = lifecycle_fields(conn(&mut r, "v#0", 0), "version");
        f.as_object_mut().expect("object").remove("git_commit");
        Case::one(numeric_cfg(), r, "version.fields", "[version.fields] client v#0 conn 0 byte 62: expected event: version with request_id, version, environment, git_commit, correlation_id and no id, saw missing or mistyped git_commit")
    };
    version_missing => {
        let mut r = numeric();
        conn(&mut r, "v#0", 0).frames.pop();
        Case::one(numeric_cfg(), r, "version.pending-order", "[version.pending-order] client v#0 conn 0: expected versions [1.0, 1.1] after connection_open, in order, saw [1.0]")
    };
    not_replaced => {
        let mut r = numeric();
        let f = lifecycle_fields(conn(&mut r, "v2#0", 0), "connection_close");
        f["reason"] = json!("server_shutdown");
        Case::one(numeric_cfg(), r, "version.replaced", "[version.replaced] client v2#0 conn 0 byte 112: expected the stream to end with connection_close{reason:replaced}, saw connection_close{reason:server_shutdown} last, then the server ending the response")
    };

    wire_violation_strict => {
        let mut r = numeric();
        conn(&mut r, "b#0", 0).violations.push(WireIssue { offset: 40, kind: harness_model::WireViolation::InvalidUtf8, detail: "byte 0xff".into() });
        Case::one(numeric_cfg(), r, "framing.well-formed", "[framing.well-formed] client b#0 conn 0 byte 40: expected well-formed UTF-8 event-stream framing, saw invalid-utf8: byte 0xff")
    };
    malformed_data_strict => {
        let mut r = numeric();
        let c = conn(&mut r, "b#0", 0);
        let mut f = c.frames[1].clone();
        f.kind = FrameKind::Malformed { reason: "data is not JSON".into() };
        f.id = None;
        f.start = 9000;
        c.frames.push(f);
        Case::one(numeric_cfg(), r, "framing.json-data", "[framing.json-data] client b#0 conn 0 byte 9000: expected JSON data with the profile's fields on event task_event, saw data is not JSON")
    };

    acked_write_lost_in_restart => {
        let mut r = numeric();
        r.acks.push(ack(6, "j1", 200));
        r.restarts.push(ms(300));
        let b = tr(&mut r, "b#0");
        b.connections[0].end = ConnEnd::Failed { error: "reset".into() };
        b.connections[0].ended_us = ms(300);
        b.connections.push(Conn::new(1, 400).cursor("5").open(401, "events", 5, json!(5)).end(ConnEnd::Finished, 2000));
        Case::one(numeric_cfg(), r, "durability.acked-survive", "[durability.acked-survive] seq 6 marker m6: expected seq 6 (acked at 201 ms, before the restart at 300 ms) delivered after the restart, saw no client received it (owed to a#0, b#0)")
    };
    seq_reused_after_restart => {
        let mut r = numeric();
        let mut again = ack(5, "j1", 350);
        again.marker = "m5b".into();
        r.acks.push(again);
        r.restarts.push(ms(300));
        let mut ev = event(5, "j1");
        ev.marker = Some("m5b".into());
        ev.digest = "d5b".into();
        let c = Conn::new(0, 400).cursor("4").open(401, "events", 5, json!(4)).data_ev(410, ev).end(ConnEnd::Finished, 2000);
        r.transcripts.push(client("c#0", StreamKind::Events, &[], vec![c]));
        Case::one(numeric_cfg(), r, "durability.seq-not-reused", "[durability.seq-not-reused] seq 5 marker m5b: expected a fresh seq (seq 5 was acked for marker m5 at 151 ms), saw seq 5 acked again for marker m5b")
    };
    no_shutdown_close => {
        let mut r = numeric();
        r.restarts.push(ms(1400));
        r.expect.shutdown.push(cid("b#0"));
        let c = conn(&mut r, "b#0", 0);
        c.end = ConnEnd::ServerClosed;
        c.ended_us = ms(1401);
        Case::one(numeric_cfg(), r, "durability.shutdown-close", "[durability.shutdown-close] client b#0 conn 0 byte 262: expected connection_close{reason:server_shutdown} for the shutdown at 1400 ms, saw data seq 5 last, then the server ending the response")
    };
    integrity_mismatch => {
        let mut r = numeric();
        r.integrity = Some(json!({"items": [
            {"kind": "receipt", "job_id": "j1", "path": "receipts/j1.json", "expected_hash": "aa", "actual_hash": "aa", "status": "MATCH"},
            {"kind": "artifact", "job_id": "j1", "path": "artifacts/j1/out", "expected_hash": "bb", "actual_hash": "cc", "status": "MISMATCH"}
        ]}));
        Case::one(numeric_cfg(), r, "durability.integrity", "[durability.integrity] expected artifact artifacts/j1/out of job j1 with sha256 bb, saw MISMATCH, sha256 cc")
    };

    gauge_stays_up => {
        let mut r = numeric();
        r.expect.liveness = Some(LivenessProbe { gauge: "spine_active_streams".into(), baseline: 0.0, disconnected_us: ms(1000), heartbeat_ms: 1000, clients: 0 });
        r.gauges.insert("spine_active_streams".into(), vec![(ms(500), 3.0), (ms(1500), 2.0), (ms(3500), 1.0)]);
        Case::one(numeric_cfg(), r, "liveness.disconnect-noticed", "[liveness.disconnect-noticed] expected spine_active_streams back to 0 within 3000 ms of the disconnect (2 x heartbeat_ms + one interval of sampling slack), saw spine_active_streams still 1 2500 ms after the disconnect (last sample)")
    };

    // Issue 12, hole 2: nothing the client did not ask for, on every connection.
    another_jobs_event_to_a_filtered_client => {
        let mut r = numeric();
        let c = conn(&mut r, "b#0", 0);
        let mut f = c.frames.last().expect("a frame").clone();
        f.kind = FrameKind::Data(event(6, "j3"));
        f.id = Some("6".into());
        f.start += 50;
        f.at_us = ms(1450);
        c.frames.push(f);
        Case::one(numeric_cfg(), r, "delivery.only-requested", "[delivery.only-requested] client b#0 conn 0 seq 6 marker m6 byte 312: expected only events of j1, saw an event of job j3")
    };
    another_channels_event_on_a_resume_opaque => {
        let mut r = opaque();
        r.acks.push(oack("z1", "j9", 2, 90));
        let c = conn(&mut r, "a#0", 1);
        let mut f = c.frames[0].clone();
        if let FrameKind::Data(d) = &mut f.kind {
            d.marker = Some("z1".into());
            d.opaque_id = Some("9:0".into());
            d.job = Some("j9".into());
        }
        f.start = 9000;
        c.frames.push(f);
        Case::one(opaque_cfg(), r, "delivery.only-requested", "[delivery.only-requested] client a#0 conn 1 marker z1 byte 9000: expected only events of j1, saw an event of job j9")
    };

    // Issue 12, hole 3: unexpected endings are judged.
    cursor_ahead_for_a_seq_known_to_exist => {
        let mut r = numeric();
        let c = Conn::new(0, 500)
            .cursor("5")
            .open(501, "events", 5, json!(5))
            .error(502, "cursor_ahead")
            .close(502, "cursor_ahead")
            .end(ConnEnd::ServerClosed, 503);
        r.transcripts.push(client("c#0", StreamKind::Events, &["j1"], vec![c]));
        Case::one(numeric_cfg(), r, "resume.head-not-behind", "[resume.head-not-behind] client c#0 conn 0 seq 5 byte 62: expected no cursor_ahead for cursor 5: seq 5 existed before the request (received by b#0), saw error{code:cursor_ahead}")
    };
    close_reason_not_for_the_stream => {
        let mut r = numeric();
        let c = Conn::new(0, 500)
            .cursor("5")
            .open(501, "events", 5, json!(5))
            .close(502, "task_completed")
            .end(ConnEnd::ServerClosed, 503);
        r.transcripts.push(client("c#0", StreamKind::Events, &["j1"], vec![c]));
        Case::one(numeric_cfg(), r, "lifecycle.close-reason", "[lifecycle.close-reason] client c#0 conn 0 byte 62: expected a events stream closed with reason server_shutdown, slow_consumer, cursor_ahead, saw connection_close{reason:task_completed}")
    };
    events_stream_reset_without_close => {
        let mut r = numeric();
        let c = Conn::new(0, 500)
            .cursor("5")
            .open(501, "events", 5, json!(5))
            .end(ConnEnd::Failed { error: "io: unexpected end of chunked body".into() }, 900);
        r.transcripts.push(client("c#0", StreamKind::Events, &["j1"], vec![c]));
        Case::one(numeric_cfg(), r, "delivery.slow-consumer-close", "[delivery.slow-consumer-close] client c#0 conn 0: expected connection_close (slow_consumer, server_shutdown, ...) before an events stream ends, saw a socket failure (io: unexpected end of chunked body) after 62 bytes at 900 ms without connection_close")
    };
    task_stream_reset_before_its_terminal => {
        let mut r = numeric();
        let c = conn(&mut r, "t#0", 0);
        c.frames.truncate(1);
        c.end = ConnEnd::Failed { error: "io: connection reset by peer".into() };
        Case::one(numeric_cfg(), r, "lifecycle.terminal-close", "[lifecycle.terminal-close] client t#0 conn 0 byte 12: expected connection_close{reason:task_completed} right after the terminal event, saw no terminal close; the stream ended by a socket failure (io: connection reset by peer)")
    };

    // Spine v1.1 §4.1.2: a task stream resumed at its terminal event may be answered 204.
    task_resumed_after_its_end_answered_204 => Case::clean(numeric_cfg(), task_resumed_204("9"));
    task_resumed_before_its_end_answered_204 => {
        Case::one(numeric_cfg(), task_resumed_204("8"), "lifecycle.terminal-close", "[lifecycle.terminal-close] client tr#0 conn 0: expected connection_close{reason:task_completed} right after the terminal event, saw no terminal close; the stream ended by the server ending the response")
            .also(&["lifecycle.headers", "lifecycle.open-first"])
    };

    // Issue 18: subscribers behind a dead link, freed by the server (or not).
    stalled_readers_freed => {
        let mut r = numeric();
        r.expect.stalled_reader = Some(stalled_probe());
        r.gauges.insert("spine_active_streams".into(), vec![(ms(500), 2.0), (ms(2000), 2.0), (ms(9000), 0.0)]);
        r.gauges.insert("spine_slow_consumer_closes_total".into(), vec![(ms(500), 0.0), (ms(2000), 0.0), (ms(9000), 2.0)]);
        Case::clean(numeric_cfg(), r)
    };
    stalled_readers_kept => {
        let mut r = numeric();
        r.expect.stalled_reader = Some(stalled_probe());
        r.gauges.insert("spine_active_streams".into(), vec![(ms(500), 2.0), (ms(2000), 2.0), (ms(11000), 2.0)]);
        r.gauges.insert("spine_slow_consumer_closes_total".into(), vec![(ms(500), 0.0), (ms(2000), 0.0), (ms(11000), 0.0)]);
        Case::one(numeric_cfg(), r, "liveness.stalled-reader-freed", "[liveness.stalled-reader-freed] expected spine_active_streams back to 0 within 7000 ms of the stall filling the buffers (write_stall_ms 5000 + 2000 ms of slack), saw spine_active_streams still 2 9000 ms after the buffers filled (last sample)")
    };
    stalled_readers_freed_uncounted => {
        let mut r = numeric();
        r.expect.stalled_reader = Some(stalled_probe());
        r.gauges.insert("spine_active_streams".into(), vec![(ms(500), 2.0), (ms(2000), 2.0), (ms(8000), 0.0)]);
        r.gauges.insert("spine_slow_consumer_closes_total".into(), vec![(ms(500), 0.0), (ms(2000), 0.0), (ms(11000), 0.0)]);
        Case::one(numeric_cfg(), r, "liveness.stalled-reader-freed", "[liveness.stalled-reader-freed] expected spine_slow_consumer_closes_total at least 2 (0 + 2 stalled streams counted as slow consumers) within 7000 ms of the stall filling the buffers (write_stall_ms 5000 + 2000 ms of slack), saw spine_slow_consumer_closes_total still 0 9000 ms after the buffers filled (last sample)")
    };
    // A recording carrying absurd announced bounds (a hostile target's) is judged, not a panic.
    stalled_readers_huge_bounds => {
        let mut r = numeric();
        r.expect.stalled_reader = Some(harness_model::StalledReaderProbe { write_stall_ms: u64::MAX, heartbeat_ms: u64::MAX, ..stalled_probe() });
        r.gauges.insert("spine_active_streams".into(), vec![(ms(500), 2.0), (ms(2000), 2.0), (ms(9000), 0.0)]);
        r.gauges.insert("spine_slow_consumer_closes_total".into(), vec![(ms(500), 0.0), (ms(2000), 0.0), (ms(9000), 2.0)]);
        Case::clean(numeric_cfg(), r)
    };
    stalled_readers_never_counted => {
        let mut r = numeric();
        r.expect.stalled_reader = Some(stalled_probe());
        r.gauges.insert("spine_active_streams".into(), vec![(ms(500), 0.0), (ms(3000), 0.0)]);
        Case::one(numeric_cfg(), r, "liveness.stalled-reader-freed", "[liveness.stalled-reader-freed] expected spine_active_streams at least 2 (baseline 0 + 2 stalled clients) before they are freed, saw spine_active_streams at most 0 in 1 sample(s) while they were stalled")
    };

    // Issue 12, hole 6: the gauge must count the clients before it can fall.
    gauge_never_counts => {
        let mut r = numeric();
        r.expect.liveness = Some(LivenessProbe { gauge: "spine_active_streams".into(), baseline: 0.0, disconnected_us: ms(1000), heartbeat_ms: 1000, clients: 3 });
        r.gauges.insert("spine_active_streams".into(), vec![(ms(500), 0.0), (ms(1500), 0.0)]);
        Case::one(numeric_cfg(), r, "liveness.disconnect-noticed", "[liveness.disconnect-noticed] expected spine_active_streams at least 3 (baseline 0 + 3 clients) while the clients were connected, saw spine_active_streams at most 0 in 1 sample(s) while they were connected")
    };

    // Issue 12, hole 7: the server's clock, every ending, a bounded interval.
    heartbeats_stamped_far_apart => {
        let mut r = numeric();
        let c = Conn::new(0, 200)
            .open(201, "events", 5, Value::Null)
            .hb_stamped(1200, 1200, 9)
            .hb_stamped(2200, 4700, 9)
            .end(ConnEnd::Finished, 2500);
        tr(&mut r, "idle#0").connections = vec![c];
        Case::one(numeric_cfg(), r, "heartbeat.interval", "[heartbeat.interval] client idle#0 conn 0 byte 112: expected no silence above 2 x heartbeat_ms = 2000 ms, saw 3500 ms between consecutive heartbeats by their server_time")
    };
    // Issue 13: heartbeats stamped on time that reach an idle client in one burst after
    // 7 s of silence were held by something between (a buffering proxy).
    heartbeats_held_on_the_way => {
        let mut r = numeric();
        let c = Conn::new(0, 200)
            .open(201, "events", 5, Value::Null)
            .hb_stamped(1200, 1200, 9)
            .hb_stamped(8200, 2200, 9)
            .hb_stamped(8201, 3200, 9)
            .end(ConnEnd::Finished, 8500);
        tr(&mut r, "idle#0").connections = vec![c];
        Case::one(numeric_cfg(), r, "heartbeat.interval", "[heartbeat.interval] client idle#0 conn 0 byte 112: expected no silence above 2 x heartbeat_ms = 2000 ms, saw 7000 ms of silence (from 1200 ms to 8200 ms) ended by heartbeats the server stamped on time: they were held on the way, as a proxy that buffers responses does (nginx proxy_buffering on, a CDN): the likely cause is buffering between the server and the client")
    };
    idle_silence_before_the_server_closes => {
        let mut r = numeric();
        let c = conn(&mut r, "idle#0", 0);
        c.frames.truncate(2);
        c.end = ConnEnd::ServerClosed;
        c.ended_us = ms(3500);
        Case::one(numeric_cfg(), r, "heartbeat.interval", "[heartbeat.interval] client idle#0 conn 0: expected no silence above 2 x heartbeat_ms = 2000 ms, saw 2300 ms of silence (from 1200 ms to 3500 ms)")
            .also(&["delivery.slow-consumer-close"])
    };
    a_huge_announced_interval_is_bounded => {
        let mut r = numeric();
        let c = conn(&mut r, "idle#0", 0);
        lifecycle_fields(c, "connection_open")["heartbeat_ms"] = json!(1u64 << 63);
        c.frames.truncate(1);
        c.end = ConnEnd::Deadline;
        c.ended_us = ms(40_000);
        Case::one(numeric_cfg(), r, "heartbeat.interval", "[heartbeat.interval] client idle#0 conn 0: expected no silence above 2 x heartbeat_ms = 30000 ms, saw 39799 ms of silence (from 201 ms to 40000 ms)")
    };

    // Issue 12, hole 8: a parser stop is a finding in lenient mode too.
    parser_stop_lenient => {
        let mut r = opaque();
        let c = conn(&mut r, "b#0", 0);
        c.violations.push(WireIssue { offset: 400, kind: harness_model::WireViolation::LineTooLong, detail: "line over 1 MiB".into() });
        c.end = ConnEnd::ParserLimit;
        Case::one(opaque_cfg(), r, "framing.well-formed", "[framing.well-formed] client b#0 conn 0 byte 400: expected well-formed UTF-8 event-stream framing, saw line-too-long: line over 1 MiB")
    };

    // Issue 12, hole 11: no findings from the harness's own chaos or unclaimed rules.
    a_cut_inside_the_retry_block_is_not_judged => {
        let mut r = numeric();
        let mut c = Conn::new(0, 500).cursor("5").end(cut(), 501);
        c.retries.clear();
        c.body_bytes = 7;
        r.transcripts.push(client("c#0", StreamKind::Events, &["j1"], vec![c]));
        Case::clean(numeric_cfg(), r)
    };
    retry_first_only_where_claimed => {
        let mut r = opaque();
        conn(&mut r, "b#0", 0).retries.clear();
        Case::clean(opaque_cfg(), r)
    };
    content_trimmed => {
        let mut r = with_content(opaque(), None, awkward);
        let f = conn(&mut r, "b#0", 0).frames.iter_mut().find(|f| matches!(&f.kind, FrameKind::Data(d) if d.marker.as_deref() == Some("x2"))).unwrap();
        f.data = f.data.replace("   two", "two");
        Case::one(opaque_cfg(), r, "delivery.content-intact", "[delivery.content-intact] client b#0 conn 0 marker x2 byte 112: expected the data text as published (34 bytes), saw 31 bytes that differ at byte 8: \"x2 one\\n\\ntwo\\ndata: three\\n\" where \"x2 one\\n\\n   two\\ndata: thr\" was published")
    };
    task_step_skipped => {
        let mut job = job_read_back(5, None, false);
        job.events.remove(2);
        Case::one(numeric_cfg(), jobs_rec(job, &[]).1, "lifecycle.task-events", "[lifecycle.task-events] client t#0 conn 0: expected job j9: job_started, progress_update 1..5, task_completed: event 3 progress_update step 2, saw event 3 progress_update step 3").also(&["lifecycle.task-receipt", "durability.receipts-recomputed"])
    };
    receipt_events_hash_wrong => {
        Case::one(numeric_cfg(), jobs_rec(events_hash_wrong(), &[]).1, "lifecycle.task-receipt", "[lifecycle.task-receipt] client t#0 conn 0: expected job j9: events_sha256 164aada88d8e1a62484c63d0d78b382170a79448ec1bb0514ebfc63dd3cc6fad (recomputed over the 4 events before task_completed), saw \"0164aada88d8e1a62484c63d0d78b382170a79448ec1bb0514ebfc63dd3cc6fad\"").also(&["durability.receipts-recomputed"])
    };
    // Issue 12 hole 10 (spine §4.3).
    fast_beside_stalled_readers => Case::clean(numeric_cfg(), beside_stalled_readers(5));
    // Within 4 × the baseline p99 (5 ms) + 1 s: noise on a shared machine.
    fast_a_little_slower_beside_stalled_readers => Case::clean(numeric_cfg(), beside_stalled_readers(900));
    // Issue 22: what reaches the client, and when.
    hostile_writes_refused_are_clean => Case::clean(numeric_cfg(), hostile_writes(true));
    hostile_writes_split_into_an_event => {
        Case::one(numeric_cfg(), hostile_writes(false), "wire.field-injection", "[wire.field-injection] client b#0 conn 0 byte 312: expected writes whose event type is \"x\\n\\nevent: injected\" refused or delivered as one event each, with no field or event of their own, saw a frame the publisher's text made: event injected")
    };
    clean_trickle => Case::clean(trickle_cfg(), trickle(&[Some(1005), Some(2504), Some(4010), Some(5502)]));
    a_content_length_on_a_stream => {
        let mut r = numeric();
        conn(&mut r, "b#0", 0).headers.insert("content-length".into(), "100000".into());
        Case::one(numeric_cfg(), r, "wire.stream-headers", "[wire.stream-headers] client b#0 conn 0: expected content-type text/event-stream (charset, if any, utf-8), no content-length, and over HTTP/2 no connection-specific fields, saw content-length 100000")
    };
    a_charset_other_than_utf8 => {
        let mut r = numeric();
        conn(&mut r, "b#0", 0).headers.insert("content-type".into(), "text/event-stream; charset=ISO-8859-1".into());
        Case::one(numeric_cfg(), r, "wire.stream-headers", "[wire.stream-headers] client b#0 conn 0: expected content-type text/event-stream (charset, if any, utf-8), no content-length, and over HTTP/2 no connection-specific fields, saw content-type text/event-stream; charset=ISO-8859-1")
    };
    connection_headers_over_http2 => {
        let mut r = numeric();
        let c = conn(&mut r, "b#0", 0);
        c.protocol = harness_model::HttpProtocol::H2;
        c.headers.insert("connection".into(), "keep-alive".into());
        c.headers.insert("content-type".into(), "text/event-stream;charset=utf-8".into());
        Case::one(numeric_cfg(), r, "wire.stream-headers", "[wire.stream-headers] client b#0 conn 0: expected content-type text/event-stream (charset, if any, utf-8), no content-length, and over HTTP/2 no connection-specific fields, saw connection keep-alive over HTTP/2")
    };
    a_head_held_until_the_first_event => {
        let mut r = numeric();
        let c = conn(&mut r, "idle#0", 0);
        c.head_us = Some(ms(3200));
        for f in &mut c.frames {
            f.at_us = f.at_us.max(ms(3200));
        }
        Case::one(numeric_cfg(), r, "wire.open-time", "[wire.open-time] client idle#0 conn 0: expected the response head within 2000 ms of sending the request, saw the head after 3000 ms")
    };
    connection_open_held_until_the_first_event => {
        let mut r = numeric();
        let c = conn(&mut r, "idle#0", 0);
        for f in &mut c.frames {
            f.at_us = f.at_us.max(ms(2500));
        }
        Case::one(numeric_cfg(), r, "wire.open-time", "[wire.open-time] client idle#0 conn 0 byte 12: expected the response head and connection_open within 2000 ms of sending the request, saw the head after 1 ms, its first frame (connection_open) after 2300 ms")
            .also(&["heartbeat.interval"])
    };
    no_head_for_longer_than_the_bound => {
        let mut r = numeric();
        let c = conn(&mut r, "b#0", 0);
        c.head_us = None;
        c.status = None;
        c.frames.clear();
        c.end = ConnEnd::ConnectFailed { error: "head timeout".into() };
        c.ended_us = ms(16_001);
        Case::one(numeric_cfg(), r, "wire.open-time", "[wire.open-time] client b#0 conn 0: expected the response head within 2000 ms of sending the request, saw no head after 16000 ms")
            .also(&["delivery.lost-ack"])
    };
    events_delivered_one_behind => {
        Case::one(trickle_cfg(), trickle(&[Some(2502), Some(4002), Some(5503), None]), "wire.event-latency", "[wire.event-latency] client tr#0 conn 0 seq 1 marker m1 byte 62: expected each event of a slow trickle decodable within 750 ms of its publish being acknowledged, saw decoded 1501 ms after its ack (acknowledged at 1001 ms); it arrived with the next write (acknowledged at 2501 ms): delivered one behind (and 3 later writes of this client late too)")
            .also(&["delivery.lost-ack"])
    };
    events_held_by_a_compressor => {
        let mut r = trickle(&[None, None, None, None]);
        conn(&mut r, "tr#0", 0).headers.insert("content-encoding".into(), "gzip".into());
        Case::one(trickle_cfg(), r, "wire.event-latency", "[wire.event-latency] client tr#0 conn 0 seq 1 marker m1: expected each event of a slow trickle decodable within 750 ms of its publish being acknowledged, saw never decoded, though the stream stayed open 6999 ms after its ack (acknowledged at 1001 ms); the stream is compressed (content-encoding gzip): a compressor that does not flush after each event holds them (and 3 later writes of this client late too)")
            .also(&["delivery.lost-ack"])
    };
    events_in_a_burst => {
        Case::one(trickle_cfg(), trickle(&[Some(5600), Some(5601), Some(5602), Some(5603)]), "wire.event-latency", "[wire.event-latency] client tr#0 conn 0 seq 1 marker m1 byte 62: expected each event of a slow trickle decodable within 750 ms of its publish being acknowledged, saw decoded 4599 ms after its ack (acknowledged at 1001 ms); it arrived in a burst of 4 events within 20 ms (and 2 later writes of this client late too)")
    };
    lost_answer_delivered_to_all_or_none_is_clean => {
        // Nowhere; everywhere under one seq; a retry's ack under the seq delivered.
        for r in [lost_answer(&[], &[], None, true), lost_answer(&[6], &[6], None, true), lost_answer(&[6], &[6], Some(6), true)] {
            Case::clean(numeric_cfg(), r).assert();
        }
        Case::clean(numeric_cfg(), lost_answer(&[7], &[7], None, true))
    };
    lost_answer_delivered_to_some => Case::one(numeric_cfg(), lost_answer(&[6], &[], None, true), "delivery.indeterminate", "[delivery.indeterminate] client b#0 conn 0 seq 6 marker u1: expected seq 6 (marker u1, fate unknown: publisher 0 lost the answer at 155 ms (connection_lost); no answer in 3 attempt(s) with key u1) delivered, as a#0 received it at conn 1 byte 162, saw never delivered although the client was owed it and read past it; stream ended by the scenario's end at 1500 ms");
    lost_answer_skipped_inside_a_connection => Case::one(numeric_cfg(), lost_answer(&[7], &[], None, true), "delivery.indeterminate", "[delivery.indeterminate] client b#0 conn 0 seq 7 marker u1: expected seq 7 (marker u1, fate unknown: publisher 0 lost the answer at 155 ms (connection_lost); no answer in 3 attempt(s) with key u1) delivered, as a#0 received it at conn 1 byte 162, saw never delivered although the client was owed it and read past it; stream ended by the scenario's end at 1500 ms");
    lost_answer_committed_twice => Case::one(numeric_cfg(), lost_answer(&[6, 7], &[6, 7], None, true), "delivery.indeterminate", "[delivery.indeterminate] client a#0 conn 1 seq 7 marker u1 byte 212: expected marker u1 committed once, under seq 6 only (publisher 0 lost the answer at 155 ms (connection_lost); no answer in 3 attempt(s) with key u1), saw marker u1 under seq 6 (a#0 at conn 1 byte 162) and under seq 7 (a#0 at conn 1 byte 212): committed twice");
    retried_write_committed_twice => Case::one(numeric_cfg(), lost_answer(&[6, 7], &[6, 7], Some(7), true), "delivery.indeterminate", "[delivery.indeterminate] client a#0 conn 1 seq 6 marker u1 byte 162: expected marker u1 committed once, under seq 7 only (publisher 0 lost the answer at 155 ms (connection_lost); acked by attempt 2 with key u1), saw marker u1 under seq 7 (its ack) and under seq 6 (a#0 at conn 1 byte 162): committed twice");
    opaque_lost_answer_to_all_or_none_is_clean => {
        Case::clean(opaque_cfg(), opaque_lost_answer(false, false, false)).assert();
        Case::clean(opaque_cfg(), opaque_lost_answer(true, true, false))
    };
    opaque_lost_answer_delivered_to_some => Case::one(opaque_cfg(), opaque_lost_answer(true, false, false), "delivery.indeterminate", "[delivery.indeterminate] client b#0 conn 0 marker u1: expected marker u1 (marker u1, fate unknown: publisher 0 lost the answer at 131 ms (no_answer); no answer in 1 attempt(s)) delivered, as a#0 received it at conn 1 byte 162, saw never delivered although the client was owed it and read on after it; stream ended by the scenario's end at 1500 ms");
    opaque_lost_answer_out_of_place => Case::one(opaque_cfg(), opaque_lost_answer(true, true, true), "delivery.consistent", "[delivery.consistent] client b#0 conn 0 marker y2 byte 262: expected marker y2 before marker u1, the order a#0 saw, saw marker y2 after marker u1");
    lost_answer_without_a_cut_on_purpose => Case::one(numeric_cfg(), lost_answer(&[], &[], None, false), "delivery.publish-acked", "[delivery.publish-acked] marker u1: expected a 2xx ack for the publish of 1 event(s), saw no answer in 3 attempt(s) (connection_lost: connection reset): the write's fate is unknown");
    // A resume-id probe whose profile declares one answer and gets another (more
    // cases: resume_ids.rs).
    declared_answer_mismatch => {
        let mut c = Conn::new(0, 0).cursor("garbage").end(ConnEnd::ServerClosed, 2);
        c.status = Some(400);
        let mut r = Recording::default();
        r.transcripts.push(client("resumed#0", StreamKind::Events, &["j1"], vec![c]));
        r.expect.resume_ids.push(harness_model::ResumeIdProbe {
            client: cid("resumed#0"),
            case: harness_model::IdCase::Garbage,
            cursor: "garbage".into(),
            claim: Some(harness_model::IdAnswer::LiveOnly),
            had: vec!["h0".into()],
            away: vec!["a0".into()],
            live: vec!["l0".into()],
            history: None,
            reset_event: None,
        });
        Case::one(opaque_cfg(), r, "resume.declared-answer", "[resume.declared-answer] client resumed#0 conn 0: expected profile claims garbage_id = live-only (resuming from garbage), saw error-status: the server answered status 400")
    };
    fast_held_back_by_stalled_readers => Case::one(numeric_cfg(), beside_stalled_readers(3000), "delivery.fast-not-held-back", "[delivery.fast-not-held-back] expected fast readers' publish → deliver p99 while 2 slow readers stalled (305 ms to 705 ms) at most 1020 ms (4 × the baseline p99 5 ms over 40 deliveries + 1000 ms), saw p99 3000 ms over 80 deliveries");
}

/// The clean numeric scenario plus `tr#0`, resuming job j2's task stream (whose
/// terminal event is seq 9) from `cursor`, answered `204 No Content`.
fn task_resumed_204(cursor: &str) -> Recording {
    let mut r = numeric();
    let mut c = Conn::new(0, 2000)
        .cursor(cursor)
        .end(ConnEnd::ServerClosed, 2001);
    c.status = Some(204);
    c.retries.clear();
    c.headers.clear();
    c.body_bytes = 0;
    r.transcripts
        .push(client("tr#0", StreamKind::Task, &["j2"], vec![c]));
    r.expect
        .task_terminal
        .insert(cid("tr#0"), harness_model::CloseReason::TaskCompleted);
    r
}

/// A stalled-reader probe: two clients, buffers filled at 2 s, a 5 s bound, 500 ms
/// heartbeats (so a 2 s slack): freed by 9 s.
fn stalled_probe() -> harness_model::StalledReaderProbe {
    harness_model::StalledReaderProbe {
        gauge: "spine_active_streams".into(),
        baseline: 0.0,
        counter: Some("spine_slow_consumer_closes_total".into()),
        counter_baseline: Some(0.0),
        clients: 2,
        stalled: 2,
        fill_bytes: 1 << 20,
        published_bytes: 1 << 20,
        filled_us: Some(ms(2000)),
        write_stall_ms: 5000,
        heartbeat_ms: 500,
    }
}

#[test]
fn every_contract_of_the_judged_families_has_a_case_and_every_emitted_id_exists() {
    let contracts = Contracts::builtin();
    let judged = [
        "resume",
        "delivery",
        "lifecycle",
        "heartbeat",
        "version",
        "framing",
        "durability",
        "liveness",
        "wire",
    ];
    let mut covered = BTreeSet::new();
    for (name, case) in all_cases() {
        for f in case.run() {
            assert!(
                contracts.get(&f.contract.0).is_some(),
                "{name} emitted unknown {}",
                f.contract
            );
            covered.insert(f.contract.0.clone());
        }
    }
    for c in contracts.all().filter(|c| judged.contains(&c.id.family())) {
        assert!(covered.contains(&c.id.0), "no case produces {}", c.id);
    }
}

#[test]
fn families_not_judged_are_skipped_and_lenient_mode_reports_no_framing() {
    let mut r = numeric_with(&[1, 2, 4, 5]);
    conn(&mut r, "b#0", 0).violations.push(WireIssue {
        offset: 40,
        kind: harness_model::WireViolation::InvalidUtf8,
        detail: "byte 0xff".into(),
    });
    let mut cfg = numeric_cfg();
    cfg.families = vec![harness_model::Family::Delivery];
    assert!(Case::clean(cfg, r.clone()).run().is_empty());
    let mut cfg = numeric_cfg();
    cfg.strict = false;
    let ids: Vec<String> = Case::clean(cfg, r)
        .run()
        .into_iter()
        .map(|f| f.contract.0)
        .collect();
    assert_eq!(ids, ["resume.no-gap"]);
}

#[test]
fn a_paused_reader_on_a_heartbeating_server_is_not_a_silence() {
    // A 5 s connection: nothing read for 3 s, then the buffered heartbeats arrive at once.
    let mut r = numeric();
    // The server stamped them a second apart.
    let c = Conn::new(0, 200)
        .open(201, "events", 5, Value::Null)
        .hb(1200, 9)
        .hb_stamped(4200, 2200, 9)
        .hb_stamped(4201, 3200, 9)
        .hb_stamped(4202, 4200, 9)
        .end(ConnEnd::Finished, 5000);
    r.transcripts.push(client(
        "slow#0",
        StreamKind::Events,
        &["quiet"],
        vec![c.clone()],
    ));
    Case::clean(numeric_cfg(), r.clone()).assert();
    // On a client the scenario keeps idle it is a stall of the harness: the server's
    // clock shows no silence, so a correct server does not fail.
    r.expect.idle.push(cid("slow#0"));
    Case::clean(numeric_cfg(), r.clone()).assert();
    // The same receive times with the server's own stamps 3 s apart are judged.
    let mut late = c;
    for (f, stamp) in late.frames[2..].iter_mut().zip([4200, 4201, 4202]) {
        if let FrameKind::Heartbeat { fields } = &mut f.kind {
            fields["server_time"] = json!(format!(
                "2025-01-01T00:00:0{}.{:03}Z",
                stamp / 1000,
                stamp % 1000
            ));
        }
    }
    tr(&mut r, "slow#0").connections = vec![late];
    let found = Case::clean(numeric_cfg(), r).run();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].message(),
        "[heartbeat.interval] client slow#0 conn 0 byte 112: expected no silence above 2 x heartbeat_ms = 2000 ms, saw 3000 ms between consecutive heartbeats by their server_time"
    );
}

#[test]
fn findings_are_sorted_and_deterministic() {
    let mut r = numeric_with(&[1, 3, 5]);
    r.publish_failures.push(PublishFailure {
        markers: vec!["m7".into()],
        status: None,
        error: "reset".into(),
    });
    conn(&mut r, "a#0", 1).headers.clear();
    let case = Case::clean(numeric_cfg(), r);
    let first = case.run();
    assert_eq!(first, case.run());
    let keys: Vec<(String, Option<String>)> = first
        .iter()
        .map(|f| {
            (
                f.contract.0.clone(),
                f.evidence.client.as_ref().map(|c| c.0.clone()),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(
        first
            .iter()
            .map(|f| f.contract.0.as_str())
            .collect::<Vec<_>>(),
        [
            "delivery.publish-acked",
            "lifecycle.headers",
            "resume.no-gap",
            "resume.no-gap"
        ]
    );
}

#[test]
fn a_rewound_cursor_may_replay_what_the_client_had() {
    // a#0 resumes from cursor 1 although it had 1..3: 2 and 3 come again, legitimately.
    let mut r = numeric();
    let a1 = Conn::new(1, 150)
        .cursor("1")
        .open(152, "events", 4, json!(1))
        .data(153, 2, "j1")
        .data(154, 3, "j1")
        .data(155, 4, "j1")
        .data(162, 5, "j1")
        .end(ConnEnd::Finished, 1500);
    tr(&mut r, "a#0").connections[1] = a1;
    Case::clean(numeric_cfg(), r).assert();
}

#[test]
fn measure_reports_each_metric_from_the_recording() {
    let mut r = numeric();
    // A reconnect that replays 100 acked writes in 50 ms.
    let acks: Vec<_> = (10..110).map(|s| ack(s, "k", 2000)).collect();
    r.acks.extend(acks);
    let c0 = Conn::new(0, 1990)
        .open(1991, "events", 9, Value::Null)
        .end(cut(), 1995);
    let c1 = (10..110)
        .fold(
            Conn::new(1, 2100)
                .cursor("9")
                .open(2101, "events", 109, json!(9)),
            |c, s| c.data(2101 + (s - 9) / 2, s, "k"),
        )
        .end(ConnEnd::Finished, 4000);
    r.transcripts
        .push(client("k#0", StreamKind::Events, &["k"], vec![c0, c1]));
    let h = crate::measure(&numeric_cfg(), &r);
    let ct = &h[&harness_model::Metric::ConnectToOpen];
    assert_eq!(
        ct.min(),
        1000,
        "open frames arrive 1 ms after the request in the base recording"
    );
    let p2d = &h[&harness_model::Metric::PublishToDeliver];
    assert!(p2d.len() >= 100);
    let rc = &h[&harness_model::Metric::ReconnectToCaughtUp];
    assert_eq!(rc.len(), 2, "a#0 and k#0 reconnected and had to catch up");
    assert_eq!(rc.max(), hdr_round(51_000));
    let rate = &h[&harness_model::Metric::ReplayRate];
    assert_eq!(rate.len(), 1);
    assert_eq!(rate.max(), hdr_round(2000));
}

/// The value an HDR histogram with 3 significant figures reports for `v`.
fn hdr_round(v: u64) -> u64 {
    let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("valid");
    h.record(v).expect("in range");
    h.max()
}

#[test]
fn the_view_derives_each_publishers_order_once() {
    let rec = opaque();
    let contracts = Contracts::builtin();
    let cfg = opaque_cfg();
    let ctx = crate::view::Ctx::new(&contracts, &cfg, &rec);
    let markers = |p: u32| -> Vec<&str> {
        ctx.order.lists[&p]
            .iter()
            .map(|a| a.marker.as_str())
            .collect()
    };
    assert_eq!(markers(0), ["x1", "x2", "x3", "x4"]);
    assert_eq!(markers(1), ["y1", "y2"]);
    assert_eq!(ctx.order.pos["y2"], (1, 1));
    assert_eq!(ctx.order.pos["x3"], (0, 2));
}

#[test]
fn the_view_owes_by_the_model_rule() {
    let mut rec = opaque();
    // b#0 comes in from now with an opaque cursor, subscribed at 102 ms: only the
    // writes sent from then on are owed, whatever their place relative to the cursor.
    let b = tr(&mut rec, "b#0");
    b.from_start = false;
    b.connections[0].cursor = Some("1:0".into());
    b.connections[0].head_us = Some(ms(102));
    let contracts = Contracts::builtin();
    let cfg = opaque_cfg();
    let ctx = crate::view::Ctx::new(&contracts, &cfg, &rec);
    let owed = |name: &str| -> Vec<&str> {
        let c = ctx.client(&cid(name)).expect("client exists");
        rec.acks
            .iter()
            .filter(|a| c.owed(a, cfg.ids))
            .map(|a| a.marker.as_str())
            .collect()
    };
    assert_eq!(
        owed("a#0").len(),
        6,
        "from the start, no cursor: everything"
    );
    assert_eq!(owed("b#0"), ["y1", "x2", "x3", "y2", "x4"]);
}

#[test]
fn the_view_derives_writes_that_vanished_in_a_restart() {
    let mut rec = numeric();
    // Seq 6 is acked at 131 ms, the target restarts at 140 ms, a#0 is back at 151 ms
    // and reads to the end: nobody ever gets seq 6.
    rec.acks.push(ack(6, "j1", 130));
    rec.restarts.push(ms(140));
    let contracts = Contracts::builtin();
    let cfg = numeric_cfg();
    let ctx = crate::view::Ctx::new(&contracts, &cfg, &rec);
    assert_eq!(ctx.vanished.iter().copied().collect::<Vec<_>>(), ["m6"]);
    // Durability not judged: nothing is set aside for it.
    let delivery_only = crate::CheckConfig {
        families: vec![harness_model::Family::Delivery],
        ..numeric_cfg()
    };
    let ctx = crate::view::Ctx::new(&contracts, &delivery_only, &rec);
    assert!(ctx.vanished.is_empty());
}

/// A workload recording: groups `fast` and `slow` (10 B/s for 1 s, rcvbuf 4096), a
/// backlog ack at 0 ms and live acks every 10 ms from 100 ms.
fn facts_recording() -> Recording {
    let mut acks = vec![oack("bl", "j1", 0, 0)];
    acks.extend((0..10).map(|i| oack(&format!("l{i}"), "j1", 0, 100 + 10 * i)));
    // fast#0 gets each write 5 ms after it was sent; slow#0 gets the first two only,
    // 100 ms late, within its slow second.
    let fast = (0..10)
        .fold(Conn::new(0, 50), |c, i| {
            c.odata(105 + 10 * i, &format!("{i}"), &format!("l{i}"), "j1")
        })
        .end(ConnEnd::Finished, 2000);
    let slow = (0..2)
        .fold(Conn::new(0, 50), |c, i| {
            c.odata(200 + 10 * i, &format!("{i}"), &format!("l{i}"), "j1")
        })
        .end(ConnEnd::Finished, 2000);
    Recording {
        transcripts: vec![
            client("fast#0", StreamKind::Events, &["j1"], vec![fast]),
            client("slow#0", StreamKind::Events, &["j1"], vec![slow]),
        ],
        acks,
        workload: Some(harness_model::WorkloadPlan {
            live_from_us: ms(100),
            groups: vec![
                harness_model::GroupPlan {
                    name: "fast".into(),
                    ..Default::default()
                },
                harness_model::GroupPlan {
                    name: "slow".into(),
                    bytes_per_sec: 10,
                    slow_for_ms: 1000,
                    rcvbuf: 4096,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        ..Recording::default()
    }
}

#[test]
fn facts_come_from_the_recording_alone() {
    let f = crate::facts(&facts_recording());
    // 10 live writes from the first send (100 ms) to the last ack (191 ms); the backlog
    // write at 0 ms is left out.
    assert_eq!(f["publish_rate_per_s"], json!(110.0));
    assert_eq!(f["fast.publish_to_deliver_p99_ms"], json!(5.0));
    assert_eq!(f["slow.publish_to_deliver_p99_ms"], json!(100.0));
    // All 11 acks were in by the end of the slow second (1051 ms); 2 frames of 50 bytes
    // read, ending at byte 112.
    assert_eq!(f["slow#0.lag_bytes"], json!(11 * 50 - 112));
    assert!(!f.contains_key("fast#0.lag_bytes"));
    assert_eq!(f.len(), 4, "{f:?}");
}

#[test]
fn facts_count_the_writes_whose_answer_was_lost() {
    let f = crate::facts(&lost_answer(&[6], &[6], None, true));
    assert_eq!(f["writes_of_unknown_fate"], json!(1));
    assert_eq!(f["writes_resolved_by_retry"], json!(0));
    assert_eq!(f["publish_attempts_max"], json!(3));
    let f = crate::facts(&lost_answer(&[6], &[6], Some(6), true));
    assert_eq!(f["writes_resolved_by_retry"], json!(1));
    assert!(!crate::facts(&facts_recording()).contains_key("writes_of_unknown_fate"));
}

#[test]
fn facts_need_a_workload_plan_and_two_groups_for_latency() {
    let mut rec = facts_recording();
    if let Some(w) = &mut rec.workload {
        w.groups.truncate(1);
    }
    let f = crate::facts(&rec);
    assert!(!f.keys().any(|k| k.ends_with("_p99_ms")), "{f:?}");
    rec.workload = None;
    assert!(crate::facts(&rec).is_empty());
}

/// A job read back whole, as the spine serves it: `job_started`, progress 1..=`steps`
/// (`task_failed` at `fail`), an artifact when asked, then `task_completed` with the
/// hash of a receipt whose `events_sha256` is recomputed the spine's way.
fn job_read_back(steps: u64, fail: Option<u64>, artifact: bool) -> harness_model::JobReadBack {
    use sha2::{Digest, Sha256};
    let ev = |seq: u64, t: &str, payload: Value| {
        json!({"seq": seq, "job_id": "j9", "event_type": t, "ts": "2026-01-01T00:00:00.000Z",
               "payload": payload, "correlation_id": "c"})
    };
    let mut events = vec![ev(1, "job_started", json!({}))];
    for i in 1..=steps {
        if fail == Some(i) {
            events.push(ev(i + 1, "task_failed", json!({"error": "x"})));
            break;
        }
        events.push(ev(
            i + 1,
            "progress_update",
            json!({"step": i, "total": steps}),
        ));
    }
    let mut receipt = None;
    if fail.is_none() {
        if artifact {
            let s = events.len() as u64 + 1;
            events.push(ev(s, "artifact_written", json!({"name": "a", "bytes": 2})));
        }
        let covered = crate::jobs::events_sha256(&events);
        let body = json!({"job_id": "j9", "events_sha256": covered, "event_count": events.len()})
            .to_string();
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        let s = events.len() as u64 + 1;
        events.push(ev(s, "task_completed", json!({"receipt_hash": hash})));
        receipt = Some(harness_model::ReceiptRead {
            status: 200,
            header_sha256: Some(hash),
            body,
        });
    }
    harness_model::JobReadBack {
        job: "j9".into(),
        reader: Some(cid("t#0")),
        steps: steps as u32,
        fail_at_step: fail.map(|f| f as u32),
        artifact,
        events: events.iter().map(Value::to_string).collect(),
        receipt,
    }
}

fn jobs_rec(job: harness_model::JobReadBack, families: &[&str]) -> (crate::CheckConfig, Recording) {
    let mut cfg = numeric_cfg();
    cfg.families = families.iter().map(|f| f.parse().unwrap()).collect();
    let rec = Recording {
        jobs: vec![job],
        ..Recording::default()
    };
    (cfg, rec)
}

fn contracts_of(cfg: &crate::CheckConfig, rec: &Recording) -> Vec<String> {
    crate::check(&Contracts::builtin(), cfg, rec)
        .iter()
        .map(|f| {
            format!(
                "{}: {} / {}",
                f.contract.0, f.evidence.expected, f.evidence.seen
            )
        })
        .collect()
}

#[test]
fn a_job_read_back_as_asked_for_with_a_receipt_that_recomputes_is_clean() {
    for job in [
        job_read_back(5, None, false),
        job_read_back(3, None, true),
        job_read_back(4, Some(2), false),
        job_read_back(0, None, false),
    ] {
        let (cfg, rec) = jobs_rec(job, &["lifecycle", "durability"]);
        assert_eq!(contracts_of(&cfg, &rec), Vec::<String>::new());
    }
}

#[test]
fn a_skipped_or_extra_task_event_is_a_task_events_finding_naming_the_place() {
    let mut job = job_read_back(5, None, false);
    job.events.remove(2); // progress step 2
    let (cfg, rec) = jobs_rec(job, &["lifecycle"]);
    let found = contracts_of(&cfg, &rec);
    assert!(
        found.iter().any(|f| f.starts_with("lifecycle.task-events")
            && f.contains("event 3 progress_update step 2")
            && f.ends_with("event 3 progress_update step 3")),
        "{found:?}"
    );
    // An artifact that was not asked for comes where task_completed was due.
    let mut job = job_read_back(2, None, true);
    job.artifact = false;
    let (cfg, rec) = jobs_rec(job, &["lifecycle"]);
    let found = contracts_of(&cfg, &rec);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].ends_with("event 4 artifact_written"), "{found:?}");
    // A failed job must stop at task_failed.
    let mut job = job_read_back(4, Some(2), false);
    job.fail_at_step = Some(3);
    let (cfg, rec) = jobs_rec(job, &["lifecycle"]);
    assert!(contracts_of(&cfg, &rec)[0].starts_with("lifecycle.task-events"));
}

#[test]
fn a_receipt_that_does_not_recompute_is_a_finding_in_lifecycle_and_durability() {
    // The header and task_completed agree with each other, not with the bytes served.
    let mut wrong_hash = job_read_back(3, None, false);
    wrong_hash.receipt.as_mut().unwrap().body.push('\n');
    // The receipt's events_sha256 is not the events' digest.
    let wrong_events = events_hash_wrong();
    for (job, what) in [
        (wrong_hash, "X-Receipt-SHA256"),
        (wrong_events, "events_sha256"),
    ] {
        let (cfg, rec) = jobs_rec(job.clone(), &["lifecycle"]);
        let found = contracts_of(&cfg, &rec);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("lifecycle.task-receipt"), "{found:?}");
        assert!(found[0].contains(what), "{found:?}");
        let (cfg, rec) = jobs_rec(job, &["durability"]);
        let found = contracts_of(&cfg, &rec);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("durability.receipts-recomputed"),
            "{found:?}"
        );
    }
}

#[test]
fn a_completed_job_missing_from_the_integrity_report_is_a_finding() {
    let (cfg, mut rec) = jobs_rec(job_read_back(2, None, true), &["durability"]);
    rec.integrity = Some(json!({"items": [
        {"kind": "receipt", "job_id": "other", "status": "MATCH"}
    ]}));
    let found = contracts_of(&cfg, &rec);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("a receipt item for completed job j9"),
        "{found:?}"
    );
    rec.integrity = Some(json!({"items": [
        {"kind": "receipt", "job_id": "j9", "status": "MATCH"}
    ]}));
    assert_eq!(contracts_of(&cfg, &rec), Vec::<String>::new());
}

/// `rec` with every data frame carrying `content(marker)` as its data and the writes'
/// content recorded as published (`pointer` None: text).
fn with_content(
    mut rec: Recording,
    pointer: Option<&str>,
    content: impl Fn(&str) -> String,
) -> Recording {
    let mut by_marker = std::collections::BTreeMap::new();
    for t in &mut rec.transcripts {
        for f in t.connections.iter_mut().flat_map(|c| &mut c.frames) {
            if let FrameKind::Data(d) = &f.kind
                && let Some(m) = &d.marker
            {
                f.data = content(m);
            }
        }
    }
    for a in &rec.acks {
        let data = content(&a.marker);
        let published = match pointer {
            None => data,
            Some(p) => serde_json::from_str::<Value>(&data).unwrap()[&p[1..]].to_string(),
        };
        by_marker.insert(a.marker.clone(), published);
    }
    rec.published = Some(harness_model::Published {
        pointer: pointer.map(str::to_owned),
        by_marker,
    });
    rec
}

/// Awkward text: LF, a blank line, leading spaces, a `data:`-looking line, UTF-8.
fn awkward(m: &str) -> String {
    format!("{m} one\n\n   two\ndata: three\nßü→")
}

#[test]
fn content_as_published_is_clean_for_text_and_json() {
    Case::clean(opaque_cfg(), with_content(opaque(), None, awkward)).assert();
    let json = |m: &str| {
        format!(r#"{{"seq":1,"payload":{{"pad":"a\n\r b","marker":"{m}"}},"job_id":"j1"}}"#)
    };
    Case::clean(
        numeric_cfg(),
        with_content(numeric(), Some("/payload"), json),
    )
    .assert();
}

#[test]
fn text_carried_by_sse_may_turn_cr_and_crlf_into_lf() {
    let mut rec = with_content(opaque(), None, |m| format!("{m} a\nb\nc"));
    let by = &mut rec.published.as_mut().unwrap().by_marker;
    for v in by.values_mut() {
        *v = v.replacen("a\nb\nc", "a\r\nb\rc", 1);
    }
    Case::clean(opaque_cfg(), rec).assert();
}

#[test]
fn a_trimmed_or_reencoded_copy_is_a_content_finding_naming_the_byte() {
    let mut rec = with_content(opaque(), None, awkward);
    let f = &mut conn(&mut rec, "b#0", 0).frames;
    let x = f
        .iter_mut()
        .find(|f| matches!(&f.kind, FrameKind::Data(d) if d.marker.as_deref() == Some("x2")))
        .unwrap();
    x.data = x.data.replace("   two", "two");
    let found = Case::clean(opaque_cfg(), rec).run();
    assert_eq!(found.len(), 1, "{found:?}");
    let e = &found[0].evidence;
    assert_eq!(found[0].contract.0, "delivery.content-intact");
    assert_eq!(e.client, Some(cid("b#0")));
    assert_eq!(e.marker.as_deref(), Some("x2"));
    // "x2 one\n\n" is 8 bytes: the spaces were the 9th.
    assert!(e.seen.contains("differ at byte 8"), "{}", e.seen);

    let json = |m: &str| format!(r#"{{"seq":1,"payload":{{"pad":"ü","marker":"{m}"}}}}"#);
    let mut rec = with_content(numeric(), Some("/payload"), json);
    let f = &mut conn(&mut rec, "a#0", 1).frames;
    for f in f
        .iter_mut()
        .filter(|f| matches!(f.kind, FrameKind::Data(_)))
    {
        f.data = f.data.replace('ü', "?");
    }
    let found = Case::clean(numeric_cfg(), rec).run();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].evidence.seen.contains("copies differ"),
        "{:?}",
        found[0]
    );
    assert!(
        found[0].evidence.seen.contains("differ at byte"),
        "{:?}",
        found[0]
    );
}

/// A completed job whose receipt (and the hashes announcing it) agree, but whose
/// `events_sha256` is not the digest of the events streamed.
fn events_hash_wrong() -> harness_model::JobReadBack {
    let mut job = job_read_back(3, None, false);
    let r = job.receipt.as_mut().unwrap();
    r.body = r
        .body
        .replace("\"events_sha256\":\"", "\"events_sha256\":\"0");
    let fix = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(r.body.as_bytes()));
    r.header_sha256 = Some(fix.clone());
    let last = job.events.len() - 1;
    let mut done: Value = serde_json::from_str(&job.events[last]).unwrap();
    done["payload"]["receipt_hash"] = json!(fix);
    job.events[last] = done.to_string();
    job
}

/// Issue 12 hole 10: writes seq 1..=100 of j1, sent every 10 ms from 110 ms. Two
/// `stalled` readers stop after their 20th event (at 305 ms) for 400 ms; two `fast`
/// readers get each write 5 ms after it was sent, except that a write sent while the
/// others are stopped reaches them `held_back` ms after it was sent (and nothing
/// overtakes it).
fn beside_stalled_readers(held_back: u64) -> Recording {
    let acks: Vec<harness_model::Ack> = (1..=100).map(|s| ack(s, "j1", 100 + 10 * s)).collect();
    let sent = |s: u64| 100 + 10 * s;
    let reader = |delay: &dyn Fn(u64) -> u64| {
        let mut at = 0;
        let mut c = Conn::new(0, 0).open(1, "events", 0, Value::Null);
        for s in 1..=100 {
            at = u64::max(at, sent(s) + delay(s));
            c = c.data(at, s, "j1");
        }
        c.end(ConnEnd::Finished, at + 10)
    };
    let fast = |s: u64| {
        if (305..=705).contains(&sent(s)) {
            held_back
        } else {
            5
        }
    };
    let stalled = |s: u64| {
        if s <= 20 {
            5
        } else {
            710 - sent(s).min(710) + s
        }
    };
    let group = |name: &str, pause_after_events, pause_ms| harness_model::GroupPlan {
        name: name.into(),
        pause_after_events,
        pause_ms,
        ..Default::default()
    };
    Recording {
        transcripts: vec![
            client("fast#0", StreamKind::Events, &["j1"], vec![reader(&fast)]),
            client("fast#1", StreamKind::Events, &["j1"], vec![reader(&fast)]),
            client(
                "stalled#0",
                StreamKind::Events,
                &["j1"],
                vec![reader(&stalled)],
            ),
            client(
                "stalled#1",
                StreamKind::Events,
                &["j1"],
                vec![reader(&stalled)],
            ),
        ],
        acks,
        workload: Some(harness_model::WorkloadPlan {
            live_from_us: 0,
            groups: vec![group("fast", 0, 0), group("stalled", 20, 400)],
            writes: 100,
            ..Default::default()
        }),
        ..Recording::default()
    }
}

/// An idle client through a subscriber proxy with latency 800 ± 300 ms: its first
/// heartbeat arrives 2.5 s after `connection_open` (limit 2 s), in a chunk the proxy
/// held `held_ms` (the open's chunk was held 500 ms).
fn through_latency(held_ms: f64) -> Recording {
    use harness_model::network::{Action, LogSnapshot, ToxicEvent};
    let specs = sse_toxics::parse_toml(
        "[[toxics]]\npath = \"subscriber\"\nkind = \"latency\"\nlatency = 800\njitter = 300\n",
    )
    .unwrap();
    let ev = |at_ms: f64, action: Action| ToxicEvent {
        at_ms,
        conn: 1,
        toxic: Some("latency_downstream".into()),
        stream: Some(harness_model::network::Stream::Downstream),
        action,
    };
    let delayed = |held_ms: f64| Action::Delayed {
        bytes: 100,
        delay_ms: held_ms as u64,
        held_ms,
    };
    let mut r = numeric();
    let mut c = Conn::new(0, 199)
        .open(201, "events", 5, Value::Null)
        .hb(2701, 9)
        .hb(3700, 9)
        .end(ConnEnd::Finished, 3800);
    c.local_port = Some(4000);
    r.transcripts
        .push(client("net#0", StreamKind::Events, &["quiet"], vec![c]));
    r.expect.idle.push(cid("net#0"));
    r.network.subscriber = Some(harness_model::ProxyLog {
        path: sse_toxics::ProxyPath::Subscriber,
        toxics: sse_toxics::for_path(&specs, sse_toxics::ProxyPath::Subscriber),
        live_ms: None,
        log: LogSnapshot {
            events: vec![
                ToxicEvent {
                    toxic: None,
                    stream: None,
                    ..ev(
                        199.0,
                        Action::Opened {
                            client: "127.0.0.1:4000".parse().unwrap(),
                        },
                    )
                },
                ev(200.5, delayed(500.0)),
                ev(2700.5, delayed(held_ms)),
                ev(3699.5, delayed(700.0)),
            ],
            dropped: 0,
        },
    });
    r
}

#[test]
fn a_silence_the_proxy_made_is_not_held_against_the_server_and_one_it_did_not_is_named() {
    // Held 1000 ms against the open's least 500 ms: the gap widens by 500 ms, exactly
    // what the 2.5 s needs.
    Case::clean(numeric_cfg(), through_latency(1000.0)).assert();
    // Held 900 ms: 400 ms of the 2.5 s were the network's, 2.1 s the server's.
    let found = Case::clean(numeric_cfg(), through_latency(900.0)).run();
    assert_eq!(found.len(), 1, "{found:?}");
    let m = found[0].message();
    assert!(
        m.contains("saw 2500 ms of silence")
            && m.contains("held the chunks that ended it at most 900.0 ms")
            && m.contains("latency 800 ± 300 ms declared"),
        "{m}"
    );
}
