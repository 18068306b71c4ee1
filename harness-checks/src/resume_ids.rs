//! `resume.*` on the resume-id probes: a client resumed from an id the server cannot
//! place (garbage, never issued, another channel's, evicted, from before a restart).
//! What it got is classified into one of the answers a profile can declare
//! ([`IdAnswer`]), and judged by two rules that hold whatever the profile declares:
//!
//! - no duplicate (`resume.no-duplicate`): an event the client received before it left
//!   is not delivered again when its id has a position after it (every case but
//!   garbage), nor any event twice in one connection;
//! - no silent gap (`resume.no-gap`): unless the server refused (a status), said so (an
//!   `error` event, or the profile's reset event), no event published after the id's
//!   position is skipped while a later one arrives (garbage and never-issued ids have
//!   no position after which events are owed: there, only holes between delivered
//!   events count).
//!
//! Then the profile's claim is compared with the answer (`resume.declared-answer`); a
//! profile that claims nothing gets the answer as a scenario fact instead.

use std::collections::{BTreeMap, BTreeSet};

use harness_model::{
    Evidence, FrameKind, IdAnswer, IdCase, ResumeIdProbe, Transcript, ids, untrusted,
};

use crate::view::{Ctx, at_conn, at_frame, describe_end};

/// What the resumed client got, as one of the declarable answers (None: none of
/// them), and in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The answer, when it is one of the declarable ones.
    pub answer: Option<IdAnswer>,
    /// What the server did, for a person.
    pub text: String,
}

pub(crate) fn check(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for p in &ctx.rec.expect.resume_ids {
        let Some(c) = ctx.client(&p.client) else {
            continue;
        };
        let seen = classify(p, c.t);
        duplicates(p, c.t, &mut found);
        if !refused(p, c.t) {
            gaps(p, c.t, &mut found);
        }
        if let Some(claim) = p.claim
            && seen.answer != Some(claim)
        {
            let what = seen
                .answer
                .map_or("none of the declarable answers".to_owned(), |a| {
                    a.name().to_owned()
                });
            let base = c.t.connections.first().map_or_else(
                || Evidence {
                    client: Some(p.client.clone()),
                    ..Evidence::default()
                },
                |conn| at_conn(&p.client, conn),
            );
            found.push((
                ids::RESUME_DECLARED_ANSWER,
                Evidence {
                    expected: format!(
                        "profile claims {} = {claim} (resuming from {})",
                        p.case.key(),
                        untrusted(&p.cursor)
                    ),
                    seen: format!("{what}: the server {}", seen.text),
                    ..base
                },
            ));
        }
    }
    for (id, e) in found {
        ctx.emit(id, e);
    }
}

/// The scenario facts of the resume-id probes: each case's answer, in words.
pub(crate) fn facts(rec: &harness_model::Recording) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for p in &rec.expect.resume_ids {
        let Some(t) = rec.transcripts.iter().find(|t| t.client == p.client) else {
            continue;
        };
        let s = classify(p, t);
        let answer = s.answer.map_or("other", IdAnswer::name);
        out.insert(
            format!("resume.{}", p.case.key()),
            serde_json::Value::from(format!("{answer}: the server {}", s.text)),
        );
    }
    out
}

/// The publish markers the client received, in order, with the connection and frame.
fn delivered(t: &Transcript) -> Vec<(&str, usize, usize)> {
    let mut out = Vec::new();
    for (ci, c) in t.connections.iter().enumerate() {
        for (fi, f) in c.frames.iter().enumerate() {
            if let FrameKind::Data(d) = &f.kind
                && let Some(m) = d.marker.as_deref()
            {
                out.push((m, ci, fi));
            }
        }
    }
    out
}

/// The error event (or the profile's reset event) the client got, if any.
fn error_event<'a>(p: &ResumeIdProbe, t: &'a Transcript) -> Option<&'a harness_model::Frame> {
    t.connections
        .iter()
        .flat_map(|c| &c.frames)
        .find(|f| f.event == "error" || p.reset_event.as_deref() == Some(f.event.as_str()))
}

/// Whether the server refused or said the history is gone: a status other than 2xx, an
/// error event or the reset event. A gap after that is not silent.
fn refused(p: &ResumeIdProbe, t: &Transcript) -> bool {
    let bad_status = t
        .connections
        .iter()
        .any(|c| !c.status.is_some_and(|s| (200..300).contains(&s)));
    bad_status || error_event(p, t).is_some()
}

