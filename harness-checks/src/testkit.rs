//! Builders that make hand-written recordings short enough to read in a test.

use harness_model::{
    Ack, ClientId, ConnEnd, Connection, Contracts, DataEvent, Finding, Frame, FrameKind, Recording,
    Seq, StreamKind, Transcript,
};
use serde_json::{Value, json};

use crate::{CheckConfig, HeartbeatForm, IdMode};

/// Milliseconds to the recording's microseconds.
pub fn ms(t: u64) -> u64 {
    t * 1000
}

/// A spine-like target: numeric ids, strict, lifecycle frames, 1 s heartbeats.
pub fn numeric_cfg() -> CheckConfig {
    CheckConfig {
        ids: IdMode::Numeric,
        strict: true,
        lifecycle_frames: true,
        heartbeat: HeartbeatForm::Event {
            name: "heartbeat".into(),
        },
        heartbeat_ms: None,
        heartbeat_max_ms: Some(15_000),
        retry_first: true,
        open_within_ms: 2000,
        event_within_ms: 750,
        wire_level: harness_model::Level::Must,
        families: Vec::new(),
    }
}

/// An nchan-like target: opaque ids, lenient, no lifecycle frames, no heartbeat.
pub fn opaque_cfg() -> CheckConfig {
    CheckConfig {
        ids: IdMode::Opaque,
        strict: false,
        lifecycle_frames: false,
        heartbeat: HeartbeatForm::None,
        heartbeat_ms: None,
        heartbeat_max_ms: None,
        retry_first: false,
        open_within_ms: 2000,
        event_within_ms: 750,
        wire_level: harness_model::Level::Must,
        families: Vec::new(),
    }
}

/// An ack for seq `seq` of `job` with marker `m<seq>`, sent at `sent` ms and acked 1 ms later.
pub fn ack(seq: u64, job: &str, sent: u64) -> Ack {
    Ack {
        marker: format!("m{seq}"),
        job: job.into(),
        seq: Some(Seq(seq)),
        publisher: 0,
        sent_us: ms(sent),
        acked_us: ms(sent + 1),
    }
}

/// An ack without seq (opaque targets).
pub fn oack(marker: &str, job: &str, publisher: u32, sent: u64) -> Ack {
    Ack {
        marker: marker.into(),
        job: job.into(),
        seq: None,
        publisher,
        sent_us: ms(sent),
        acked_us: ms(sent + 1),
    }
}

/// The data event that an ack from [`ack`] turns into.
pub fn event(seq: u64, job: &str) -> DataEvent {
    DataEvent {
        seq: Some(Seq(seq)),
        opaque_id: None,
        job: Some(job.into()),
        event_type: Some("custom".into()),
        marker: Some(format!("m{seq}")),
        correlation_id: Some("c1".into()),
        digest: format!("d{seq}"),
    }
}

/// A connection under construction; frames are laid out 50 bytes apart after a
/// 12-byte `retry:` block.
pub struct Conn {
    c: Connection,
    off: u64,
}

impl Conn {
    /// Connection `index`, request sent at `opened` ms, head 1 ms later, 200 with SSE headers.
    pub fn new(index: u32, opened: u64) -> Conn {
        let headers = [
            ("content-type".to_owned(), "text/event-stream".to_owned()),
            ("cache-control".to_owned(), "no-cache".to_owned()),
        ]
        .into_iter()
        .collect();
        Conn {
            c: Connection {
                index,
                cursor: None,
                correlation_sent: None,
                opened_us: ms(opened),
                head_us: Some(ms(opened + 1)),
                first_byte_us: None,
                protocol: Default::default(),
                local_port: None,
                status: Some(200),
                headers,
                error_body: None,
                retries: vec![(0, 1000)],
                comments: Vec::new(),
                frames: Vec::new(),
                violations: Vec::new(),
                body_bytes: 12,
                wire_bytes: 12,
                aims_without_place: Vec::new(),
                end: ConnEnd::Finished,
                ended_us: ms(opened + 1),
            },
            off: 12,
        }
    }

    /// Sends `Last-Event-ID: cursor`.
    pub fn cursor(mut self, cursor: &str) -> Conn {
        self.c.cursor = Some(cursor.into());
        self
    }

    /// Appends a frame received at `at` ms.
    pub fn frame(mut self, at: u64, event: &str, id: Option<String>, kind: FrameKind) -> Conn {
        self.c.frames.push(Frame {
            event: event.into(),
            id,
            data: String::new(),
            at_us: ms(at),
            start: self.off,
            end: self.off + 50,
            kind,
        });
        self.off += 50;
        self.c.body_bytes = self.off;
        self
    }

    /// A lifecycle frame with `fields` plus `correlation_id: c1`.
    pub fn life(self, at: u64, name: &str, mut fields: Value) -> Conn {
        fields["correlation_id"] = json!("c1");
        self.frame(
            at,
            name,
            None,
            FrameKind::Lifecycle {
                name: name.into(),
                fields,
            },
        )
    }

    /// `connection_open` for `stream` with `head_seq` and `resume_from`, heartbeat 1000 ms.
    pub fn open(self, at: u64, stream: &str, head: u64, from: Value) -> Conn {
        let fields =
            json!({"stream": stream, "head_seq": head, "resume_from": from, "heartbeat_ms": 1000});
        self.life(at, "connection_open", fields)
    }

    /// `connection_close{reason}`.
    pub fn close(self, at: u64, reason: &str) -> Conn {
        self.life(at, "connection_close", json!({ "reason": reason }))
    }

