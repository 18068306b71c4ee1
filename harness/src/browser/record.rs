//! What a browser page reported, turned into the harness's transcript form: each `open`
//! starts a connection, each dispatched event is a frame classified by the profile as
//! the byte-exact client's are, each `error` ends the connection (or, before any
//! `open`, is a connection that never opened), and `readyState` CLOSED after an error
//! is the browser giving up for good.
//!
//! What a page cannot see is left out, never made up: no status or headers (an `open`
//! means a 200 `text/event-stream`, nothing more), no comments, no `retry:`, no byte
//! offsets (frames sit at 0..0). A frame's id is the `lastEventId` the browser dispatched
//! it with, which an id-less frame inherits from the frame before: a data event takes it
//! as its id (where it is stale, the profile's seq cross-check marks the frame
//! malformed), any other frame only when it moved the cursor.

use std::collections::HashSet;

use harness_model::{
    Agent, ClientId, ConnEnd, Connection, Frame, FrameKind, IdMode, StreamKind, Subscription,
    Transcript,
};

use super::page::{Report, ReportKind};
use crate::classify::classify;
use crate::client::ClientPlan;
use crate::ledger::Ledger;
use crate::profile::Profile;

/// One browser client's recording in progress.
pub(crate) struct Recorder {
    id: ClientId,
    /// The stream it reads.
    stream: StreamKind,
    /// The channels it reads.
    channels: Vec<String>,
    from_start: bool,
    connections: Vec<Connection>,
    current: Option<Connection>,
    /// The browser's cursor: the last `lastEventId` it dispatched ("" before any).
    last_id: String,
    /// When the browser gave up for good.
    pub gave_up_us: Option<u64>,
    sub: Subscription,
    received: HashSet<String>,
    /// Whether the first connection opened (or the browser gave up before it did).
    pub settled: bool,
    /// Frames one connection may record ([`crate::limits::Limits::frames_per_conn`]).
    frames_cap: usize,
    /// Set when a connection reached the cap: nothing more is recorded for the client.
    pub capped: bool,
    /// The server is expected to close this client again and again (it is owed no data).
    pub loops: bool,
}

impl Recorder {
    /// A recorder for the client `plan` describes.
    pub fn new(plan: &ClientPlan, frames_cap: usize, loops: bool) -> Recorder {
        let sub = Subscription::new(plan.channels.clone(), plan.from_start, None);
        Recorder {
            id: plan.id.clone(),
            stream: plan.stream,
            channels: plan.channels.clone(),
            from_start: plan.from_start,
            connections: Vec::new(),
            current: None,
            last_id: String::new(),
            gave_up_us: None,
            sub,
            received: HashSet::new(),
            settled: false,
            frames_cap,
            capped: false,
            loops,
        }
    }

    /// The client's name.
    pub fn id(&self) -> &ClientId {
        &self.id
    }

    /// Whether it has every write it is owed (publishing being over).
    pub fn caught_up(&self, ledger: &Ledger, ids: IdMode) -> bool {
        ledger
            .owed(&self.sub, ids)
            .iter()
            .all(|m| self.received.contains(m))
    }

    /// Connections ended so far.
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    /// Whether any of its connections opened.
    pub fn ever_opened(&self) -> bool {
        self.connections
            .iter()
            .chain(&self.current)
            .any(|c| c.status.is_some())
    }

    /// Adds what the harness found out to the last attempt's error (a browser that
    /// gave up before it opened).
    pub fn note_on_last(&mut self, note: &str) {
        if note.is_empty() {
            return;
        }
        if let Some(c) = self.connections.last_mut()
            && let ConnEnd::ConnectFailed { error } = &mut c.end
        {
            error.push_str("; ");
            error.push_str(note);
        }
    }

    /// Data events received so far.
    pub fn received(&self) -> usize {
        self.received.len()
    }

    /// Applies one report, received at `at_us`.
    pub fn apply(&mut self, r: &Report, at_us: u64, profile: &Profile) {
        if self.capped {
            return;
        }
        match r.k {
            ReportKind::Ready => {}
            ReportKind::Open => {
                if let Some(mut c) = self.current.take() {
                    c.end = ConnEnd::Failed {
                        error: "the browser opened again without an error".into(),
                    };
                    c.ended_us = at_us;
                    self.connections.push(c);
                }
                let index = self.connections.len() as u32;
                let cursor = Some(self.last_id.clone()).filter(|c| !c.is_empty());
                let mut c = Connection::opened(index, cursor, None, at_us);
                c.head_us = Some(at_us);
                c.first_byte_us = Some(at_us);
                c.status = Some(200);
                self.sub.add(&c, None);
                self.current = Some(c);
                self.settled = true;
            }
            ReportKind::Event => self.event(r, at_us, profile),
            ReportKind::Error => self.error(r.s == Some(2), at_us),
        }
    }

