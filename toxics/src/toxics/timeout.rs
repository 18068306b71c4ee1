//! `timeout`: stalls the connection (toxiproxy's `TimeoutToxic`): from the moment the
//! toxic is live for a connection no byte is forwarded and no close is passed on, in
//! **both** directions, whatever its `stream` (a network black hole; toxiproxy drops only
//! its own stream). After `timeout` milliseconds the proxy closes both sides; with
//! `timeout = 0` the stall lasts until the toxic's window ends, it is removed or
//! disabled, or the proxy stops — a half-open connection whose end is the proxy's
//! shutdown.
//!
//! What happens to the bytes meanwhile is the [`StallMode`]:
//!
//! - `discard` (the default, toxiproxy's behaviour): the proxy keeps reading both
//!   sockets and drops what it reads (counted). Each peer sees a reader that keeps up;
//!   its writes always complete.
//! - `hold` (not in toxiproxy): the proxy stops reading both sockets, as a dead link
//!   (a pulled cable, a NAT that forgot the flow) stops ACKing. The peers' send buffers
//!   fill and their writes stall: what a server's write-stall or slow-consumer
//!   machinery must notice. Nothing more is read or buffered; what the proxy had
//!   already read is forwarded, in order, once the stall ends.

use serde::{Deserialize, Serialize};

use super::{AttrError, check_ms};

/// Black-holes the connection, then closes it after `timeout` ms (0 = never).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeout {
    /// Time from the stall's start to the close, in milliseconds (0..=3,600,000);
    /// 0 = stall without closing.
    #[serde(default)]
    pub timeout: u64,
    /// Whether the proxy keeps reading (and dropping) during the stall or stops
    /// reading; see [`StallMode`].
    #[serde(default)]
    pub mode: StallMode,
}

/// What a `timeout` stall does with the peers' bytes (`mode = "discard" | "hold"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StallMode {
    /// Keep reading both sockets and drop the bytes (toxiproxy's behaviour): the peers'
    /// writes keep completing.
    #[default]
    Discard,
    /// Stop reading both sockets (a dead link): the peers' send buffers fill and their
    /// writes stall; bytes already read are forwarded when the stall ends.
    Hold,
}

impl Timeout {
    pub(crate) fn validate(&self) -> Result<(), AttrError> {
        check_ms("timeout", self.timeout)
    }
}
