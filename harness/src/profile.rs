//! Target profiles: how to subscribe to, publish through and read one kind of SSE
//! server. The format is documented in `contracts/profiles/README.md`; the built-in
//! profiles are embedded so the binary runs from anywhere.

use std::collections::BTreeMap;
use std::path::Path;

use harness_checks::{CheckConfig, HeartbeatForm, IdMode};
use harness_model::{Capability, Family};
use serde::Deserialize;

use crate::error::{HarnessError, HarnessErrorKind};

/// The built-in profiles by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("spine", include_str!("../../contracts/profiles/spine.toml")),
    (
        "generic",
        include_str!("../../contracts/profiles/generic.toml"),
    ),
    ("nchan", include_str!("../../contracts/profiles/nchan.toml")),
    (
        "pushpin",
        include_str!("../../contracts/profiles/pushpin.toml"),
    ),
];

/// A target profile, as read from TOML.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Its name, shown in reports.
    pub name: String,
    /// One line on what the target is.
    #[serde(default)]
    pub description: String,
    /// What the ids look like.
    pub ids: Ids,
    /// Strict framing judgement.
    #[serde(default)]
    pub strict: bool,
    /// What the target claims to do; scenarios needing more are skipped.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// How to authenticate.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// Where events go.
    #[serde(default)]
    pub channels: Channels,
    /// How to subscribe.
    pub subscribe: Subscribe,
    /// How to publish.
    pub publish: Option<Publish>,
    /// How to read data frames.
    pub events: Events,
    /// Lifecycle frames.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// Heartbeats.
    #[serde(default)]
    pub heartbeat: Heartbeat,
    /// Task streams (spine).
    pub task: Option<Task>,
    /// Version streams (spine).
    pub version: Option<Version>,
    /// Server gauges (liveness).
    pub metrics: Option<Metrics>,
    /// The write-stall bound (the stalled-reader probe).
    #[serde(default)]
    pub write_stall: WriteStall,
    /// What a durable target reports after crashes.
    pub durability: Option<Durability>,
    /// Gates on this target.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// How `wire.*` is judged: its bounds and its level.
    #[serde(default)]
    pub wire: Wire,
    /// What the target does with ids it cannot place (the resume-id probes).
    #[serde(default)]
    pub resume: Resume,
    /// What a browser's `EventSource` needs of the target (`[browser]`).
    #[serde(default)]
    pub browser: Browser,
}

/// What a browser's `EventSource` needs of the target: the page that opens the streams
/// is served by the harness on a loopback origin of its own, so every stream is
/// cross-origin and needs the target's CORS headers for that origin.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Browser {
    /// Which origins the target serves CORS to (default `listed`).
    #[serde(default)]
    pub cors: Cors,
    /// The origin the page is served from, when the target allows a fixed one (e.g.
    /// `http://127.0.0.1:47100` for a target started with `--allow-origin` of it; the
    /// harness binds that port). Absent: an ephemeral loopback port, which the
    /// reference servers the harness starts are told to allow.
    #[serde(default)]
    pub origin: Option<String>,
}

/// Which origins a target serves CORS to (`[browser] cors`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cors {
    /// Only the origins it is configured with (the harness's page origin among them):
    /// a page on any other origin is blocked and its browser stops for good.
    #[default]
    Listed,
    /// Every origin (its `Access-Control-Allow-Origin` echoes any `Origin`).
    Any,
    /// None: a page cannot read its streams cross-origin, so browser pages read them
    /// through the harness's same-origin relay (a foreign-origin page is then blocked,
    /// and must stop for good).
    None,
}

/// How `wire.*` is judged on this target.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wire {
    /// `wire.open-time`: the longest a stream's head (and, with lifecycle frames,
    /// `connection_open`) may take after the request is sent, in ms (default 2000).
    #[serde(default = "open_within_ms")]
    pub open_within_ms: u64,
    /// `wire.event-latency`: the longest an event of a slow trickle may take to be
    /// decodable after its publish is acknowledged, in ms (default 750; the `WIRE`
    /// trickle publishes every 1500 ms, so one behind is twice this).
    #[serde(default = "event_within_ms")]
    pub event_within_ms: u64,
    /// `MUST` (default: a finding fails the scenario) or `SHOULD` (reported as a
    /// warning), for targets where buffering is a known and accepted trade-off.
    #[serde(default = "must")]
    pub level: harness_model::Level,
}

