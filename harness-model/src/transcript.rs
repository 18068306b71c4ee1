//! What the scripted clients and publishers recorded during one scenario: the raw
//! material the checkers judge. Nothing in here is interpreted against a contract yet;
//! the profile has only classified each frame (data, lifecycle, heartbeat).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{ClientId, Seq};
use crate::vocab::CutAim;

/// The HTTP protocol a connection spoke (its ALPN name in JSON).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HttpProtocol {
    /// HTTP/1.1 (also what recordings without the field spoke).
    #[default]
    #[serde(rename = "http/1.1")]
    Http11,
    /// HTTP/2.
    #[serde(rename = "h2")]
    H2,
}

impl HttpProtocol {
    /// The ALPN name: `http/1.1` or `h2`.
    pub fn name(self) -> &'static str {
        match self {
            HttpProtocol::Http11 => "http/1.1",
            HttpProtocol::H2 => "h2",
        }
    }
}

impl std::fmt::Display for HttpProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which stream of the target a client subscribed to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// The whole log (or one job's slice of it): `GET /v1/events` in the spine.
    Events,
    /// One job's task stream, which closes after the terminal event.
    Task,
    /// A version stream for one request id.
    Version,
}

/// Everything one client saw, over all its connections.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transcript {
    /// The client's name.
    pub client: ClientId,
    /// The stream it read.
    pub stream: StreamKind,
    /// The jobs (channels) whose data events it is expected to receive; empty means all.
    pub jobs: Vec<String>,
    /// The cursor of its very first connection (None: from the start / from now).
    pub initial_cursor: Option<String>,
    /// Whether the first connection asked for the whole history (spine) or only new events.
    pub from_start: bool,
    /// Its connections in order.
    pub connections: Vec<Connection>,
    /// What read the stream: the harness's own byte-exact client (the default, and
    /// what recordings without the field hold) or a real browser's `EventSource`.
    #[serde(default, skip_serializing_if = "Agent::is_wire")]
    pub agent: Agent,
    /// When the client stopped for good on its own, in µs since the scenario started:
    /// a browser whose `EventSource` the browser closed (`readyState` CLOSED: a
    /// refusal, a wrong Content-Type, a 204, a CORS block), after which it never
    /// reconnects. None for the harness's clients, which decide to stop themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gave_up_us: Option<u64>,
}

/// What read a client's stream.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Agent {
    /// The harness's byte-exact client: every byte, comment, `retry:` and offset seen.
    #[default]
    Wire,
    /// An `EventSource` in headless Chromium: only what the page sees (dispatched
    /// events with their `lastEventId`, `open` and `error`), no comments, no `retry:`,
    /// no headers, no byte offsets. Contracts that need those are not judged on it.
    Browser,
}

impl Agent {
    /// Whether this is the harness's own client.
    pub fn is_wire(&self) -> bool {
        *self == Agent::Wire
    }
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnEnd {
    /// The harness closed it on purpose after this many body bytes (a chaos cut).
    Cut {
        /// Body bytes read before the close.
        after_byte: u64,
        /// What the cut aimed at, e.g. `random-byte`, `inside-id`, `after-events`.
        aim: String,
    },
    /// The server ended the response (EOF).
    ServerClosed,
    /// The socket failed (reset, I/O error), with the error text.
    Failed {
        /// The error text.
        error: String,
    },
    /// The harness stopped reading because the scenario was over (clean).
    Finished,
    /// A wait ran past its deadline.
    Deadline,
    /// The parser refused to go on (a line or event above the size limit).
    ParserLimit,
    /// The target refused the request (non-2xx status); the body is in `error_body`.
    Refused,
    /// The TCP connection or the request could not be made.
    ConnectFailed {
        /// The error text.
        error: String,
    },
    /// The harness stopped the connection because recording more would pass one of
    /// its memory caps (a flood of frames, comments, retries or violations).
    RecordLimit {
        /// Which cap.
        limit: RecordLimit,
    },
    /// The harness gave up on a stream silent for longer than its heartbeat allowance
    /// (2 x the interval; a half-open path: no FIN, no RST, no bytes) and reconnects
    /// with its last id, as a watchdog on a browser's `EventSource` does.
    Silent {
        /// The allowance that ran out, in milliseconds.
        allowance_ms: u64,
    },
}

/// A cap on what the harness records, so that a flooding target cannot exhaust its
/// memory. Each is far above what a legitimate scenario records.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecordLimit {
    /// Frames recorded on one connection.
    Frames,
    /// Comment lines recorded on one connection.
    Comments,
    /// `retry:` fields recorded on one connection.
    Retries,
    /// Wire violations recorded on one connection.
    Violations,
    /// Bytes recorded by all the clients of one scenario together.
    ScenarioBytes,
}

