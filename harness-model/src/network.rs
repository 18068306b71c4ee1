//! What the network between the parts did: the toxic proxies a scenario's `[[toxics]]`
//! put on the publisher path and the subscriber path, and their event logs
//! (`sse-toxics`), on the scenario's clock (a log entry's `at_ms` × 1000 is a
//! transcript's `µs`), so checkers and reports can say whether the server or the
//! network was late, and which connections a toxic cut or stalled.

use serde::{Deserialize, Serialize};

pub use sse_toxics::{
    Action, CloseHow, LogSnapshot, ProxyPath, Stream, Toxic, ToxicConfig, ToxicEvent, ToxicSpec,
};

/// One path's proxy over one scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyLog {
    /// Which connections went through it.
    pub path: ProxyPath,
    /// The toxics it had, as the scenario declared them (names, windows, attributes).
    pub toxics: Vec<ToxicConfig>,
    /// When live publishing started, in ms since the scenario's start: what windows
    /// on `clock = "live"` count from (absent: it never did, and they never applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_ms: Option<f64>,
    /// Everything it did, in order; `at_ms` counts from the scenario's start.
    pub log: LogSnapshot,
}

impl ProxyLog {
    /// [`ProxyLog::live_ms`] in whole milliseconds.
    fn live_whole_ms(&self) -> Option<u64> {
        self.live_ms.map(|l| l as u64)
    }

    /// Whether `t`'s window holds at `at_ms` since the scenario's start.
    pub fn live_at(&self, t: &ToxicConfig, at_ms: u64) -> bool {
        t.live_at_origin_ms(at_ms, self.live_whole_ms())
    }

    /// `t`'s window in ms since the scenario's start (`until` absent: to the end);
    /// `None` for a window on the live clock of a scenario that never went live.
    pub fn window(&self, t: &ToxicConfig) -> Option<(u64, Option<u64>)> {
        t.window_on_origin(self.live_whole_ms())
    }

    /// The latency toxics' worst added delay (latency + jitter, ms) live at `at_ms`
    /// on the downstream (server → client) side: the most the proxy may hold a byte
    /// of a response that reached it then. 0 without such a toxic.
    pub fn declared_downstream_delay_ms(&self, at_ms: u64) -> u64 {
        self.toxics
            .iter()
            .filter(|t| t.stream == Stream::Downstream && self.live_at(t, at_ms))
            .map(|t| match &t.toxic {
                Toxic::Latency(l) => l.latency + l.jitter,
                _ => 0,
            })
            .sum()
    }

    /// The proxy connection whose client was at local port `port` (the transcript's
    /// `local_port`), if the log opened one.
    pub fn conn_of_port(&self, port: u16) -> Option<u64> {
        self.log.events.iter().find_map(|e| match &e.action {
            Action::Opened { client } if client.port() == port => Some(e.conn),
            _ => None,
        })
    }
}

/// The proxies of one scenario, by path (absent: that path went direct).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// The publisher path's proxy (publishes and every plain HTTP request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<ProxyLog>,
    /// The subscriber path's proxy (event streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber: Option<ProxyLog>,
}

impl Network {
    /// Whether any path had a proxy.
    pub fn is_empty(&self) -> bool {
        self.publisher.is_none() && self.subscriber.is_none()
    }

    /// The proxy of `path`.
    pub fn path(&self, path: ProxyPath) -> Option<&ProxyLog> {
        match path {
            ProxyPath::Publisher => self.publisher.as_ref(),
            ProxyPath::Subscriber => self.subscriber.as_ref(),
        }
    }
}

/// A scenario's toxic timeline for reports (the `network` fact): each toxic's window
/// and reach, and beside each client's connections what the proxy did to them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Every declared toxic, by path.
    pub toxics: Vec<ToxicWindow>,
    /// The subscribers' connections through the proxy, by client.
    pub clients: Vec<ClientLine>,
    /// The publisher path, when it had a proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<PathTally>,
}

/// One toxic's schedule and how many connections it acted on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToxicWindow {
    /// The path.
    pub path: ProxyPath,
    /// Its name.
    pub name: String,
    /// Its kind (`latency`, `reset_peer`, …).
    pub kind: String,
    /// The direction it acts on.
    pub stream: Stream,
    /// Live from (ms since the scenario's start).
    pub from_ms: u64,
    /// Live until (absent: to the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Probability per connection.
    pub toxicity: f64,
    /// Connections it acted on.
    pub connections: u64,
    /// Its actions over all connections.
    pub actions: u64,
}

/// One client's connections and what the proxy did to each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientLine {
    /// The client.
    pub client: String,
    /// Its connections, in order.
    pub connections: Vec<ConnLine>,
}

/// One connection beside the toxics' actions on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnLine {
    /// The connection's index.
    pub index: u32,
    /// Opened, ms since the scenario's start.
    pub opened_ms: u64,
    /// Ended.
    pub ended_ms: u64,
    /// How it ended, in a word (`cut`, `silent`, `failed`, …).
    pub end: String,
    /// The proxy's connection number, when it went through the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_conn: Option<u64>,
    /// What the toxics did to it, in order, one line each (runs of `delayed`,
    /// `throttled` and `sliced` summed into one).
    pub marks: Vec<Mark>,
}

/// One toxic action (or a run of them) on a connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// When (the first of a run), ms since the scenario's start.
    pub at_ms: f64,
    /// The toxic, if one acted (a close is the proxy's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toxic: Option<String>,
    /// What happened, e.g. `reset (RST both ways)`, `stall 1501-4501 ms`,
    /// `delayed ×12 chunks, held up to 740.2 ms`.
    pub what: String,
}

/// A path's connections in numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PathTally {
    /// Connections relayed.
    pub connections: u64,
    /// Connections the proxy cut (reset, timeout, data limit).
    pub cut_by_proxy: u64,
    /// Connections cut while a request was unanswered (writes of unknown fate).
    pub indeterminate: u64,
}