impl Default for Wire {
    fn default() -> Self {
        Wire {
            open_within_ms: open_within_ms(),
            event_within_ms: event_within_ms(),
            level: must(),
        }
    }
}

fn open_within_ms() -> u64 {
    2000
}

fn event_within_ms() -> u64 {
    750
}

fn must() -> harness_model::Level {
    harness_model::Level::Must
}

/// Id shape.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ids {
    /// `id:` is a u64 seq.
    Numeric,
    /// Any string; order judged by markers.
    Opaque,
}

/// Authentication.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Header name (default `Authorization`).
    #[serde(default = "authorization")]
    pub header: String,
    /// Header value template with `{token}` (default `Bearer {token}`).
    #[serde(default = "bearer")]
    pub value: String,
    /// A cookie name: the token goes in `Cookie: <name>=<token>` on every request,
    /// streams included, instead of the header (a session cookie, as a browser's
    /// `EventSource` with credentials sends it).
    pub cookie: Option<String>,
    /// Query parameter carrying the token on streams, if the target takes one.
    pub query: Option<String>,
    /// Where streams carry the token: `header` (default, as every other request) or
    /// `query` (in the parameter `query` names, `access_token` when unnamed; the way a
    /// browser's `EventSource`, which cannot set headers, authenticates).
    #[serde(default)]
    pub streams: TokenPlace,
}

fn authorization() -> String {
    "Authorization".into()
}

fn bearer() -> String {
    "Bearer {token}".into()
}

/// Where a stream request carries the token.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenPlace {
    /// In the `[auth]` header.
    #[default]
    Header,
    /// In a query parameter of the stream URL.
    Query,
}

impl Auth {
    /// The query parameter a stream's token goes in, when streams carry it there.
    pub fn stream_query(&self) -> Option<&str> {
        (self.streams == TokenPlace::Query).then(|| self.query.as_deref().unwrap_or("access_token"))
    }
}

/// An HTTP request template.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestTemplate {
    /// Method.
    #[serde(default = "post")]
    pub method: Method,
    /// Path template.
    pub path: String,
    /// Body template.
    #[serde(default)]
    pub body: Option<String>,
    /// JSON pointer to the created id in the response.
    #[serde(default)]
    pub id_pointer: Option<String>,
}

fn post() -> Method {
    Method::Post
}

/// Channel provisioning.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channels {
    /// A request that creates a channel and returns its id.
    pub create: Option<RequestTemplate>,
    /// Name prefix for channels the harness names itself.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// A request that deletes a channel the run used (`{channel}` filled), sent for
    /// each of a scenario's channels when it ends, so a run leaves a shared
    /// deployment as it found it. None: channels are left (the spine's job log is
    /// durable by design).
    pub delete: Option<RequestTemplate>,
}

fn default_prefix() -> String {
    "sse-harness-".into()
}

/// Subscription.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// Path template with `{channel}`.
    pub path: String,
    /// A stream of every channel.
    pub all_path: Option<String>,
    /// The header carrying the cursor.
    #[serde(default = "last_event_id")]
    pub cursor_header: String,
    /// The query parameter carrying the cursor.
    pub cursor_query: Option<String>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Send the headers a browser's `EventSource` sends (default true): `Accept:
    /// text/event-stream`, `Accept-Encoding: gzip, deflate, br`, `Cache-Control:
    /// no-cache`, so a compression layer or cache on the path acts as it does for
    /// browsers; false sends `Accept` alone (`--no-browser-headers` too).
    #[serde(default = "yes")]
    pub browser_headers: bool,
    /// A `User-Agent` to send (none by default), for targets that treat browsers apart.
    pub user_agent: Option<String>,
    /// The HTTP protocol streams speak: `http/1.1` (default) or `h2` (HTTP/2: ALPN
    /// over https, prior knowledge over http; `--http2` turns it on for any profile).
    #[serde(default)]
    pub http: harness_model::HttpProtocol,
    /// A path that reports the head seq (numeric ids), so "from now" is an exact cursor.
    pub head_path: Option<String>,
    /// JSON pointer to the head seq in that answer.
    pub head_pointer: Option<String>,
}

fn yes() -> bool {
    true
}

fn last_event_id() -> String {
    "Last-Event-ID".into()
}

