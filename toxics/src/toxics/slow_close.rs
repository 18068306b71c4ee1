//! `slow_close`: when a side closes, holds the close (FIN) for `delay` milliseconds
//! before passing it on (toxiproxy's `SlowCloseToxic`).

use serde::{Deserialize, Serialize};

use super::{AttrError, check_ms};

/// Delays the close of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowClose {
    /// Delay before the close is passed on, in milliseconds (0..=3,600,000).
    pub delay: u64,
}

impl SlowClose {
    pub(crate) fn validate(&self) -> Result<(), AttrError> {
        check_ms("delay", self.delay)
    }
}