impl RecordLimit {
    /// The stable kebab-case name used in reports.
    pub fn name(&self) -> &'static str {
        match self {
            RecordLimit::Frames => "frames-per-connection",
            RecordLimit::Comments => "comments-per-connection",
            RecordLimit::Retries => "retries-per-connection",
            RecordLimit::Violations => "violations-per-connection",
            RecordLimit::ScenarioBytes => "recorded-bytes-per-scenario",
        }
    }
}

/// One HTTP request for a stream and what came back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Connection {
    /// Counted from 0 within the client.
    pub index: u32,
    /// The `Last-Event-ID` sent, if any.
    pub cursor: Option<String>,
    /// The `X-Correlation-ID` sent, if any.
    pub correlation_sent: Option<String>,
    /// Microseconds since the scenario started when the request was sent.
    pub opened_us: u64,
    /// Microseconds since the scenario started when the response head arrived.
    pub head_us: Option<u64>,
    /// Microseconds since the scenario started when the first body byte arrived
    /// (absent in older recordings).
    #[serde(default)]
    pub first_byte_us: Option<u64>,
    /// The protocol the connection spoke: what the client asked for until a response
    /// head arrived, then what was negotiated (ALPN over TLS).
    #[serde(default)]
    pub protocol: HttpProtocol,
    /// The client's TCP port, once a response head arrived: streams that share an
    /// HTTP/2 connection share it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// HTTP status, when a response head arrived.
    pub status: Option<u16>,
    /// Response headers, lower-cased names.
    pub headers: BTreeMap<String, String>,
    /// The first bytes of a non-2xx response body (up to 4 KiB).
    pub error_body: Option<String>,
    /// `retry:` values seen, with the body offset of each.
    pub retries: Vec<(u64, u64)>,
    /// Comment lines (`: …`) seen, with receive time; some targets heartbeat with them.
    pub comments: Vec<Comment>,
    /// Every dispatched event in order.
    pub frames: Vec<Frame>,
    /// Wire-level problems the parser reported (malformed lines, invalid UTF-8, ...).
    pub violations: Vec<WireIssue>,
    /// Body bytes read in total, decoded (after de-chunking and any
    /// `Content-Encoding`): the offsets frames, cuts and findings are given in.
    pub body_bytes: u64,
    /// Body bytes as they came off the wire, before `Content-Encoding` decoding (equal
    /// to `body_bytes` for an uncompressed stream; absent in older recordings).
    #[serde(default)]
    pub wire_bytes: u64,
    /// Aimed cuts that gave way on this connection because their place never came
    /// within the aim's patience (a target whose framing has no CR, no `event:` line or
    /// no multi-byte character): planned, not executed, and not the target's fault.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aims_without_place: Vec<CutAim>,
    /// Why it ended.
    pub end: ConnEnd,
    /// Microseconds since the scenario started when it ended.
    pub ended_us: u64,
}

/// A comment line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Comment {
    /// Microseconds since the scenario started.
    pub at_us: u64,
    /// Body offset of the line.
    pub offset: u64,
    /// The text after the colon.
    pub text: String,
}

/// A wire-level problem.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WireIssue {
    /// Body offset where it was found.
    pub offset: u64,
    /// What was wrong, e.g. `invalid-utf8`, `line-too-long`.
    pub kind: crate::WireViolation,
    /// A human explanation.
    pub detail: String,
}

/// One dispatched SSE event as received.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Frame {
    /// The event type (`message` when none was given).
    pub event: String,
    /// The `id:` field of this event, if it had one (the raw text).
    pub id: Option<String>,
    /// The data (lines joined by `\n`).
    pub data: String,
    /// Microseconds since the scenario started when its last byte arrived.
    pub at_us: u64,
    /// Body offset of its first byte.
    pub start: u64,
    /// Body offset just past its dispatching blank line.
    pub end: u64,
    /// What the profile made of it.
    pub kind: FrameKind,
}