    /// A dispatched event: a frame of the open connection.
    fn event(&mut self, r: &Report, at_us: u64, profile: &Profile) {
        let full = self
            .current
            .as_ref()
            .map(|c| c.frames.len() >= self.frames_cap);
        if full == Some(true)
            && let Some(mut c) = self.current.take()
        {
            // A flood: the connection ends here for the recording (the browser reads
            // on, unrecorded), as the byte-exact client's does at the same cap.
            c.end = ConnEnd::RecordLimit {
                limit: harness_model::RecordLimit::Frames,
            };
            c.ended_us = at_us;
            self.connections.push(c);
            self.capped = true;
            return;
        }
        let Some(conn) = self.current.as_mut() else {
            return;
        };
        let event = r.e.clone().unwrap_or_else(|| "message".into());
        let seen = r.id.clone().unwrap_or_default();
        let moved = seen != self.last_id;
        let is_data = event == profile.events.data_event;
        let id = (!seen.is_empty() && (is_data || moved)).then(|| seen.clone());
        self.last_id = seen;
        let data = r.d.clone().unwrap_or_default();
        let kind = classify(profile, &event, id.as_deref(), &data);
        if let FrameKind::Data(d) = &kind
            && let Some(m) = &d.marker
        {
            self.received.insert(m.clone());
        }
        conn.frames.push(Frame {
            event,
            id,
            data,
            at_us,
            start: 0,
            end: 0,
            kind,
        });
    }

    /// An `error`: the open connection ends (or an attempt that never opened is
    /// recorded); `for_good` when the browser will not reconnect.
    fn error(&mut self, for_good: bool, at_us: u64) {
        let end = match (&self.current, for_good) {
            (Some(_), false) => ConnEnd::ServerClosed,
            (Some(_), true) => ConnEnd::Failed {
                error: "the EventSource failed and the browser gave up for good (readyState CLOSED)".into(),
            },
            (None, false) => ConnEnd::ConnectFailed {
                error: "the EventSource could not open the stream; the browser retries".into(),
            },
            (None, true) => ConnEnd::ConnectFailed {
                error: "the EventSource could not open the stream and the browser gave up for good (readyState CLOSED: a refusal, a 204, a Content-Type other than text/event-stream, or no CORS header for the page's origin)".into(),
            },
        };
        let mut c = self.current.take().unwrap_or_else(|| {
            let cursor = Some(self.last_id.clone()).filter(|c| !c.is_empty());
            Connection::opened(self.connections.len() as u32, cursor, None, at_us)
        });
        c.end = end;
        c.ended_us = at_us;
        if c.status.is_none() {
            self.sub.add(&c, None);
        }
        self.connections.push(c);
        if for_good {
            self.gave_up_us = Some(at_us);
            self.settled = true;
        }
    }

    /// The transcript, its open connection ended `end` at `at_us`.
    pub fn finish(mut self, end: ConnEnd, at_us: u64) -> Transcript {
        if let Some(mut c) = self.current.take() {
            c.end = end;
            c.ended_us = at_us;
            self.connections.push(c);
        }
        Transcript {
            client: self.id,
            stream: self.stream,
            jobs: self.channels,
            initial_cursor: None,
            from_start: self.from_start,
            connections: self.connections,
            agent: Agent::Browser,
            gave_up_us: self.gave_up_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(k: ReportKind, e: Option<&str>, id: &str, d: &str, s: Option<u8>) -> Report {
        Report {
            p: 0,
            n: 0,
            t: 0.0,
            c: 0,
            k,
            e: e.map(str::to_owned),
            id: Some(id.to_owned()),
            d: Some(d.to_owned()),
            s,
        }
    }

    fn recorder() -> Recorder {
        Recorder {
            id: ClientId("b#0".into()),
            stream: StreamKind::Events,
            channels: vec!["j".into()],
            from_start: true,
            connections: Vec::new(),
            current: None,
            last_id: String::new(),
            gave_up_us: None,
            sub: Subscription::new(vec!["j".into()], true, None),
            received: HashSet::new(),
            settled: false,
            frames_cap: 100,
            capped: false,
            loops: false,
        }
    }

    /// An id-less frame inherits the browser's `lastEventId`: it is recorded without an
    /// id, and the next connection resumes from the last data id; an error with
    /// `readyState` CLOSED is the browser giving up for good.
    #[test]
    fn id_less_frames_keep_no_id_and_the_cursor_is_the_last_data_id() {
        let profile = Profile::load("spine").expect("spine profile");
        let mut r = recorder();
        let data = r#"{"seq":7,"job_id":"j","event_type":"x","payload":{"marker":"m7"}}"#;
        r.apply(
            &report(ReportKind::Open, None, "", "", Some(1)),
            10,
            &profile,
        );
        r.apply(
            &report(ReportKind::Event, Some("connection_open"), "", "{}", None),
            11,
            &profile,
        );
        r.apply(
            &report(ReportKind::Event, Some("task_event"), "7", data, None),
            12,
            &profile,
        );
        r.apply(
            &report(ReportKind::Event, Some("heartbeat"), "7", "{}", None),
            13,
            &profile,
        );
        r.apply(
            &report(ReportKind::Error, None, "", "", Some(0)),
            14,
            &profile,
        );
        r.apply(
            &report(ReportKind::Open, None, "", "", Some(1)),
            1014,
            &profile,
        );
        r.apply(
            &report(ReportKind::Error, None, "", "", Some(2)),
            1020,
            &profile,
        );
        let t = r.finish(ConnEnd::Finished, 2000);
        let ids: Vec<_> = t.connections[0]
            .frames
            .iter()
            .map(|f| f.id.clone())
            .collect();
        assert_eq!(ids, [None, Some("7".to_owned()), None]);
        assert!(matches!(
            t.connections[0].frames[1].kind,
            FrameKind::Data(_)
        ));
        assert_eq!(t.connections[0].end, ConnEnd::ServerClosed);
        assert_eq!(t.connections[1].cursor.as_deref(), Some("7"));
        assert!(matches!(t.connections[1].end, ConnEnd::Failed { .. }));
        assert_eq!(t.gave_up_us, Some(1020));
        assert_eq!(t.agent, Agent::Browser);
    }
}
