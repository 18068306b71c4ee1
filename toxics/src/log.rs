//! The proxy's event log: every toxic action, with the time since the clock origin and
//! the connection it touched, so a report can say whether the network or the server was
//! late ("the proxy added 420 ms to this chunk"). Bounded: past its capacity further
//! events are counted in `dropped`, never stored.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::spec::Stream;

/// Default capacity of the log, in events.
pub const DEFAULT_LOG_CAPACITY: usize = 100_000;

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// A client connected and the upstream connection was made.
    Opened {
        /// The client's address as the proxy sees it (the harness's local address of
        /// that connection, so it can tell which of its clients `conn` is).
        client: std::net::SocketAddr,
    },
    /// The upstream connection failed; the client was closed.
    ConnectFailed {
        /// The error.
        error: String,
    },
    /// `latency` held a chunk.
    Delayed {
        /// Chunk size, in bytes.
        bytes: usize,
        /// The drawn delay (latency ± jitter), in milliseconds.
        delay_ms: u64,
        /// From the proxy reading the chunk to its release to the writer, in
        /// milliseconds (≥ `delay_ms` when the writer was busy).
        held_ms: f64,
    },
    /// `bandwidth` paced a chunk.
    Throttled {
        /// Chunk size, in bytes.
        bytes: usize,
        /// Time spent waiting for the rate, in milliseconds.
        waited_ms: f64,
    },
    /// `slicer` cut a chunk.
    Sliced {
        /// Chunk size, in bytes.
        bytes: usize,
        /// Number of pieces written.
        pieces: usize,
    },
    /// `timeout` began to black-hole the connection.
    StallStarted {
        /// The toxic's `timeout`, in milliseconds (0 = no close).
        timeout_ms: u64,
    },
    /// The stall ended (window over, toxic removed or disabled) and forwarding resumed.
    StallEnded {
        /// Bytes dropped during the stall (both directions).
        dropped_bytes: u64,
    },
    /// `reset_peer` fired: the triggering chunk was dropped and a reset will follow
    /// after `timeout_ms`.
    ResetTriggered {
        /// Size of the dropped chunk, in bytes.
        dropped_bytes: usize,
        /// Wait before the reset, in milliseconds.
        timeout_ms: u64,
    },
    /// `limit_data` reached its limit; the connection is closed.
    DataLimitReached {
        /// Bytes forwarded in this direction.
        bytes: u64,
    },
    /// `slow_close` held a close.
    SlowClose {
        /// The delay, in milliseconds.
        delay_ms: u64,
    },
    /// The connection ended. Always the last event of a connection (unless dropped by
    /// the log's cap).
    Closed {
        /// How it ended.
        how: CloseHow,
        /// Bytes forwarded upstream (written to the server).
        request_bytes: u64,
        /// Bytes read from the server.
        response_bytes_received: u64,
        /// Bytes forwarded downstream (written to the client).
        response_bytes_forwarded: u64,
        /// Request bytes forwarded upstream since the last response byte reached the
        /// client (on a keep-alive connection: the current request's).
        unanswered_request_bytes: u64,
        /// The proxy cut the connection (reset, timeout, data limit, its own stop) while
        /// request bytes it had forwarded upstream were unanswered, i.e. after the
        /// request went up and before any byte of its response reached the client: the
        /// write may or may not have been applied.
        indeterminate: bool,
    },
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseHow {
    /// Both sides closed in turn (FIN both ways).
    Normal,
    /// A read or write failed (a peer reset or vanished); both sides were closed.
    PeerError,
    /// `reset_peer`: both sides got an RST (SO_LINGER 0).
    Reset,
    /// `timeout` with a non-zero timeout closed both sides.
    TimedOut,
    /// `limit_data` closed both sides.
    DataLimit,
    /// The proxy was stopped.
    ProxyStopped,
}

impl CloseHow {
    /// Whether the proxy (a toxic or its shutdown) cut the connection.
    pub fn by_proxy(self) -> bool {
        matches!(
            self,
            CloseHow::Reset | CloseHow::TimedOut | CloseHow::DataLimit | CloseHow::ProxyStopped
        )
    }
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToxicEvent {
    /// Time since the clock origin, in milliseconds.
    pub at_ms: f64,
    /// The connection, numbered from 1 in accept order.
    pub conn: u64,
    /// The toxic's name, for toxic actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toxic: Option<String>,
    /// The direction acted on, for toxic actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<Stream>,
    /// What happened.
    #[serde(flatten)]
    pub action: Action,
}

/// The log's contents at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogSnapshot {
    /// Events in the order they were recorded.
    pub events: Vec<ToxicEvent>,
    /// Events not stored because the log was full.
    pub dropped: u64,
}

impl LogSnapshot {
    /// Connections whose `closed` entry says indeterminate.
    pub fn indeterminate(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter(|e| {
                matches!(
                    e.action,
                    Action::Closed {
                        indeterminate: true,
                        ..
                    }
                )
            })
            .map(|e| e.conn)
            .collect()
    }

    /// The events of one connection.
    pub fn of_conn(&self, conn: u64) -> impl Iterator<Item = &ToxicEvent> {
        self.events.iter().filter(move |e| e.conn == conn)
    }
}

#[derive(Debug)]
struct Inner {
    events: Vec<ToxicEvent>,
    dropped: u64,
    capacity: usize,
}

/// A shared, bounded event log (cheap to clone).
#[derive(Debug, Clone)]
pub struct EventLog {
    inner: Arc<Mutex<Inner>>,
}

impl EventLog {
    /// An empty log holding at most `capacity` events.
    pub fn new(capacity: usize) -> EventLog {
        EventLog {
            inner: Arc::new(Mutex::new(Inner {
                events: Vec::new(),
                dropped: 0,
                capacity,
            })),
        }
    }

    pub(crate) fn push(&self, ev: ToxicEvent) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.events.len() < g.capacity {
            g.events.push(ev);
        } else {
            g.dropped += 1;
        }
    }

    /// A copy of the events so far.
    pub fn snapshot(&self) -> LogSnapshot {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        LogSnapshot {
            events: g.events.clone(),
            dropped: g.dropped,
        }
    }
}
