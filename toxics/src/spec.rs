//! The TOML-facing types: a scenario's `[[toxics]]` entry ([`ToxicSpec`]), the toxic as
//! one proxy sees it ([`ToxicConfig`]), and their validation errors ([`SpecError`]).
//!
//! ```toml
//! [[toxics]]
//! path = "subscriber"      # "publisher" | "subscriber"
//! kind = "latency"         # one of KNOWN; the attributes follow, in toxiproxy's units
//! latency = 400            # ms
//! jitter = 50              # ms
//! stream = "downstream"    # "upstream" (client → server) | "downstream" (server → client)
//! toxicity = 1.0           # probability per connection, 0.0..=1.0
//! from_ms = 2000           # live from this time after the proxy's (or run's) start
//! until_ms = 6000          # ... until this time (absent = until the end)
//! clock = "origin"         # what the window counts from: "origin" (default) | "live"
//! ```

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::toxics::{KNOWN, MAX_MS, Toxic};

/// Which way bytes flow through a toxic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Client → server (the request side).
    Upstream,
    /// Server → client (the response side); toxiproxy's default.
    #[default]
    Downstream,
}

impl Stream {
    /// As spelled in TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// What a toxic's window (`from_ms`, `until_ms`) counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WindowClock {
    /// The proxy's clock origin (its start, or the origin its owner gave): the clock
    /// the log counts on.
    #[default]
    Origin,
    /// The moment the proxy's owner says the traffic went live
    /// ([`crate::LiveSwitch::go_live`]; the harness: when every client is open and live
    /// publishing starts). Before that the toxic is not live, whatever its window; a
    /// proxy that never goes live never applies it.
    Live,
}

impl WindowClock {
    fn is_origin(&self) -> bool {
        *self == WindowClock::Origin
    }
}

/// Which of the run's connections a toxic sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyPath {
    /// The publisher's connections (POSTs).
    Publisher,
    /// The subscribers' connections (event streams).
    Subscriber,
}

/// One toxic on one proxy: what it does, which way, how often and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToxicConfig {
    /// Unique name within the proxy, used to change it at run time and in the log;
    /// default `<kind>_<stream>` (toxiproxy's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The toxic (`kind` and its attributes).
    #[serde(flatten)]
    pub toxic: Toxic,
    /// Direction it acts on (alias `direction`); default downstream.
    #[serde(default, alias = "direction")]
    pub stream: Stream,
    /// Probability (0.0..=1.0) that a connection gets this toxic, drawn once per
    /// (connection, toxic) from the seeded RNG; default 1.0.
    #[serde(default = "one")]
    pub toxicity: f64,
    /// Live from this many milliseconds after the proxy's clock origin; default 0.
    #[serde(default)]
    pub from_ms: u64,
    /// Live until this many milliseconds after the clock origin (exclusive); absent =
    /// until the proxy stops. Must be greater than `from_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// What `from_ms` and `until_ms` count from; default the clock origin.
    #[serde(default, skip_serializing_if = "WindowClock::is_origin")]
    pub clock: WindowClock,
}

fn one() -> f64 {
    1.0
}

impl ToxicConfig {
    /// A toxic live from the start, always applied, on `stream`.
    pub fn new(toxic: Toxic, stream: Stream) -> ToxicConfig {
        ToxicConfig {
            name: None,
            toxic,
            stream,
            toxicity: 1.0,
            from_ms: 0,
            until_ms: None,
            clock: WindowClock::Origin,
        }
    }

