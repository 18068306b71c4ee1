//! The scenario file model (TOML under `scenarios/`) and its loader. A scenario is a
//! workload — channels, publishers, scripted clients with their chaos — or a probe (a
//! fixed exchange such as a task stream's lifecycle), plus the contract families that
//! judge what the clients recorded. Files are embedded so the binary runs anywhere.

use std::path::Path;

use harness_model::{Capability, CutAim, Family};
use serde::Deserialize;

use crate::error::{HarnessError, HarnessErrorKind};

/// One scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed table group: `CT-07`, `CT-09` … `CT-12`, `LIFECYCLE`, `VERSION`, `CURSOR`, `DURABILITY`.
    pub group: String,
    /// Short kebab-case name; the test is `<group>/<name>`.
    pub name: String,
    /// What it exercises, in one sentence.
    pub title: String,
    /// The seed table rows or protocol sections it covers.
    #[serde(default)]
    pub covers: Vec<String>,
    /// Contract families that judge it.
    pub families: Vec<Family>,
    /// Capabilities the target profile must claim, else the scenario is skipped.
    #[serde(default)]
    pub requires: Vec<Capability>,
    /// Overall deadline in seconds; past it, clients stop and what is missing is a finding.
    #[serde(default = "default_deadline")]
    pub deadline_s: u64,
    /// Publishers.
    #[serde(default)]
    pub traffic: Traffic,
    /// Scripted client groups.
    #[serde(default)]
    pub clients: Vec<ClientGroup>,
    /// A fixed exchange instead of the workload (`[probe] kind = "…"`, see `probes/`).
    pub probe: Option<crate::probes::Probe>,
    /// Network toxics between the parts (`[[toxics]]`, `sse-toxics`): a proxy per path
    /// that has any, in front of the target, for this scenario ([`crate::network`]).
    #[serde(default)]
    pub toxics: Vec<sse_toxics::ToxicSpec>,
    /// The file it came from (filled by the loader).
    #[serde(skip)]
    pub file: String,
}

fn default_deadline() -> u64 {
    60
}

/// The publishers of a workload.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Channels (spine: jobs) to create and publish to, round-robin.
    #[serde(default = "one")]
    pub channels: u32,
    /// Writes published and acknowledged before any client connects.
    #[serde(default)]
    pub backlog: u64,
    /// Writes published while the clients run.
    #[serde(default)]
    pub events: u64,
    /// Concurrent publisher tasks.
    #[serde(default = "one32")]
    pub publishers: u32,
    /// Target rate in writes per second over all publishers; 0 = as fast as acks come.
    #[serde(default)]
    pub rate: u64,
    /// Writes per publish request (used when the profile has `batch-publish`).
    #[serde(default = "one32")]
    pub batch: u32,
    /// Padding per write, in characters.
    #[serde(default)]
    pub pad: u32,
    /// Pad with a multi-byte UTF-8 character (so cuts can land inside one).
    #[serde(default)]
    pub pad_utf8: bool,
    /// The pad itself, instead of `pad` characters: content a server must carry as
    /// published (line breaks, blank lines, leading spaces, `data:`-looking lines,
    /// multi-byte UTF-8).
    #[serde(default)]
    pub pad_text: Option<String>,
    /// The event type of every live write (profiles with `{event_type}` in their
    /// publish templates, capability `chosen-event-type`); a hostile one (CR, LF, NUL)
    /// is judged by `wire.field-injection`, which lets the target refuse it.
    #[serde(default)]
    pub event_type: Option<String>,
    /// A slow trickle: each publisher sends one request every this many ms (instead of
    /// `rate`), so every event arrives on an idle stream (`wire.event-latency` judges
    /// each one); 0: `rate` paces.
    #[serde(default)]
    pub interval_ms: u64,
    /// Start publishing only when every client has its first connection open.
    #[serde(default = "yes")]
    pub after_clients_open: bool,
    /// Then wait this long before the first live write, leaving the streams idle (a
    /// head or `connection_open` held until the first event shows as late).
    #[serde(default)]
    pub start_after_ms: u64,
    /// The backlog's publish rate in writes per second; 0 = as fast as acks come. Not
    /// in scenario files: the run's `--max-rate` sets it (see `polite`).
    #[serde(skip)]
    pub backlog_rate: u64,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            channels: 1,
            backlog: 0,
            events: 0,
            publishers: 1,
            rate: 0,
            batch: 1,
            pad: 0,
            pad_utf8: false,
            pad_text: None,
            event_type: None,
            interval_ms: 0,
            after_clients_open: true,
            start_after_ms: 0,
            backlog_rate: 0,
        }
    }
}

