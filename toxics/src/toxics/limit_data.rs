//! `limit_data`: forwards at most `bytes` bytes in its `stream`, then closes the
//! connection (toxiproxy's `LimitDataToxic`; the count is per connection and direction
//! and includes bytes forwarded before the toxic went live, as toxiproxy's state does).

use serde::{Deserialize, Serialize};

use super::AttrError;

/// Closes the connection once `bytes` bytes went through its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitData {
    /// Bytes forwarded before the close, in bytes (0..=2^53).
    pub bytes: u64,
}

impl LimitData {
    pub(crate) fn validate(&self) -> Result<(), AttrError> {
        if self.bytes > 1 << 53 {
            return Err(AttrError::new(
                "bytes",
                self.bytes,
                "0..=9007199254740992 (bytes)",
            ));
        }
        Ok(())
    }
}