/// Classifies what the resumed client got.
pub(crate) fn classify(p: &ResumeIdProbe, t: &Transcript) -> Seen {
    let seen = |answer, text: String| Seen { answer, text };
    let Some(conn) = t.connections.first() else {
        return seen(None, "was never connected to".into());
    };
    match conn.status {
        None => {
            return seen(
                None,
                format!("gave no response ({})", describe_end(&conn.end)),
            );
        }
        Some(s) if !(200..300).contains(&s) => {
            return seen(Some(IdAnswer::ErrorStatus), format!("answered status {s}"));
        }
        Some(_) => {}
    }
    if let Some(f) = error_event(p, t) {
        let data: String = f.data.chars().take(120).collect();
        return seen(
            Some(IdAnswer::ErrorEvent),
            format!("sent an event of type {} ({})", f.event, untrusted(&data)),
        );
    }
    let got: BTreeSet<&str> = delivered(t).into_iter().map(|(m, _, _)| m).collect();
    let count = |list: &[String]| list.iter().filter(|m| got.contains(m.as_str())).count();
    let (had, away, live) = (count(&p.had), count(&p.away), count(&p.live));
    let summary = format!(
        "delivered {had} of the {} events the client had received, {away} of the {} published while it was away and {live} of the {} published after it resumed",
        p.had.len(),
        p.away.len(),
        p.live.len()
    );
    if got.is_empty() {
        return seen(
            Some(IdAnswer::Nothing),
            format!(
                "delivered nothing, not even the {} events published after the stream opened",
                p.live.len()
            ),
        );
    }
    if live < p.live.len() {
        return seen(None, summary);
    }
    let history: BTreeSet<&str> = p
        .had
        .iter()
        .chain(&p.away)
        .map(String::as_str)
        .filter(|m| got.contains(m))
        .collect();
    let held: BTreeSet<&str> = p.held().into_iter().collect();
    let away_set: BTreeSet<&str> = p.away.iter().map(String::as_str).collect();
    if !held.is_empty() && history == held {
        seen(
            Some(IdAnswer::ReplayAll),
            format!(
                "replayed the {} events the channel held from its oldest ({had} of them the client had received), then the live ones",
                held.len()
            ),
        )
    } else if !away_set.is_empty() && history == away_set {
        seen(
            Some(IdAnswer::ReplayAfter),
            format!(
                "delivered the {away} events published after the id's position, then the live ones"
            ),
        )
    } else if history.is_empty() {
        seen(
            Some(IdAnswer::LiveOnly),
            format!("delivered only the {live} events published after the stream opened"),
        )
    } else {
        seen(None, summary)
    }
}

/// `resume.no-duplicate`: nothing twice in a connection; where the id has a position,
/// nothing the client had received before it left.
fn duplicates(
    p: &ResumeIdProbe,
    t: &Transcript,
    found: &mut Vec<(harness_model::KnownContract, Evidence)>,
) {
    let had: BTreeSet<&str> = p.had.iter().map(String::as_str).collect();
    let mut once: BTreeSet<(usize, &str)> = BTreeSet::new();
    let mut again: Vec<(&str, usize, usize)> = Vec::new();
    for (m, ci, fi) in delivered(t) {
        if !once.insert((ci, m)) {
            let conn = &t.connections[ci];
            found.push((
                ids::RESUME_NO_DUPLICATE,
                Evidence {
                    marker: Some(m.to_owned()),
                    expected: "each event once in a connection".into(),
                    seen: format!("marker {m} again"),
                    ..at_frame(&p.client, conn, Some(&conn.frames[fi]))
                },
            ));
        } else if p.case.positioned() && had.contains(m) {
            again.push((m, ci, fi));
        }
    }
    if let Some(&(m, ci, fi)) = again.first() {
        let conn = &t.connections[ci];
        let more = match again.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        found.push((
            ids::RESUME_NO_DUPLICATE,
            Evidence {
                marker: Some(m.to_owned()),
                expected: format!(
                    "none of the {} events the client received before it left: the {} ({}) is positioned after them",
                    p.had.len(),
                    case_name(p.case),
                    untrusted(&p.cursor)
                ),
                seen: format!("marker {m}{more} delivered again"),
                ..at_frame(&p.client, conn, Some(&conn.frames[fi]))
            },
        ));
    }
}