fn one() -> u32 {
    1
}
fn one32() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// Which stream a client reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamChoice {
    /// One channel's stream (`subscribe.path`).
    Channel,
    /// The stream of every channel (`subscribe.all_path`).
    All,
}

/// Where a client's first connection starts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum From {
    /// The whole history (no cursor).
    Start,
    /// Only what is published from now on (numeric ids: cursor = current head).
    Now,
}

/// A group of identical scripted clients.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientGroup {
    /// Group name; clients are `<name>#<i>`.
    pub name: String,
    /// How many.
    #[serde(default = "one32")]
    pub count: u32,
    /// Stream to read.
    #[serde(default = "channel")]
    pub stream: StreamChoice,
    /// Channel index for `stream = "channel"` (clients spread over channels when absent).
    pub channel: Option<u32>,
    /// Start of the first connection.
    #[serde(default = "from_start")]
    pub from: From,
    /// Resume by header (default) or query parameter.
    #[serde(default)]
    pub cursor_in_query: bool,
    /// Read policy.
    #[serde(default)]
    pub read: ReadPolicy,
    /// Chaos: deliberate disconnects.
    #[serde(default)]
    pub cuts: Cuts,
    /// Over HTTP/2: `own` (default: a connection per client, as HTTP/1.1) or `shared`
    /// (the group's clients multiplex their streams over one connection, as a browser's
    /// tabs do; a cut is then `RST_STREAM(CANCEL)` and a reset `RST_STREAM(INTERNAL_ERROR)`,
    /// neither touching the streams beside it). Over HTTP/1.1 it changes nothing.
    #[serde(default)]
    pub h2_connection: H2Connections,
    /// What reads the streams: `wire` (default: the harness's byte-exact client) or
    /// `browser` (an `EventSource` each in one headless Chromium, see
    /// [`crate::browser`]): the browser reconnects by itself, so cuts and read policies
    /// are the server's and the network's, not the group's.
    #[serde(default)]
    pub kind: ClientKind,
    /// What a browser group's pages do (`browser_case`): `reads` (default),
    /// `wrong_token` (their stream URLs carry a token the target does not know: it
    /// must refuse them, and the browser must stop for good, never retry) or
    /// `foreign_origin` (their page is on an origin the target does not list).
    #[serde(default)]
    pub browser_case: BrowserCase,
    /// Browser groups: the page reads its streams from its own origin, through the
    /// harness's relay (the target's response passed through byte for byte), so no
    /// CORS is involved, as for a page served by the same site as its streams. Always
    /// so against a target that serves no CORS (`[browser] cors = "none"`).
    #[serde(default)]
    pub same_origin: bool,
}

/// What a browser group's pages do.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrowserCase {
    /// Read the stream.
    #[default]
    Reads,
    /// Ask with a wrong access token, and stop for good when refused.
    WrongToken,
    /// Open the stream from a page on an origin the target was not told to allow
    /// (`localhost` instead of `127.0.0.1`, same port): with `[browser] cors =
    /// "listed"` the browser is blocked and stops for good; with `"any"` it reads.
    ForeignOrigin,
    /// Open the stream with a cursor far above the head in the query (the profile's
    /// `cursor_query`): a spine server answers 200, `error` and `connection_close`
    /// `cursor_ahead`, and ends; the browser cannot act on `connection_close` and
    /// reconnects after `retry:` with the same URL, again and again.
    CursorAhead,
}

/// What a client group reads with (`kind`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// The harness's byte-exact client.
    #[default]
    Wire,
    /// `EventSource` in headless Chromium.
    Browser,
}

/// How a group's clients use HTTP/2 connections (`h2_connection`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum H2Connections {
    /// A connection per client.
    #[default]
    Own,
    /// One connection for the whole group.
    Shared,
}

fn channel() -> StreamChoice {
    StreamChoice::Channel
}
fn from_start() -> From {
    From::Start
}