    /// `error{code}`.
    pub fn error(self, at: u64, code: &str) -> Conn {
        self.life(at, "error", json!({ "code": code, "message": "m" }))
    }

    /// The event of [`event`] for `seq`.
    pub fn data(self, at: u64, seq: u64, job: &str) -> Conn {
        self.data_ev(at, event(seq, job))
    }

    /// A data frame carrying `ev` (its id is its seq, or its opaque id).
    pub fn data_ev(self, at: u64, ev: DataEvent) -> Conn {
        let id = ev
            .seq
            .map(|s| s.to_string())
            .or_else(|| ev.opaque_id.clone());
        self.frame(at, "task_event", id, FrameKind::Data(ev))
    }

    /// An opaque-id data frame for `marker` under id `id`.
    pub fn odata(self, at: u64, id: &str, marker: &str, job: &str) -> Conn {
        let ev = DataEvent {
            seq: None,
            opaque_id: Some(id.into()),
            job: Some(job.into()),
            event_type: None,
            marker: Some(marker.into()),
            correlation_id: None,
            digest: format!("d-{marker}"),
        };
        self.frame(at, "message", Some(id.into()), FrameKind::Data(ev))
    }

    /// A spine heartbeat received at `at` ms and stamped by the server at the same time.
    pub fn hb(self, at: u64, head: u64) -> Conn {
        self.hb_stamped(at, at, head)
    }

    /// A spine heartbeat received at `at` ms whose `server_time` is `stamp` ms after
    /// 2025-01-01T00:00:00Z (under an hour).
    pub fn hb_stamped(self, at: u64, stamp: u64, head: u64) -> Conn {
        let server_time = format!(
            "2025-01-01T00:{:02}:{:02}.{:03}Z",
            stamp / 60_000,
            stamp / 1000 % 60,
            stamp % 1000
        );
        let fields = json!({"server_time": server_time, "head_seq": head, "correlation_id": "c1"});
        self.frame(at, "heartbeat", None, FrameKind::Heartbeat { fields })
    }

    /// A version event.
    pub fn version(self, at: u64, v: &str) -> Conn {
        let fields = json!({"request_id": "r1", "version": v, "environment": "prod", "git_commit": null, "correlation_id": "c1"});
        self.frame(at, "version", None, FrameKind::Version { fields })
    }

    /// How and when (ms) it ended.
    pub fn end(mut self, end: ConnEnd, at: u64) -> Connection {
        self.c.end = end;
        self.c.ended_us = ms(at);
        self.c
    }
}

/// A harness cut.
pub fn cut() -> ConnEnd {
    ConnEnd::Cut {
        after_byte: 0,
        aim: "random-byte".into(),
    }
}

/// A client reading `stream` for `jobs` from the start of the log.
pub fn client(
    name: &str,
    stream: StreamKind,
    jobs: &[&str],
    connections: Vec<Connection>,
) -> Transcript {
    Transcript {
        client: ClientId(name.into()),
        stream,
        jobs: jobs.iter().map(|j| (*j).to_owned()).collect(),
        initial_cursor: connections.first().and_then(|c| c.cursor.clone()),
        from_start: true,
        connections,
        agent: Default::default(),
        gave_up_us: None,
    }
}

/// A client id.
pub fn cid(name: &str) -> ClientId {
    ClientId(name.into())
}

/// One judged recording and the single finding it must produce (or none).
pub struct Case {
    pub cfg: CheckConfig,
    pub rec: Recording,
    pub contract: Option<&'static str>,
    pub message: &'static str,
    /// Other contracts the same anomaly must also break (one fault, several contracts).
    pub also: &'static [&'static str],
}

impl Case {
    /// A recording that must yield no finding.
    pub fn clean(cfg: CheckConfig, rec: Recording) -> Case {
        Case {
            cfg,
            rec,
            contract: None,
            message: "",
            also: &[],
        }
    }

    /// A recording that must yield exactly this finding.
    pub fn one(
        cfg: CheckConfig,
        rec: Recording,
        contract: &'static str,
        message: &'static str,
    ) -> Case {
        Case {
            cfg,
            rec,
            contract: Some(contract),
            message,
            also: &[],
        }
    }

    /// The same anomaly must also break these contracts.
    pub fn also(mut self, ids: &'static [&'static str]) -> Case {
        self.also = ids;
        self
    }

    /// The findings.
    pub fn run(&self) -> Vec<Finding> {
        crate::check(&Contracts::builtin(), &self.cfg, &self.rec)
    }

    /// Asserts the expectation.
    pub fn assert(&self) {
        let found = self.run();
        let lines: Vec<String> = found.iter().map(Finding::message).collect();
        match self.contract {
            None => assert!(
                found.is_empty(),
                "expected no finding, got:\n{}",
                lines.join("\n")
            ),
            Some(id) => {
                assert_eq!(
                    found.len(),
                    1 + self.also.len(),
                    "expected one {id} finding (and {:?}), got:\n{}",
                    self.also,
                    lines.join("\n")
                );
                let main = found
                    .iter()
                    .position(|f| f.contract.0 == id)
                    .unwrap_or_else(|| panic!("no {id} finding in:\n{}", lines.join("\n")));
                assert_eq!(lines[main], self.message);
                for other in self.also {
                    assert!(
                        found.iter().any(|f| f.contract.0 == *other),
                        "no {other} finding in:\n{}",
                        lines.join("\n")
                    );
                }
            }
        }
    }
}