/// Publishing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// Method.
    #[serde(default = "post")]
    pub method: Method,
    /// Path template with `{channel}`.
    pub path: String,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body template with `{marker}`, `{pad}`, `{channel}`.
    pub body: String,
    /// Batch body template with `{items}`.
    pub batch_body: Option<String>,
    /// Batch item template.
    pub batch_item: Option<String>,
    /// Statuses that mean acknowledged.
    #[serde(default = "ack_status")]
    pub ack_status: Vec<u16>,
    /// JSON pointer to the array of seqs in the ack body.
    pub ack_seqs_pointer: Option<String>,
    /// JSON pointer to a write's content in the body (or in a batch item), for JSON
    /// bodies; text bodies are their own content. With `events.content_pointer`, every
    /// client's copy of each write is compared with it.
    #[serde(default)]
    pub content_pointer: Option<String>,
    /// Opt-in (spine v1.1): the header that carries a key per publish request
    /// (`"Idempotency-Key"`); the key is the request's first marker, so it follows from
    /// the seed and the write's number. A name that is no valid header name is a
    /// load-time error.
    #[serde(default, deserialize_with = "header_name")]
    pub idempotency_header: Option<String>,
}

/// An optional header name, checked when the profile loads.
fn header_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let name = Option::<String>::deserialize(d)?;
    if let Some(n) = &name {
        reqwest::header::HeaderName::from_bytes(n.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("{n:?} is not a header name: {e}")))?;
    }
    Ok(name)
}

fn ack_status() -> Vec<u16> {
    vec![200, 201, 202]
}

/// How data frames look.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Events {
    /// Event name of data frames.
    #[serde(default = "message")]
    pub data_event: String,
    /// `json` or `text`.
    #[serde(default)]
    pub format: Format,
    /// JSON pointer to the seq.
    pub seq_pointer: Option<String>,
    /// JSON pointer to the job / channel.
    pub job_pointer: Option<String>,
    /// JSON pointer to the marker.
    pub marker_pointer: Option<String>,
    /// JSON pointer to the event type.
    pub event_type_pointer: Option<String>,
    /// JSON pointers left out of the cross-client digest.
    #[serde(default)]
    pub volatile: Vec<String>,
    /// JSON pointer to a published write's content in the data (JSON format); text
    /// data is the content itself.
    #[serde(default)]
    pub content_pointer: Option<String>,
}

fn message() -> String {
    "message".into()
}

/// Data format.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Data is a JSON object.
    Json,
    /// Data is text containing the marker.
    #[default]
    Text,
}

/// Lifecycle frames.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    /// The target sends spine lifecycle frames.
    #[serde(default)]
    pub frames: bool,
}

/// Heartbeats.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// `event`, `comment` or `none`.
    #[serde(default)]
    pub form: HeartbeatKind,
    /// Event name for `event`.
    pub event: Option<String>,
    /// Interval, when not announced in connection_open.
    pub interval_ms: Option<u64>,
    /// The longest interval an announced `heartbeat_ms` is taken at: a target that
    /// announces more (or 2^63) is judged at this bound.
    pub max_interval_ms: Option<u64>,
}

/// Heartbeat form.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeartbeatKind {
    /// An event with a name.
    Event,
    /// A comment line.
    Comment,
    /// None.
    #[default]
    None,
}

/// Task streams.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Path template with `{job}`.
    pub path: String,
    /// Job creation request (its body is `job_body`, filled with the scenario's job).
    pub create: RequestTemplate,
    /// The job spec template: `{steps}`, `{interval_ms}`, `{fail_at_step}` and
    /// `{artifact_bytes}` are filled with numbers, or `null` when the job has none.
    pub job_body: String,
    /// Path template with `{job}` of a completed job's receipt (its exact bytes);
    /// without it receipts are not read back.
    #[serde(default)]
    pub receipt_path: Option<String>,
    /// The response header carrying the receipt's SHA-256 as the target stored it.
    #[serde(default)]
    pub receipt_header: Option<String>,
}

/// A job a probe creates on a task-stream target.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct JobSpec {
    /// Progress steps.
    pub steps: u32,
    /// Milliseconds between steps.
    pub interval_ms: u64,
    /// The step replaced by a failure, if any.
    pub fail_at_step: Option<u32>,
    /// Bytes of the artifact the job writes, if any.
    pub artifact_bytes: Option<u64>,
}

impl Task {
    /// The creation body of `job`, from the profile's `job_body` template.
    pub fn job_body(&self, job: JobSpec) -> String {
        let opt = |v: Option<u64>| v.map_or_else(|| "null".to_owned(), |v| v.to_string());
        fill(
            &self.job_body,
            &[
                ("steps", &job.steps.to_string()),
                ("interval_ms", &job.interval_ms.to_string()),
                ("fail_at_step", &opt(job.fail_at_step.map(u64::from))),
                ("artifact_bytes", &opt(job.artifact_bytes)),
            ],
        )
    }
}