/// How fast a client reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadPolicy {
    /// Bytes per second while slow; 0 = unthrottled.
    #[serde(default)]
    pub bytes_per_sec: u64,
    /// Read slowly only for this long, then at full speed (0 = slow throughout).
    #[serde(default)]
    pub slow_for_ms: u64,
    /// `SO_RCVBUF` in bytes (small values make backpressure reach the server).
    #[serde(default)]
    pub rcvbuf: usize,
    /// Stop reading after this many data events of the first connection...
    #[serde(default)]
    pub pause_after_events: u64,
    /// ...for this long.
    #[serde(default)]
    pub pause_ms: u64,
    /// Give up on a stream silent for longer than 2 x its heartbeat interval (the
    /// profile's, else the one its `connection_open` announced) and reconnect with the
    /// last id: how a client survives a half-open path (no FIN, no RST, no bytes).
    #[serde(default)]
    pub reconnect_on_silence: bool,
}

/// Deliberate disconnects.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cuts {
    /// Cuts at random body offsets, each within `span_bytes` of the previous resume.
    #[serde(default)]
    pub random_bytes: u32,
    /// Upper bound of a random byte cut, in body bytes after the connection starts.
    #[serde(default = "default_span_bytes")]
    pub span_bytes: u64,
    /// Cuts aimed at a place in the framing: `inside-id`, `inside-data`, `cr-lf`,
    /// `between-newlines`, `inside-utf8`, `inside-event-name`.
    #[serde(default)]
    pub aims: Vec<CutAim>,
    /// Repeat the aimed cuts this many times.
    #[serde(default = "one32")]
    pub aim_rounds: u32,
    /// Cuts after a random number of data events (1..=span_events).
    #[serde(default)]
    pub random_events: u32,
    /// Upper bound of a random event-count cut.
    #[serde(default = "default_span_events")]
    pub span_events: u64,
    /// Rapid connect/disconnect cycles: open, close right after the first data event,
    /// resume (with `gap_ms`, spread over the publishing).
    #[serde(default)]
    pub rapid_cycles: u32,
    /// All clients of the group cut at this many ms after publishing starts, together (a burst).
    pub burst_at_ms: Option<u64>,
    /// Close with a TCP reset instead of a FIN.
    #[serde(default)]
    pub reset: bool,
    /// Over HTTP/2, what an orderly cut ends: `rst_stream` (default: the stream, with
    /// `RST_STREAM(CANCEL)`) or `goaway` (the whole connection under the stream).
    /// Over HTTP/1.1 it changes nothing.
    #[serde(default)]
    pub h2_cut: H2CutStyle,
    /// Spread the cuts over the publishing period: wait this long between cuts.
    #[serde(default)]
    pub gap_ms: u64,
    /// Stay disconnected this long after each cut before resuming (longer than the
    /// target's buffer holds, to test what an evicted cursor gets).
    #[serde(default)]
    pub down_ms: u64,
}

impl Default for Cuts {
    fn default() -> Self {
        Cuts {
            random_bytes: 0,
            span_bytes: default_span_bytes(),
            aims: Vec::new(),
            aim_rounds: 1,
            random_events: 0,
            span_events: default_span_events(),
            rapid_cycles: 0,
            burst_at_ms: None,
            reset: false,
            h2_cut: H2CutStyle::default(),
            gap_ms: 0,
            down_ms: 0,
        }
    }
}

/// How an orderly cut ends an HTTP/2 stream (`cuts.h2_cut`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum H2CutStyle {
    /// `RST_STREAM(CANCEL)` for the stream.
    #[default]
    RstStream,
    /// The connection closes under the stream.
    Goaway,
}

impl H2CutStyle {
    /// The wire client's cut.
    pub fn wire(self) -> sse_wire::H2Cut {
        match self {
            H2CutStyle::RstStream => sse_wire::H2Cut::RstStream,
            H2CutStyle::Goaway => sse_wire::H2Cut::GoAway,
        }
    }
}

fn default_span_bytes() -> u64 {
    4096
}
fn default_span_events() -> u64 {
    50
}