/// `resume.no-gap`: no event after the id's position (or, without one, between two
/// delivered events) skipped while a later one arrives.
fn gaps(
    p: &ResumeIdProbe,
    t: &Transcript,
    found: &mut Vec<(harness_model::KnownContract, Evidence)>,
) {
    let order: Vec<&str> = p
        .had
        .iter()
        .chain(&p.away)
        .chain(&p.live)
        .map(String::as_str)
        .collect();
    let got = delivered(t);
    let got_set: BTreeSet<&str> = got.iter().map(|(m, _, _)| *m).collect();
    let pos = |m: &str| order.iter().position(|o| *o == m);
    let Some(last) = got.iter().filter_map(|(m, _, _)| pos(m)).max() else {
        return;
    };
    let from_position = matches!(p.case, IdCase::Foreign | IdCase::Evicted | IdCase::Restart);
    let start = if from_position {
        p.had.len()
    } else {
        match got.iter().filter_map(|(m, _, _)| pos(m)).min() {
            Some(s) => s,
            None => return,
        }
    };
    let missing: Vec<&str> = order
        .iter()
        .enumerate()
        .take(last)
        .skip(start)
        .filter(|(_, m)| !got_set.contains(*m))
        .map(|(_, m)| *m)
        .collect();
    let Some(first) = missing.first() else {
        return;
    };
    // The first delivery after the first missing event.
    let at = pos(first).unwrap_or(0);
    let Some(&(next, ci, fi)) = got
        .iter()
        .filter(|(m, _, _)| pos(m).is_some_and(|q| q > at))
        .min_by_key(|(m, _, _)| pos(m))
    else {
        return;
    };
    let conn = &t.connections[ci];
    let more = match missing.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    let after = if from_position {
        format!(
            "published after the position of the {} {}",
            case_name(p.case),
            untrusted(&p.cursor)
        )
    } else {
        "published between two delivered events".into()
    };
    found.push((
        ids::RESUME_NO_GAP,
        Evidence {
            marker: Some(next.to_owned()),
            expected: format!("marker {first}{more} ({after}) before marker {next}"),
            seen: format!(
                "marker {next} without them, and no error status, error event or reset event"
            ),
            ..at_frame(&p.client, conn, Some(&conn.frames[fi]))
        },
    ));
}

fn case_name(c: IdCase) -> &'static str {
    match c {
        IdCase::Garbage => "garbage id",
        IdCase::Unknown => "never-issued id",
        IdCase::Foreign => "id of another channel",
        IdCase::Evicted => "evicted id",
        IdCase::Restart => "id from before the restart",
    }
}

#[cfg(test)]
mod tests {
    //! Case table: hand-made recordings of a resumed client, each with the findings
    //! it must produce (contract ids) and the answer it is classified as.

    use harness_model::{
        ClientId, ConnEnd, Connection, IdAnswer, IdCase, Recording, ResumeIdProbe, StreamKind,
    };

    use crate::testkit::{Conn, client, opaque_cfg};

    fn m(part: &str, n: u64) -> Vec<String> {
        (0..n).map(|k| format!("{part}{k}")).collect()
    }

    /// A probe of `case` whose client had h0..h3, missed a0..a(away-1), then l0..l2.
    fn probe(
        case: IdCase,
        claim: Option<IdAnswer>,
        away: u64,
        history: Option<u64>,
    ) -> ResumeIdProbe {
        ResumeIdProbe {
            client: ClientId("resumed#0".into()),
            case,
            cursor: "c-1".into(),
            claim,
            had: m("h", 4),
            away: m("a", away),
            live: m("l", 3),
            history,
            reset_event: Some("reset".into()),
        }
    }

    /// A 200 stream delivering `markers` (then, with `event`, an event of that type first).
    fn stream(event: Option<&str>, markers: &[String]) -> Connection {
        let mut c = Conn::new(0, 0).cursor("c-1");
        if let Some(e) = event {
            c = c.frame(2, e, None, harness_model::FrameKind::Other);
        }
        for (i, mk) in markers.iter().enumerate() {
            c = c.odata(3 + i as u64, &format!("id-{mk}"), mk, "ch");
        }
        c.end(ConnEnd::Finished, 100)
    }

    fn refused(status: u16) -> Connection {
        let mut c = Conn::new(0, 0).cursor("c-1").end(ConnEnd::ServerClosed, 2);
        c.status = Some(status);
        c.retries.clear();
        c
    }

    /// The findings (contract ids, sorted) and the classified answer.
    fn judge(p: ResumeIdProbe, conn: Connection) -> (Vec<String>, Option<IdAnswer>, Vec<String>) {
        let t = client("resumed#0", StreamKind::Events, &["ch"], vec![conn]);
        let answer = super::classify(&p, &t).answer;
        let mut rec = Recording::default();
        rec.transcripts.push(t);
        rec.expect.resume_ids.push(p);
        let found = crate::check(&harness_model::Contracts::builtin(), &opaque_cfg(), &rec);
        let mut ids: Vec<String> = found.iter().map(|f| f.contract.0.clone()).collect();
        ids.sort();
        (ids, answer, found.iter().map(|f| f.message()).collect())
    }