/// A frame as classified by the target profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FrameKind {
    /// A log event (a published write or a job's own event).
    Data(DataEvent),
    /// A lifecycle frame: `connection_open`, `error`, `connection_close`.
    Lifecycle {
        /// The lifecycle event name.
        name: String,
        /// Its parsed JSON data (Null when not JSON).
        fields: serde_json::Value,
    },
    /// A heartbeat frame.
    Heartbeat {
        /// Its parsed JSON data (Null when not JSON).
        fields: serde_json::Value,
    },
    /// A `version` event on a version stream.
    Version {
        /// Its parsed JSON data.
        fields: serde_json::Value,
    },
    /// Something the profile does not know; kept for the framing checks.
    Other,
    /// The data should have been JSON (strict) and was not, or lacked required fields.
    Malformed {
        /// Why.
        reason: String,
    },
}

/// The identity of one log event, as far as the profile can read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataEvent {
    /// The seq (numeric ids: the `id:` field, cross-checked with the data's seq).
    pub seq: Option<Seq>,
    /// The opaque id when the profile's ids are not numbers.
    pub opaque_id: Option<String>,
    /// The job (channel) it belongs to.
    pub job: Option<String>,
    /// Its event type inside the data (`progress_update`, a custom type, ...).
    pub event_type: Option<String>,
    /// The harness's publish marker, when the event was published by the harness.
    pub marker: Option<String>,
    /// `correlation_id` carried in the data, when any.
    pub correlation_id: Option<String>,
    /// A digest of the event's content without per-connection fields (for cross-client comparison).
    pub digest: String,
}

/// One write the harness published and the target acknowledged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ack {
    /// The unique marker the harness put in the event.
    pub marker: String,
    /// The job (channel) it was published to.
    pub job: String,
    /// The seq the target returned, when the profile's ack carries seqs.
    pub seq: Option<Seq>,
    /// Which publisher task sent it (order is only defined within one publisher).
    pub publisher: u32,
    /// Microseconds since the scenario started when the request was sent.
    pub sent_us: u64,
    /// Microseconds since the scenario started when the ack arrived.
    pub acked_us: u64,
}

/// A publish request that failed or was not acknowledged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PublishFailure {
    /// The markers in the request.
    pub markers: Vec<String>,
    /// The status, when one came back.
    pub status: Option<u16>,
    /// The error text.
    pub error: String,
}

/// Everything one scenario recorded: the input to every checker.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Recording {
    /// One transcript per client.
    pub transcripts: Vec<Transcript>,
    /// Every acknowledged write, in ack order per publisher.
    pub acks: Vec<Ack>,
    /// Publish requests that were not acknowledged.
    pub publish_failures: Vec<PublishFailure>,
    /// Publish requests sent whose answer never came (Jepsen's indeterminate writes),
    /// resolved by a retry's ack or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indeterminate: Vec<crate::Indeterminate>,
    /// Samples of server-side gauges the runner read (e.g. `spine_active_streams`), by name.
    pub gauges: BTreeMap<String, Vec<(u64, f64)>>,
    /// What the scenario's steps arranged, so the checkers know what each client must see.
    pub expect: Expectations,
    /// Microseconds since the scenario started at which the target was killed or stopped.
    pub restarts: Vec<u64>,
    /// The target's integrity report (spine §5 JSON) read after the scenario, if any.
    pub integrity: Option<serde_json::Value>,
    /// Free-form facts a step established (e.g. `head_seq_at_end`), for reports.
    pub facts: BTreeMap<String, serde_json::Value>,
    /// Clients whose task did not end by the scenario's deadline plus a grace and was
    /// aborted: their transcripts are missing, so the scenario cannot pass.
    #[serde(default)]
    pub unfinished: Vec<ClientId>,
    /// What the workload planned (absent for probes and older recordings): the
    /// scenario facts are computed from it and the rest of the recording.
    #[serde(default)]
    pub workload: Option<WorkloadPlan>,
    /// Jobs a probe created and read back whole (their events and their receipt),
    /// so the checkers can judge the task stream's content and recompute the receipt.
    #[serde(default)]
    pub jobs: Vec<JobReadBack>,
    /// What each acknowledged write carried, for the content comparison (absent when
    /// the profile does not say where a write's content is).
    #[serde(default)]
    pub published: Option<Published>,
    /// The clients and cuts the scenario planned (workloads and probes; empty in older
    /// recordings): the evidence compares them with what was recorded.
    #[serde(default)]
    pub plan: ScenarioPlan,
    /// The toxic proxies a scenario's `[[toxics]]` put between the parts, with their
    /// event logs (empty when every path went direct).
    #[serde(default, skip_serializing_if = "crate::network::Network::is_empty")]
    pub network: crate::network::Network,
}