/// Why a browser group cannot be played as written: an `EventSource` sends no header
/// the page chooses, so its first connection reads one channel from the start (no
/// cursor), and it cannot be cut, paced or paused by the harness.
fn browser_group_fits(g: &ClientGroup) -> Result<(), String> {
    if g.stream != StreamChoice::Channel || g.from != From::Start {
        return Err(
            "a browser reads one channel from the start (stream = \"channel\", from = \"start\")"
                .into(),
        );
    }
    let c = &g.cuts;
    let cuts = c.random_bytes + c.random_events + c.rapid_cycles > 0
        || !c.aims.is_empty()
        || c.burst_at_ms.is_some()
        || c.reset;
    let r = &g.read;
    let paced = r.bytes_per_sec > 0 || r.rcvbuf > 0 || r.pause_ms > 0 || r.reconnect_on_silence;
    if cuts || paced || g.cursor_in_query || g.h2_connection != H2Connections::Own {
        return Err("a browser is not cut, paced or paused by the harness: chaos for browsers comes from the server and the network ([[toxics]])".into());
    }
    Ok(())
}

impl Scenario {
    /// Whether any client group is a browser group.
    pub fn has_browsers(&self) -> bool {
        self.clients.iter().any(|g| g.kind == ClientKind::Browser)
            || self.probe.as_ref().is_some_and(|p| p.browsers() > 0)
    }

    /// `<group>/<name>`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.group, self.name)
    }

    /// Parses one scenario file's text.
    pub fn parse(text: &str, file: &str) -> Result<Scenario, HarnessError> {
        let mut s: Scenario = toml::from_str(text).map_err(|e| {
            HarnessError::new(HarnessErrorKind::Scenario, format!("scenario {file}: {e}"))
        })?;
        s.file = file.to_owned();
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), HarnessError> {
        let bad = |m: String| {
            Err(HarnessError::new(
                HarnessErrorKind::Scenario,
                format!("scenario {}: {m}", self.file),
            ))
        };
        if self.clients.is_empty() && self.probe.is_none() {
            return bad("has neither [[clients]] nor [probe]".into());
        }
        for g in &self.clients {
            if g.count == 0 {
                return bad(format!("client group {} has count 0", g.name));
            }
            if g.h2_connection == H2Connections::Shared && g.cuts.h2_cut == H2CutStyle::Goaway {
                return bad(format!(
                    "client group {}: h2_cut = \"goaway\" would close the connection its clients share (h2_connection = \"shared\")",
                    g.name
                ));
            }
            if g.kind == ClientKind::Wire && (g.browser_case != BrowserCase::Reads || g.same_origin)
            {
                return bad(format!(
                    "client group {}: browser_case and same_origin are for kind = \"browser\" groups",
                    g.name
                ));
            }
            if g.same_origin && g.browser_case == BrowserCase::ForeignOrigin {
                return bad(format!(
                    "client group {}: a foreign_origin page reads cross-origin; same_origin contradicts it",
                    g.name
                ));
            }
            if g.kind == ClientKind::Browser
                && let Err(m) = browser_group_fits(g)
            {
                return bad(format!("client group {}: {m}", g.name));
            }
            if let Some(c) = g.channel
                && c >= self.traffic.channels
            {
                return bad(format!(
                    "client group {} reads channel {c} of {}",
                    g.name, self.traffic.channels
                ));
            }
        }
        for path in [
            sse_toxics::ProxyPath::Publisher,
            sse_toxics::ProxyPath::Subscriber,
        ] {
            if let Err(e) = sse_toxics::validate_set(&sse_toxics::for_path(&self.toxics, path)) {
                return bad(format!("[[toxics]]: {e}"));
            }
        }
        if self.probe.is_some()
            && let Some(t) = self
                .toxics
                .iter()
                .find(|t| t.toxic.clock == sse_toxics::WindowClock::Live)
        {
            return bad(format!(
                "[[toxics]]: toxic `{}`: clock = \"live\" counts from the start of live publishing, which a [probe] scenario does not have",
                t.toxic.name()
            ));
        }
        let browsers: u32 = self
            .clients
            .iter()
            .filter(|g| g.kind == ClientKind::Browser)
            .map(|g| g.count)
            .sum::<u32>()
            .saturating_add(self.probe.as_ref().map_or(0, |p| p.browsers()));
        if let Some(crate::probes::Probe::TaskLifecycle(p)) = &self.probe
            && p.browsers > 0
            && !p.after_end
        {
            return bad("[probe] browsers needs after_end = true (the browsers' reconnection after the end is judged against the byte-exact client's)".into());
        }
        if browsers > crate::browser::MAX_BROWSER_CLIENTS {
            return bad(format!(
                "{browsers} browser clients: at most {} (Chromium opens at most 6 HTTP/1.1 connections per host, the page's own reports included)",
                crate::browser::MAX_BROWSER_CLIENTS
            ));
        }
        if self.traffic.batch == 0 || self.traffic.publishers == 0 {
            return bad("traffic.batch and traffic.publishers must be at least 1".into());
        }
        Ok(())
    }
}