    /// A case: its name, the probe, the resumed connection, the contracts it must
    /// break and the answer it is classified as.
    type Row = (
        &'static str,
        ResumeIdProbe,
        Connection,
        &'static [&'static str],
        Option<IdAnswer>,
    );

    fn cat(parts: &[&[String]]) -> Vec<String> {
        parts.iter().flat_map(|p| p.iter().cloned()).collect()
    }

    #[test]
    fn cases() {
        let (a3, l) = (m("a", 8)[3..].to_vec(), m("l", 3));
        let all = cat(&[&m("h", 4), &m("a", 3), &l]);
        #[rustfmt::skip]
        let table: Vec<Row> = vec![
            // nchan: an evicted id gets what the 5-message buffer holds; claimed, but a silent gap.
            ("evicted, declared", probe(IdCase::Evicted, Some(IdAnswer::ReplayAll), 8, Some(5)), stream(None, &cat(&[&a3, &l])), &["resume.no-gap"], Some(IdAnswer::ReplayAll)),
            ("evicted, misdeclared", probe(IdCase::Evicted, Some(IdAnswer::LiveOnly), 8, Some(5)), stream(None, &cat(&[&a3, &l])), &["resume.declared-answer", "resume.no-gap"], Some(IdAnswer::ReplayAll)),
            // The same gap after the profile's reset event is not silent.
            ("evicted, reset", probe(IdCase::Evicted, Some(IdAnswer::ErrorEvent), 8, Some(5)), stream(Some("reset"), &cat(&[&a3, &l])), &[], Some(IdAnswer::ErrorEvent)),
            // A server that reads a never-issued id as "from the start": duplicates.
            ("unknown from start", probe(IdCase::Unknown, Some(IdAnswer::ErrorEvent), 3, None), stream(None, &all), &["resume.declared-answer", "resume.no-duplicate"], Some(IdAnswer::ReplayAll)),
            // ... which for a garbage id (no position) is only an answer.
            ("garbage from start, unclaimed", probe(IdCase::Garbage, None, 3, None), stream(None, &all), &[], Some(IdAnswer::ReplayAll)),
            ("garbage live-only", probe(IdCase::Garbage, Some(IdAnswer::LiveOnly), 3, None), stream(None, &l), &[], Some(IdAnswer::LiveOnly)),
            ("garbage refused", probe(IdCase::Garbage, Some(IdAnswer::ErrorStatus), 3, None), refused(400), &[], Some(IdAnswer::ErrorStatus)),
            ("garbage refused, misdeclared", probe(IdCase::Garbage, Some(IdAnswer::LiveOnly), 3, None), refused(400), &["resume.declared-answer"], Some(IdAnswer::ErrorStatus)),
            // The spine: another job's seq is a position; the events after it, then live.
            ("foreign after", probe(IdCase::Foreign, Some(IdAnswer::ReplayAfter), 3, None), stream(None, &cat(&[&m("a", 3), &l])), &[], Some(IdAnswer::ReplayAfter)),
            // A foreign id moved to the head: the events after it silently skipped.
            ("foreign live-only", probe(IdCase::Foreign, Some(IdAnswer::ReplayAfter), 3, None), stream(None, &l), &["resume.declared-answer", "resume.no-gap"], Some(IdAnswer::LiveOnly)),
            // A hole between delivered events, whatever the id.
            ("garbage hole", probe(IdCase::Garbage, None, 3, None), stream(None, &cat(&[&m("a", 3)[..1], &m("a", 3)[2..], &l])), &["resume.no-gap"], None),
            // nchan's far-future id: the stream stays open and sends nothing.
            ("unknown nothing", probe(IdCase::Unknown, Some(IdAnswer::Nothing), 3, None), stream(None, &[]), &[], Some(IdAnswer::Nothing)),
            // Twice in one connection.
            ("twice", probe(IdCase::Garbage, None, 3, None), stream(None, &cat(&[&l, &l[..1]])), &["resume.no-duplicate"], Some(IdAnswer::LiveOnly)),
        ];
        for (name, p, conn, want, answer) in table {
            let (got, a, msgs) = judge(p, conn);
            assert_eq!(got, want, "{name}: {msgs:#?}");
            assert_eq!(a, answer, "{name}");
        }
    }

    #[test]
    fn a_mismatch_says_what_the_server_really_did() {
        let all = cat(&[&m("h", 4), &m("a", 3), &m("l", 3)]);
        let (_, _, msgs) = judge(
            probe(IdCase::Unknown, Some(IdAnswer::LiveOnly), 3, None),
            stream(None, &all),
        );
        assert!(
            msgs.iter().any(|m| m
                == "[resume.declared-answer] client resumed#0 conn 0: expected profile claims unknown_id = live-only (resuming from c-1), saw replay-all: the server replayed the 7 events the channel held from its oldest (4 of them the client had received), then the live ones"),
            "{msgs:#?}"
        );
    }
}