/// Version streams.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// Stream path template with `{rid}`.
    pub stream_path: String,
    /// Notify path.
    pub notify_path: String,
    /// Notify body template: `{rid}` and `{version}` are filled.
    pub notify_body: String,
    /// The status a notify is accepted with.
    pub notify_status: u16,
}

/// What a durable target reports about itself after crashes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Durability {
    /// `GET` path of the integrity report, kept in the recording for the durability checks.
    pub integrity_path: Option<String>,
}

/// `[resume]`: what the target does when a client resumes from an id it cannot place
/// (contracts/profiles/README.md). Each `*_id` key is the declared answer to one
/// resume-id probe; an absent key claims nothing (the probe reports what it saw, and
/// only the two rules, no duplicate and no silent gap, can fail it).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// A malformed id.
    pub garbage_id: Option<harness_model::IdAnswer>,
    /// A well-formed id the target never issued, ahead of everything it has.
    pub unknown_id: Option<harness_model::IdAnswer>,
    /// An id the target issued on another channel.
    pub foreign_id: Option<harness_model::IdAnswer>,
    /// An id that fell out of the channel's history.
    pub evicted_id: Option<harness_model::IdAnswer>,
    /// An id from before a restart (probed only where `durability` is claimed).
    pub restart_id: Option<harness_model::IdAnswer>,
    /// A well-formed id the target never issued, for opaque ids (numeric targets get
    /// one far above the highest seq seen); without it the unknown-id probe is skipped.
    pub future_id: Option<String>,
    /// A publish path whose history is small, so the evicted-id probe can overflow it;
    /// without it that probe is skipped.
    pub eviction: Option<Eviction>,
    /// An event type the target sends to say "history lost, start over": a gap after
    /// it is not silent.
    pub reset_event: Option<String>,
}

impl Resume {
    /// The declared answer to `case`.
    pub fn claim(&self, case: harness_model::IdCase) -> Option<harness_model::IdAnswer> {
        use harness_model::IdCase;
        match case {
            IdCase::Garbage => self.garbage_id,
            IdCase::Unknown => self.unknown_id,
            IdCase::Foreign => self.foreign_id,
            IdCase::Evicted => self.evicted_id,
            IdCase::Restart => self.restart_id,
        }
    }
}

/// A publish path with a small history.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eviction {
    /// The publish path (`{channel}`), used instead of `[publish] path`.
    pub path: String,
    /// How many events its history holds.
    pub history: u64,
}

/// Gauges.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Prometheus text endpoint.
    pub path: String,
    /// Active-streams gauge name.
    pub active_streams: String,
    /// Slow-consumer counter name: streams the server ended because their writes made
    /// no progress (spine: `spine_slow_consumer_closes_total`); the stalled-reader
    /// probe requires it to rise when it names one.
    pub slow_consumer_closes: Option<String>,
}

/// The write-stall bound (spine §4.3): how long a stream's writes may make no progress
/// before the server ends it as a slow consumer. Announced by the server in
/// `connection_open` (`write_stall_ms`, spine v1.1) or declared here.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteStall {
    /// The bound, when the target does not announce it.
    pub ms: Option<u64>,
    /// The longest bound an announced `write_stall_ms` is taken at: a target that
    /// announces more is judged at this bound.
    pub max_ms: Option<u64>,
}

/// Gates.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Threshold expressions such as `publish_to_deliver.p99 < 50ms`, parsed when the
    /// profile loads (a typo is a load-time error naming the valid metrics and stats).
    #[serde(default)]
    pub gates: Vec<harness_report::Threshold>,
}