/// The scenario files under `scenarios/`, embedded at build time (so `sse-harness run`
/// works from any folder), as (path relative to the repository, text).
pub const SCENARIOS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/scenarios.rs"));

/// The scenario files shipped with the harness, embedded at build time.
pub fn builtin() -> Result<Vec<Scenario>, HarnessError> {
    let mut out = Vec::new();
    for (file, text) in SCENARIOS {
        out.push(Scenario::parse(text, file)?);
    }
    out.sort_by_key(|a| a.id());
    Ok(out)
}

/// Loads scenario files from a folder (every `*.toml` below it).
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, HarnessError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| {
            HarnessError::new(
                HarnessErrorKind::Scenario,
                format!("scenario folder {}: {e}", d.display()),
            )
        })?;
        for entry in rd.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    HarnessError::new(
                        HarnessErrorKind::Scenario,
                        format!("scenario {}: {e}", p.display()),
                    )
                })?;
                out.push(Scenario::parse(&text, &p.display().to_string())?);
            }
        }
    }
    out.sort_by_key(|a| a.id());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "group = \"T\"\nname = \"n\"\ntitle = \"t\"\nfamilies = [\"resume\"]\n";

    fn parse(extra: &str) -> Result<Scenario, String> {
        Scenario::parse(&format!("{MINIMAL}{extra}"), "t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn every_built_in_scenario_loads() {
        let all = builtin().unwrap();
        assert!(all.len() >= 35, "{}", all.len());
        assert!(
            all.windows(2).all(|w| w[0].id() < w[1].id()),
            "sorted by id"
        );
    }

    #[test]
    fn a_scenario_needs_clients_or_a_probe() {
        let err = parse("").unwrap_err();
        assert!(err.contains("neither [[clients]] nor [probe]"), "{err}");
        assert!(parse("[probe]\nkind = \"cursor-ahead\"\n").is_ok());
        assert!(parse("[[clients]]\nname = \"c\"\n").is_ok());
    }

    #[test]
    fn browser_groups_are_checked() {
        let b = "[[clients]]\nname = \"b\"\nkind = \"browser\"\n";
        let s = parse(b).unwrap();
        assert!(s.has_browsers());
        assert_eq!(s.clients[0].browser_case, BrowserCase::Reads);
        let err = parse(&format!("{b}cuts = {{ random_events = 2 }}\n")).unwrap_err();
        assert!(err.contains("not cut, paced or paused"), "{err}");
        let err = parse(&format!("{b}from = \"now\"\n")).unwrap_err();
        assert!(err.contains("from the start"), "{err}");
        let err = parse(&format!("{b}count = 7\n")).unwrap_err();
        assert!(err.contains("7 browser clients: at most 6"), "{err}");
        let err = parse("[[clients]]\nname = \"w\"\nbrowser_case = \"wrong_token\"\n").unwrap_err();
        assert!(err.contains("for kind = \"browser\" groups"), "{err}");
        let err = parse(&format!("{b}browser_case = \"wrong\"\n")).unwrap_err();
        assert!(err.contains("expected one of `reads`"), "{err}");
    }

    #[test]
    fn counts_and_channels_are_checked() {
        let err = parse("[[clients]]\nname = \"c\"\ncount = 0\n").unwrap_err();
        assert!(err.contains("client group c has count 0"), "{err}");
        let err =
            parse("[traffic]\nchannels = 2\n[[clients]]\nname = \"c\"\nchannel = 2\n").unwrap_err();
        assert!(err.contains("reads channel 2 of 2"), "{err}");
        let err = parse("[traffic]\nbatch = 0\n[[clients]]\nname = \"c\"\n").unwrap_err();
        assert!(err.contains("at least 1"), "{err}");
    }

    #[test]
    fn unknown_names_are_load_time_errors_listing_the_valid_ones() {
        let err = Scenario::parse(&MINIMAL.replace("\"resume\"", "\"resumes\""), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown variant `resumes`, expected one of `resume`"),
            "{err}"
        );
        let err = parse("requires = [\"teleport\"]\n[[clients]]\nname = \"c\"\n").unwrap_err();
        assert!(err.contains("expected one of `publish`"), "{err}");
        let err =
            parse("[[clients]]\nname = \"c\"\ncuts = { aims = [\"inside-idd\"] }\n").unwrap_err();
        assert!(err.contains("expected one of `inside-id`"), "{err}");
        let err = parse("[[clients]]\nname = \"c\"\ncuts = { h2_cut = \"rst\" }\n").unwrap_err();
        assert!(
            err.contains("unknown variant `rst`, expected `rst_stream` or `goaway`"),
            "{err}"
        );
        let s = parse("[[clients]]\nname = \"c\"\ncuts = { h2_cut = \"goaway\" }\n").unwrap();
        assert_eq!(s.clients[0].cuts.h2_cut.wire(), sse_wire::H2Cut::GoAway);
        let err = parse("[[clients]]\nname = \"c\"\nh2_connection = \"pooled\"\n").unwrap_err();
        assert!(
            err.contains("unknown variant `pooled`, expected `own` or `shared`"),
            "{err}"
        );
        let s = parse("[[clients]]\nname = \"c\"\nh2_connection = \"shared\"\n").unwrap();
        assert_eq!(s.clients[0].h2_connection, H2Connections::Shared);
        let err = parse(
            "[[clients]]\nname = \"c\"\nh2_connection = \"shared\"\ncuts = { h2_cut = \"goaway\" }\n",
        )
        .unwrap_err();
        assert!(
            err.contains("would close the connection its clients share"),
            "{err}"
        );
        let err = parse("[probe]\nkind = \"crash\"\n").unwrap_err();
        assert!(
            err.contains("unknown variant `crash`, expected one of `task-lifecycle`"),
            "{err}"
        );
        let err = parse("[probe]\nkind = \"heartbeat-idle\"\nheartbeats = 2\nstream = \"al\"\n")
            .unwrap_err();
        assert!(
            err.contains("expected one of `events`, `task`, `version`"),
            "{err}"
        );
    }

    #[test]
    fn toxics_load_and_their_mistakes_are_load_time_errors() {
        let client = "[[clients]]\nname = \"c\"\n";
        let s = parse(&format!(
            "{client}[[toxics]]\npath = \"subscriber\"\nkind = \"timeout\"\ntimeout = 0\nfrom_ms = 100\nuntil_ms = 900\n"
        ))
        .unwrap();
        assert_eq!(s.toxics.len(), 1);
        assert_eq!(s.toxics[0].path, sse_toxics::ProxyPath::Subscriber);
        let err = parse(&format!(
            "{client}[[toxics]]\npath = \"subscriber\"\nkind = \"lag\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("lag") && err.contains("latency"), "{err}");
        let err = parse(&format!(
            "{client}[[toxics]]\npath = \"subscriber\"\nkind = \"latency\"\nlatncy = 5\n"
        ))
        .unwrap_err();
        assert!(err.contains("latncy"), "{err}");
        let err = parse(&format!(
            "{client}[[toxics]]\npath = \"both\"\nkind = \"latency\"\n"
        ))
        .unwrap_err();
        assert!(
            err.contains("publisher") && err.contains("subscriber"),
            "{err}"
        );
        let twice = "[[toxics]]\npath = \"publisher\"\nkind = \"latency\"\n";
        let err = parse(&format!("{client}{twice}{twice}")).unwrap_err();
        assert!(
            err.contains("two toxics named `latency_downstream`"),
            "{err}"
        );
        let err = parse(&format!(
            "{client}[[toxics]]\npath = \"publisher\"\nkind = \"latency\"\nfrom_ms = 9\nuntil_ms = 3\n"
        ))
        .unwrap_err();
        assert!(err.contains("until_ms 3 must be greater"), "{err}");
        let live = "[[toxics]]\npath = \"subscriber\"\nkind = \"reset_peer\"\nclock = \"live\"\n";
        let s = parse(&format!("{client}{live}")).unwrap();
        assert_eq!(s.toxics[0].toxic.clock, sse_toxics::WindowClock::Live);
        let err = parse(&format!("[probe]\nkind = \"cursor-ahead\"\n{live}")).unwrap_err();
        assert!(err.contains("a [probe] scenario does not have"), "{err}");
    }
}
