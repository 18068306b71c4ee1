//! `timeout`: stalls the connection (toxiproxy's `TimeoutToxic`): from the moment the
//! toxic is live for a connection no byte is forwarded and no close is passed on, in
//! **both** directions, whatever its `stream` (a network black hole; toxiproxy drops only
//! its own stream). Bytes read meanwhile are dropped and counted. After `timeout`
//! milliseconds the proxy closes both sides; with `timeout = 0` the stall lasts until the
//! toxic's window ends, it is removed or disabled, or the proxy stops — a half-open
//! connection whose end is the proxy's shutdown.

use serde::{Deserialize, Serialize};

use super::{AttrError, check_ms};

/// Black-holes the connection, then closes it after `timeout` ms (0 = never).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeout {
    /// Time from the stall's start to the close, in milliseconds (0..=3,600,000);
    /// 0 = stall without closing.
    #[serde(default)]
    pub timeout: u64,
}

impl Timeout {
    pub(crate) fn validate(&self) -> Result<(), AttrError> {
        check_ms("timeout", self.timeout)
    }
}
