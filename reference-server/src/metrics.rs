//! Counters for `GET /metrics`, per server (no global registry, so two servers in one
//! process do not mix). The Prometheus text format for four plain series is a few
//! lines; a metrics crate would add a global registry this design avoids.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open SSE streams.
    pub active_streams: AtomicI64,
    /// Events persisted by this process (shared with the store's writer).
    pub events_persisted: Arc<AtomicU64>,
    /// Data frames written to streams.
    pub events_delivered: AtomicU64,
    /// Streams closed with `slow_consumer`, and connections cut because a write made
    /// no progress.
    pub slow_consumer_closes: AtomicU64,
    /// Open connections.
    pub open_connections: AtomicI64,
    /// Connections refused because the cap on open connections (`Limits::max_connections`)
    /// was reached.
    pub connections_refused: AtomicU64,
    /// `accept` failures (out of file descriptors and the like).
    pub accept_errors: AtomicU64,
}

/// Decrements `active_streams` when a stream ends, however it ends.
#[derive(Debug)]
pub struct ActiveStream {
    metrics: Arc<Metrics>,
}

impl ActiveStream {
    /// Counts one more open stream until dropped.
    pub fn new(metrics: Arc<Metrics>) -> ActiveStream {
        metrics.active_streams.fetch_add(1, Ordering::Relaxed);
        ActiveStream { metrics }
    }
}

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.metrics.active_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self, head_seq: u64) -> String {
        let mut out = String::new();
        let series: [(&str, &str, &str, String); 8] = [
            (
                "spine_active_streams",
                "gauge",
                "Open SSE streams.",
                self.active_streams.load(Ordering::Relaxed).to_string(),
            ),
            (
                "spine_events_persisted_total",
                "counter",
                "Events persisted by this process.",
                self.events_persisted.load(Ordering::Relaxed).to_string(),
            ),
            (
                "spine_events_delivered_total",
                "counter",
                "Event frames written to streams.",
                self.events_delivered.load(Ordering::Relaxed).to_string(),
            ),
            (
                "spine_slow_consumer_closes_total",
                "counter",
                "Streams closed because the client fell behind.",
                self.slow_consumer_closes
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
            (
                "spine_open_connections",
                "gauge",
                "Open HTTP connections.",
                self.open_connections.load(Ordering::Relaxed).to_string(),
            ),
            (
                "spine_connections_refused_total",
                "counter",
                "Connections refused because the connection limit was reached.",
                self.connections_refused.load(Ordering::Relaxed).to_string(),
            ),
            (
                "spine_accept_errors_total",
                "counter",
                "Failed accepts (out of file descriptors and the like).",
                self.accept_errors.load(Ordering::Relaxed).to_string(),
            ),
            (
                "spine_head_seq",
                "gauge",
                "The committed head sequence number.",
                head_seq.to_string(),
            ),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}
