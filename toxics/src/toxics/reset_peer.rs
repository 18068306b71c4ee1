//! `reset_peer`: on the first chunk of its `stream` while live, drops that chunk, waits
//! `timeout` milliseconds and resets both sides (close with SO_LINGER 0, so each peer
//! gets a TCP RST: ECONNRESET), as toxiproxy's `ResetToxic`.
//!
//! On the publisher path, `reset_peer` on `downstream` with `timeout = 0` fires on the
//! first response byte: the request went upstream in full and the client saw nothing.
//! The log's `closed` entry then says `indeterminate = true` (see
//! [`crate::Action::Closed`]), which is what the harness records as an indeterminate
//! write; no extra toxic is needed for it.

use serde::{Deserialize, Serialize};

use super::{AttrError, check_ms};

/// Resets the connection after the first chunk plus `timeout` ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPeer {
    /// Wait between the triggering chunk and the reset, in milliseconds (0..=3,600,000).
    #[serde(default)]
    pub timeout: u64,
}

impl ResetPeer {
    pub(crate) fn validate(&self) -> Result<(), AttrError> {
        check_ms("timeout", self.timeout)
    }
}