/// The content of the writes the harness published, as a subscriber must receive it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Published {
    /// Where the content sits in a data event: a JSON pointer into the data (JSON
    /// profiles, compared as compact JSON with sorted keys), or None: the whole data
    /// text (text profiles, compared as SSE carries text: CR LF and CR become LF).
    pub pointer: Option<String>,
    /// Each acknowledged write's content (the compact JSON or the text), by marker.
    pub by_marker: BTreeMap<String, String>,
}

/// A job a probe created, as it asked for it and as the target gave it back: the data
/// of each data event its task stream carried, and its receipt over HTTP.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JobReadBack {
    /// The job's id.
    pub job: String,
    /// The client whose task stream read it from its first event, if one did.
    pub reader: Option<ClientId>,
    /// Progress steps asked for.
    pub steps: u32,
    /// The step replaced by `task_failed`, if asked for.
    pub fail_at_step: Option<u32>,
    /// Whether an artifact was asked for.
    pub artifact: bool,
    /// The data text of each data event its task stream carried, in order.
    pub events: Vec<String>,
    /// The answer to `GET …/receipt` after the job ended (None: not read).
    pub receipt: Option<ReceiptRead>,
}

/// A receipt as the harness read it over HTTP.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReceiptRead {
    /// The status.
    pub status: u16,
    /// The `X-Receipt-SHA256` header, when there was one.
    pub header_sha256: Option<String>,
    /// The body as received.
    pub body: String,
}

/// The clients and cuts a scenario planned, so that the evidence can tell a client
/// that left no transcript or a cut that never happened.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioPlan {
    /// Every client the scenario started, by name.
    pub clients: Vec<ClientId>,
    /// The cuts planned for each client that had any.
    pub cuts: BTreeMap<ClientId, u64>,
}

/// What a scenario's workload planned, as far as the scenario facts need it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WorkloadPlan {
    /// Microseconds since the scenario started when live publishing began: acks sent
    /// before it are the backlog.
    pub live_from_us: u64,
    /// The client groups, in scenario order (client ids are `<group>#<i>`).
    pub groups: Vec<GroupPlan>,
    /// Writes planned, backlog and live together (0 in older recordings: not judged).
    #[serde(default)]
    pub writes: u64,
    /// Microseconds since the scenario started when the last publish request was
    /// answered (or given up at the deadline).
    #[serde(default)]
    pub published_us: u64,
    /// The scenario's deadline, in µs since it started (0 in older recordings).
    #[serde(default)]
    pub deadline_us: u64,
    /// How long a client waits for owed data once publishing is over, in ms: the
    /// clients need this much time between the end of publishing and the deadline.
    #[serde(default)]
    pub stall_ms: u64,
    /// Live writes were published one every this many ms, a slow trickle whose every
    /// event `wire.event-latency` judges (0: not a trickle).
    #[serde(default)]
    pub trickle_ms: u64,
    /// The event type every live write was published with, when the scenario chose one
    /// (`wire.field-injection` judges a hostile one; the target may refuse such writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The scenario cuts publish answers on purpose (a toxic on the publisher path):
    /// writes whose fate is unknown are expected, not a `delivery.publish-acked`
    /// finding, and at least one is needed as evidence that the cut happened.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publish_cuts: bool,
}

impl WorkloadPlan {
    /// The scenario's chosen event type, when it holds a CR, LF or NUL (a write that
    /// tries to inject fields, which the target may refuse).
    pub fn hostile_event_type(&self) -> Option<&str> {
        self.event_type
            .as_deref()
            .filter(|t| t.contains(['\r', '\n', '\0']))
    }
}

/// One client group's reading plan.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GroupPlan {
    /// The group's name.
    pub name: String,
    /// Bytes per second while reading slowly (0: unthrottled).
    pub bytes_per_sec: u64,
    /// How long it reads slowly, in ms (0: throughout).
    pub slow_for_ms: u64,
    /// The `SO_RCVBUF` it asked for (0: the system default).
    pub rcvbuf: u64,
    /// It stops reading after this many data events of its first connection...
    #[serde(default)]
    pub pause_after_events: u64,
    /// ...for this long, in ms (0: it never pauses).
    #[serde(default)]
    pub pause_ms: u64,
}

