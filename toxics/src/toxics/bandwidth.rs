//! `bandwidth`: limits a direction to `rate` KB/s (toxiproxy's `BandwidthToxic`: 1 KB =
//! 1,000 bytes, i.e. `rate` bytes per millisecond). A chunk is written in pieces of at
//! most 100 ms worth of bytes, each released when the pacing clock allows it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::AttrError;

/// Throughput cap of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bandwidth {
    /// Rate, in KB/s (1 KB = 1,000 bytes), 1..=10,000,000.
    pub rate: u64,
}

impl Bandwidth {
    pub(crate) fn validate(&self) -> Result<(), AttrError> {
        if !(1..=10_000_000).contains(&self.rate) {
            return Err(AttrError::new(
                "rate",
                self.rate,
                "1..=10000000 (KB/s, 1 KB = 1000 bytes)",
            ));
        }
        Ok(())
    }

    /// Largest piece written at once: 100 ms worth of bytes.
    pub fn piece(&self) -> usize {
        (self.rate.saturating_mul(100)).min(usize::MAX as u64) as usize
    }

    /// Time `bytes` take at this rate.
    pub fn time_for(&self, bytes: usize) -> Duration {
        Duration::from_nanos((bytes as u64).saturating_mul(1_000_000) / self.rate.max(1))
    }
}
