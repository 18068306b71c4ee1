//! The toxics, one file each, and their registry: [`Toxic`] is deserialised by its
//! `kind` tag, so an unknown kind is a load-time error listing [`KNOWN`].
//!
//! Names, attributes and units are toxiproxy's (github.com/Shopify/toxiproxy,
//! `toxics/*.go` and its README), so a scenario reads like a toxiproxy config.

mod bandwidth;
mod latency;
mod limit_data;
mod reset_peer;
mod slicer;
mod slow_close;
mod timeout;

use serde::{Deserialize, Serialize};

pub use self::bandwidth::Bandwidth;
pub use self::latency::Latency;
pub use self::limit_data::LimitData;
pub use self::reset_peer::ResetPeer;
pub use self::slicer::Slicer;
pub use self::slow_close::SlowClose;
pub use self::timeout::{StallMode, Timeout};

/// Every toxic kind, as spelled in TOML (`kind = "..."`).
pub const KNOWN: &[&str] = &[
    "latency",
    "bandwidth",
    "slicer",
    "slow_close",
    "timeout",
    "reset_peer",
    "limit_data",
];

/// Longest duration attribute, in milliseconds (one hour).
pub const MAX_MS: u64 = 3_600_000;

/// One toxic and its attributes, tagged by `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Toxic {
    /// See [`Latency`].
    Latency(Latency),
    /// See [`Bandwidth`].
    Bandwidth(Bandwidth),
    /// See [`Slicer`].
    Slicer(Slicer),
    /// See [`SlowClose`].
    SlowClose(SlowClose),
    /// See [`Timeout`].
    Timeout(Timeout),
    /// See [`ResetPeer`].
    ResetPeer(ResetPeer),
    /// See [`LimitData`].
    LimitData(LimitData),
}

impl Toxic {
    /// The kind as spelled in TOML (one of [`KNOWN`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Toxic::Latency(_) => "latency",
            Toxic::Bandwidth(_) => "bandwidth",
            Toxic::Slicer(_) => "slicer",
            Toxic::SlowClose(_) => "slow_close",
            Toxic::Timeout(_) => "timeout",
            Toxic::ResetPeer(_) => "reset_peer",
            Toxic::LimitData(_) => "limit_data",
        }
    }

    pub(crate) fn validate(&self) -> Result<(), AttrError> {
        match self {
            Toxic::Latency(t) => t.validate(),
            Toxic::Bandwidth(t) => t.validate(),
            Toxic::Slicer(t) => t.validate(),
            Toxic::SlowClose(t) => t.validate(),
            Toxic::Timeout(t) => t.validate(),
            Toxic::ResetPeer(t) => t.validate(),
            Toxic::LimitData(t) => t.validate(),
        }
    }
}

/// An attribute outside its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttrError {
    pub attr: &'static str,
    pub value: u64,
    pub valid: &'static str,
}

impl AttrError {
    pub(crate) fn new(attr: &'static str, value: u64, valid: &'static str) -> AttrError {
        AttrError { attr, value, valid }
    }
}

/// A millisecond attribute within `0..=MAX_MS`.
pub(crate) fn check_ms(attr: &'static str, value: u64) -> Result<(), AttrError> {
    if value > MAX_MS {
        return Err(AttrError::new(attr, value, "0..=3600000 (milliseconds)"));
    }
    Ok(())
}