/// What a scenario's steps arranged on purpose, per client. Checkers that judge a
/// specific shape (a 400, a `task_not_found`, a `replaced` close) read it from here.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Expectations {
    /// Clients that sent a malformed cursor: they must get `400 invalid_last_event_id`.
    pub invalid_cursor: Vec<ClientId>,
    /// Clients that sent a cursor above the head: open, error `cursor_ahead`, close `cursor_ahead`.
    pub cursor_ahead: Vec<ClientId>,
    /// Task-stream clients and the terminal close reason their job must end with.
    pub task_terminal: BTreeMap<ClientId, crate::CloseReason>,
    /// Task-stream clients of a job that does not exist.
    pub task_not_found: Vec<ClientId>,
    /// Version-stream clients and the versions they must receive, in order.
    pub versions: BTreeMap<ClientId, Vec<String>>,
    /// Version-stream clients that a newer stream for the same request id must replace.
    pub replaced: Vec<ClientId>,
    /// Clients left idle on purpose: heartbeat silence is judged on them.
    pub idle: Vec<ClientId>,
    /// Clients connected when the target got SIGTERM: they must get `server_shutdown`.
    pub shutdown: Vec<ClientId>,
    /// A disconnect-liveness probe, when the scenario made one.
    pub liveness: Option<LivenessProbe>,
    /// Clients that resumed from an id the server cannot place (a resume probe).
    #[serde(default)]
    pub resume_ids: Vec<crate::ResumeIdProbe>,
    /// Browser clients the scenario expects to stop for good (a 204, a wrong
    /// Content-Type, no CORS): `wire.browser-stream` does not hold that against the
    /// target, and their evidence is that they did stop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub browser_stops: Vec<ClientId>,
    /// Browser clients the server is expected to close again and again (a
    /// `connection_close` an `EventSource` cannot act on, answered anew on each
    /// reconnection): they are owed no data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub browser_loops: Vec<ClientId>,
    /// A stalled-reader probe (subscribers behind a dead link), when the scenario made one.
    #[serde(default)]
    pub stalled_reader: Option<StalledReaderProbe>,
}

impl Expectations {
    /// Whether the scenario arranged a special shape for this client (a 400, a cursor
    /// above the head, an unknown task, a version stream, a browser refused on purpose): such clients are judged by
    /// their own shape contracts, not by the generic delivery rules.
    pub fn shapes(&self, id: &ClientId) -> bool {
        self.invalid_cursor.contains(id)
            || self.cursor_ahead.contains(id)
            || self.task_not_found.contains(id)
            || self.versions.contains_key(id)
            || self.replaced.contains(id)
            || self.resume_ids.iter().any(|r| &r.client == id)
            || self.browser_stops.contains(id)
            || self.browser_loops.contains(id)
    }
}

/// The facts a liveness check needs: the gauge's baseline and when the clients vanished.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LivenessProbe {
    /// The gauge read (samples are in `Recording::gauges` under this name).
    pub gauge: String,
    /// Its value before the clients connected.
    pub baseline: f64,
    /// Microseconds since the scenario started when the last client closed or reset.
    pub disconnected_us: u64,
    /// The target's heartbeat interval.
    pub heartbeat_ms: u64,
    /// How many clients connected (0 in older recordings: the rise is not judged).
    #[serde(default)]
    pub clients: u32,
}

/// The facts a stalled-reader check needs: subscribers behind a dead link (the toxic
/// proxy stopped reading their connections, no FIN, no RST), then enough published to
/// fill every buffer between the server and them. The server must end those streams
/// once their writes make no progress for its write-stall bound (spine §4.3): the
/// active-streams gauge back to its baseline, the slow-consumer counter up by as many.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StalledReaderProbe {
    /// The active-streams gauge (samples in `Recording::gauges` under this name).
    pub gauge: String,
    /// Its value before the clients connected.
    pub baseline: f64,
    /// The slow-consumer counter, when the profile names one (samples in
    /// `Recording::gauges` under this name).
    pub counter: Option<String>,
    /// Its value before the clients connected.
    pub counter_baseline: Option<f64>,
    /// How many clients connected through the stalled path.
    pub clients: u32,
    /// How many of their connections the proxy stalled while they were open.
    pub stalled: u32,
    /// Bytes of event data the probe set out to publish after the stall began: more
    /// than the buffers between the server and a dead peer hold.
    pub fill_bytes: u64,
    /// Bytes of event data acknowledged after the stall began.
    pub published_bytes: u64,
    /// Microseconds since the scenario started when `fill_bytes` had been acknowledged
    /// (the writes stall from then on at the latest); `None`: never.
    pub filled_us: Option<u64>,
    /// The bound the server is judged at: its announced `write_stall_ms`, at most the
    /// profile's `[write_stall] max_ms`.
    pub write_stall_ms: u64,
    /// The target's heartbeat interval (the sampling slack).
    pub heartbeat_ms: u64,
}
