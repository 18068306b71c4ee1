//! `latency`: delays every chunk by `latency` ± `jitter` milliseconds, counted from the
//! moment the proxy read the chunk (toxiproxy's `LatencyToxic`). Chunks keep flowing
//! while earlier ones wait, so a stream of small events is shifted, not serialised.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{AttrError, check_ms};

/// Delay added to each chunk: uniform in `latency - jitter .. latency + jitter`
/// milliseconds (never below 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Base delay per chunk, in milliseconds (0..=3,600,000).
    #[serde(default)]
    pub latency: u64,
    /// Jitter, in milliseconds: the delay is drawn uniformly from ±`jitter` around
    /// `latency` with the connection's seeded RNG (0..=3,600,000).
    #[serde(default)]
    pub jitter: u64,
}

impl Latency {
    pub(crate) fn validate(&self) -> Result<(), AttrError> {
        check_ms("latency", self.latency)?;
        check_ms("jitter", self.jitter)
    }

    /// The delay for one chunk, drawn as toxiproxy does:
    /// `latency + rand(0 .. 2·jitter) − jitter`, clamped at 0.
    pub fn draw(&self, rng: &mut impl rand::Rng) -> Duration {
        let mut ms = self.latency as i64;
        if self.jitter > 0 {
            let j = self.jitter as i64;
            ms += rng.random_range(0..2 * j) - j;
        }
        Duration::from_millis(ms.max(0) as u64)
    }
}