    /// The name it goes by: the given one or `<kind>_<stream>`.
    pub fn name(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("{}_{}", self.toxic.kind(), self.stream.as_str()),
        }
    }

    /// Whether the schedule window holds `at_ms`, milliseconds on the toxic's own
    /// [`WindowClock`] (for [`WindowClock::Origin`], since the clock origin).
    pub fn live_at(&self, at_ms: u64) -> bool {
        at_ms >= self.from_ms && self.until_ms.is_none_or(|u| at_ms < u)
    }

    /// Whether the toxic is live at `at_ms` since the clock origin, when the traffic
    /// went live at `live_ms` since the origin (`None`: not yet, or never).
    pub fn live_at_origin_ms(&self, at_ms: u64, live_ms: Option<u64>) -> bool {
        let on_own_clock = match self.clock {
            WindowClock::Origin => Some(at_ms),
            WindowClock::Live => live_ms.and_then(|l| at_ms.checked_sub(l)),
        };
        on_own_clock.is_some_and(|ms| self.live_at(ms))
    }

    /// The window in milliseconds since the clock origin (`until` absent: to the end),
    /// when the traffic went live at `live_ms`; `None` for a [`WindowClock::Live`]
    /// toxic of a proxy that never went live.
    pub fn window_on_origin(&self, live_ms: Option<u64>) -> Option<(u64, Option<u64>)> {
        let shift = match self.clock {
            WindowClock::Origin => 0,
            WindowClock::Live => live_ms?,
        };
        Some((shift + self.from_ms, self.until_ms.map(|u| shift + u)))
    }

    /// Checks ranges: toxicity, window, attributes.
    pub fn validate(&self) -> Result<(), SpecError> {
        let name = self.name();
        if !(0.0..=1.0).contains(&self.toxicity) {
            return Err(SpecError::new(
                SpecErrorKind::Toxicity,
                format!(
                    "toxic `{name}`: toxicity {} is out of range: a probability in 0.0..=1.0",
                    self.toxicity
                ),
            ));
        }
        let max_window = 100 * MAX_MS;
        if self.from_ms > max_window || self.until_ms.is_some_and(|u| u > max_window) {
            return Err(SpecError::new(
                SpecErrorKind::Window,
                format!("toxic `{name}`: from_ms and until_ms must be within 0..={max_window} ms"),
            ));
        }
        if let Some(u) = self.until_ms
            && u <= self.from_ms
        {
            return Err(SpecError::new(
                SpecErrorKind::Window,
                format!(
                    "toxic `{name}`: until_ms {u} must be greater than from_ms {}",
                    self.from_ms
                ),
            ));
        }
        self.toxic.validate().map_err(|e| {
            SpecError::new(
                SpecErrorKind::Attribute,
                format!(
                    "toxic `{name}` ({}): {} = {} is out of range: valid {}",
                    self.toxic.kind(),
                    e.attr,
                    e.value,
                    e.valid
                ),
            )
        })
    }
}

/// A scenario's `[[toxics]]` entry: a [`ToxicConfig`] plus the path it sits on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToxicSpec {
    /// `publisher` or `subscriber`.
    pub path: ProxyPath,
    /// The toxic itself (flattened: `kind`, attributes, `stream`, `toxicity`, window).
    #[serde(flatten)]
    pub toxic: ToxicConfig,
}

/// What kind of mistake a spec has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecErrorKind {
    /// Not valid TOML, an unknown `kind`/`path`/`stream`, an unknown attribute or a
    /// wrong type; the message names the valid values.
    Parse,
    /// `toxicity` outside 0.0..=1.0.
    Toxicity,
    /// `until_ms` not after `from_ms`, or beyond the longest window.
    Window,
    /// An attribute outside its range.
    Attribute,
    /// Two toxics on one proxy with the same name.
    DuplicateName,
    /// No toxic of that name (run-time change).
    UnknownName,
}

/// A spec that cannot be used, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    /// The kind of mistake.
    pub kind: SpecErrorKind,
    /// Human-readable, naming the valid values or ranges.
    pub message: String,
}

impl SpecError {
    pub(crate) fn new(kind: SpecErrorKind, message: String) -> SpecError {
        SpecError { kind, message }
    }
}

/// Validates one proxy's toxics: each one's ranges, and unique names.
pub fn validate_set(toxics: &[ToxicConfig]) -> Result<(), SpecError> {
    let mut seen = HashSet::new();
    for t in toxics {
        t.validate()?;
        let name = t.name();
        if !seen.insert(name.clone()) {
            return Err(SpecError::new(
                SpecErrorKind::DuplicateName,
                format!(
                    "two toxics named `{name}` on one proxy: give one a `name` (the default is <kind>_<stream>)"
                ),
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    toxics: Vec<ToxicSpec>,
}

/// Parses a TOML document's `[[toxics]]` entries and validates them (names are unique
/// per path). Unknown `kind`s name [`KNOWN`].
pub fn parse_toml(text: &str) -> Result<Vec<ToxicSpec>, SpecError> {
    let file: File = toml::from_str(text).map_err(|e| {
        let mut msg = e.message().to_owned();
        if msg.contains("missing field `kind`") {
            msg.push_str(&format!(" (known kinds: {})", KNOWN.join(", ")));
        }
        let line = e
            .span()
            .map(|r| {
                format!(
                    " (at line {})",
                    text[..r.start.min(text.len())].lines().count().max(1)
                )
            })
            .unwrap_or_default();
        SpecError::new(SpecErrorKind::Parse, format!("[[toxics]]{line}: {msg}"))
    })?;
    for path in [ProxyPath::Publisher, ProxyPath::Subscriber] {
        let set: Vec<ToxicConfig> = file
            .toxics
            .iter()
            .filter(|s| s.path == path)
            .map(|s| s.toxic.clone())
            .collect();
        validate_set(&set)?;
    }
    Ok(file.toxics)
}

/// The configs of one path, in order.
pub fn for_path(specs: &[ToxicSpec], path: ProxyPath) -> Vec<ToxicConfig> {
    specs
        .iter()
        .filter(|s| s.path == path)
        .map(|s| s.toxic.clone())
        .collect()
}
