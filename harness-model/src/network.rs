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
    /// Everything it did, in order; `at_ms` counts from the scenario's start.
    pub log: LogSnapshot,
}

impl ProxyLog {
    /// The latency toxics' worst added delay (latency + jitter, ms) live at `at_ms`
    /// on the downstream (server → client) side: the most the proxy may hold a byte
    /// of a response that reached it then. 0 without such a toxic.
    pub fn declared_downstream_delay_ms(&self, at_ms: u64) -> u64 {
        self.toxics
            .iter()
            .filter(|t| t.stream == Stream::Downstream && t.live_at(at_ms))
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