impl Profile {
    /// Loads `spine`, `generic`, `nchan`, `pushpin` or a TOML file path.
    pub fn load(name_or_path: &str) -> Result<Profile, HarnessError> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Profile::parse(text, name_or_path);
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|e| {
            HarnessError::new(
                HarnessErrorKind::Profile,
                format!(
                    "profile {name_or_path}: not a built-in profile (spine, generic, nchan, pushpin) and not readable: {e}"
                ),
            )
        })?;
        Profile::parse(&text, name_or_path)
    }

    /// Parses profile text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, HarnessError> {
        toml::from_str(text).map_err(|e| {
            HarnessError::new(HarnessErrorKind::Profile, format!("profile {origin}: {e}"))
                .with_source(e)
        })
    }

    /// Where a data event's content is, when the profile says how to find a
    /// published write's content on both sides (None: no content comparison).
    pub fn content_pointer(&self) -> Option<Option<String>> {
        match self.events.format {
            Format::Text => Some(None),
            Format::Json => {
                let publish = self.publish.as_ref()?.content_pointer.as_ref();
                publish.and(self.events.content_pointer.clone()).map(Some)
            }
        }
    }

    /// Whether the profile claims a capability.
    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// The checker configuration this profile implies.
    pub fn check_config(&self, families: Vec<Family>) -> CheckConfig {
        CheckConfig {
            ids: match self.ids {
                Ids::Numeric => IdMode::Numeric,
                Ids::Opaque => IdMode::Opaque,
            },
            strict: self.strict,
            lifecycle_frames: self.lifecycle.frames,
            heartbeat: match self.heartbeat.form {
                HeartbeatKind::Event => HeartbeatForm::Event {
                    name: self
                        .heartbeat
                        .event
                        .clone()
                        .unwrap_or_else(|| "heartbeat".into()),
                },
                HeartbeatKind::Comment => HeartbeatForm::Comment,
                HeartbeatKind::None => HeartbeatForm::None,
            },
            heartbeat_ms: self.heartbeat.interval_ms,
            heartbeat_max_ms: self.heartbeat.max_interval_ms,
            retry_first: self.has(Capability::RetryFirst),
            open_within_ms: self.wire.open_within_ms,
            event_within_ms: self.wire.event_within_ms,
            wire_level: self.wire.level,
            families,
        }
    }
}

/// An HTTP method a profile's requests use (written upper case, as on the wire).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The method as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Method> for reqwest::Method {
    fn from(m: Method) -> reqwest::Method {
        match m {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

/// Replaces `{key}` placeholders in a template.
pub fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse() {
        for (name, _) in BUILTIN {
            let p = Profile::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&p.name, name);
        }
    }

    #[test]
    fn the_job_spec_comes_from_the_profile_template() {
        let task = Profile::load("spine").unwrap().task.unwrap();
        let body = task.job_body(JobSpec {
            steps: 2,
            interval_ms: 5,
            artifact_bytes: Some(2048),
            ..JobSpec::default()
        });
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"steps": 2, "interval_ms": 5, "fail_at_step": null, "artifact_bytes": 2048})
        );
    }

    #[test]
    fn unknown_capability_is_a_clear_error() {
        let text = BUILTIN[1].1.replace("\"publish\"", "\"teleport\"");
        let err = Profile::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(
            err.contains("unknown variant `teleport`, expected one of `publish`"),
            "{err}"
        );
    }

    #[test]
    fn the_wire_section_has_defaults_and_a_typed_level() {
        let spine = Profile::load("spine").unwrap();
        assert_eq!(
            (spine.wire.open_within_ms, spine.wire.event_within_ms),
            (2000, 750)
        );
        assert_eq!(spine.wire.level, harness_model::Level::Must);
        let generic = BUILTIN[1].1;
        let should = format!("{generic}\n[wire]\nlevel = \"SHOULD\"\nevent_within_ms = 300\n");
        let p = Profile::parse(&should, "x.toml").unwrap();
        assert_eq!(p.wire.level, harness_model::Level::Should);
        assert_eq!(p.check_config(Vec::new()).event_within_ms, 300);
        let typo = format!("{generic}\n[wire]\nlevel = \"MAY\"\n");
        let err = Profile::parse(&typo, "x.toml").unwrap_err().to_string();
        assert!(err.contains("unknown variant `MAY`"), "{err}");
    }

    #[test]
    fn the_stream_protocol_is_a_typed_key() {
        let generic = BUILTIN[1].1;
        assert_eq!(
            Profile::parse(generic, "x.toml").unwrap().subscribe.http,
            harness_model::HttpProtocol::Http11
        );
        let h2 = generic.replace("[subscribe]\n", "[subscribe]\nhttp = \"h2\"\n");
        assert_eq!(
            Profile::parse(&h2, "x.toml").unwrap().subscribe.http,
            harness_model::HttpProtocol::H2
        );
        let typo = generic.replace("[subscribe]\n", "[subscribe]\nhttp = \"http2\"\n");
        let err = Profile::parse(&typo, "x.toml").unwrap_err().to_string();
        assert!(
            err.contains("unknown variant `http2`, expected `http/1.1` or `h2`"),
            "{err}"
        );
    }
}
