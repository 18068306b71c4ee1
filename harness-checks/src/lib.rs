//! The contract checkers: pure functions from one scenario's [`Recording`] to the
//! [`Finding`]s it proves, and to the latency/rate histograms it measures.
//!
//! Nothing here does IO or reads a clock; the output order is deterministic (findings
//! are sorted by contract, client, connection, seq, then byte offset). One module per
//! contract family; a `view` module derives the per-client delivery lists they share.
//!
//! Every checker is written to be conservative: a finding is only emitted when the
//! recording proves the target broke the contract, never when the harness itself (a
//! paused reader, a deliberate cut, a killed target) could explain what was seen.
#![deny(missing_docs)]

use std::collections::BTreeMap;

use harness_model::{Contracts, Finding, Metric, Recording};

mod delivery;
mod durability;
mod framing;
mod heartbeat;
mod lifecycle;
mod limits;
mod liveness;
mod metrics;
mod resume;
mod version;
mod view;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

/// How the target's SSE ids are judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdMode {
    /// `id:` is the store's seq (a decimal u64): order and gaps are judged by seq.
    Numeric,
    /// `id:` is opaque: order and gaps are judged by the harness's publish markers.
    Opaque,
}

/// What the target sends to keep an idle stream alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeartbeatForm {
    /// Nothing: heartbeat silence is not judged.
    None,
    /// An event with this name (the spine's `heartbeat`).
    Event {
        /// The event name.
        name: String,
    },
    /// A comment line (`: …`).
    Comment,
}

/// What one scenario's checkers need to know about the target and the scenario.
#[derive(Clone, Debug)]
pub struct CheckConfig {
    /// How ids are judged.
    pub ids: IdMode,
    /// Strict framing: wire violations and malformed frames are MUST findings; lenient:
    /// they are not reported under `framing.*` (the runner logs them as warnings).
    pub strict: bool,
    /// The target sends spine lifecycle frames (`connection_open`, `error`,
    /// `connection_close`, `heartbeat`).
    pub lifecycle_frames: bool,
    /// What a heartbeat looks like.
    pub heartbeat: HeartbeatForm,
    /// The known heartbeat interval; None: take `heartbeat_ms` from each `connection_open`.
    pub heartbeat_ms: Option<u64>,
    /// The contract families this scenario judges (e.g. `["resume","delivery"]`); the
    /// others are skipped. Empty means every family.
    pub families: Vec<String>,
}

/// Judges one scenario's recording: every finding of every judged family, sorted by
/// contract, client, connection, seq and byte offset.
pub fn check(contracts: &Contracts, cfg: &CheckConfig, rec: &Recording) -> Vec<Finding> {
    let mut ctx = view::Ctx::new(contracts, cfg, rec);
    resume::check(&mut ctx);
    delivery::check(&mut ctx);
    lifecycle::check(&mut ctx);
    heartbeat::check(&mut ctx);
    version::check(&mut ctx);
    framing::check(&mut ctx);
    durability::check(&mut ctx);
    liveness::check(&mut ctx);
    limits::check(&mut ctx);
    ctx.finish()
}

/// Latency and rate histograms from a recording (values in µs, or events/s for
/// [`Metric::ReplayRate`]); metrics with no sample are absent.
pub fn measure(rec: &Recording) -> BTreeMap<Metric, hdrhistogram::Histogram<u64>> {
    metrics::measure(rec)
}
