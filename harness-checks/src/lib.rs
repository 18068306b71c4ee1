//! The contract checkers: pure functions from one scenario's [`Recording`] to the
//! [`Finding`]s it proves, and to the latency/rate histograms it measures.
//!
//! Nothing here does IO or reads a clock; the output order is deterministic (findings
//! are sorted by contract, client, connection, seq, then byte offset). One module per
//! contract family; the `view` module derives, in one pass, what they share (each
//! client's deliveries and owed rule, publisher order, vanished writes, error shapes),
//! and `reuse` judges seq reuse for the delivery and durability families, `jobs` a job
//! read back whole (its events, its receipt) for the lifecycle and durability families;
//! families never call each other. `metrics` and `facts` measure the same recording, and
//! `evidence` decides whether it proves anything at all (the Inconclusive verdict).
//!
//! Every checker is written to be conservative: a finding is only emitted when the
//! recording proves the target broke the contract, never when the harness itself (a
//! paused reader, a deliberate cut, a killed target) could explain what was seen.
#![deny(missing_docs)]

use std::collections::BTreeMap;

use harness_model::{Contracts, Finding, Metric, Recording};

mod browser;
mod delivery;
mod durability;
mod evidence;
mod facts;
mod fairness;
mod framing;
mod heartbeat;
mod indeterminate;
mod jobs;
mod lifecycle;
mod limits;
mod liveness;
mod metrics;
mod network;
mod resume;
mod resume_ids;
mod reuse;
mod stalled;
mod version;
mod view;
mod wire;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

pub use browser::{JUDGED_ON_BROWSERS, has_browsers, not_judged};
pub use evidence::{BACKPRESSURE_BYTES, cuts_executed, evidence};
pub use harness_model::IdMode;

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
    /// The longest interval an announced `heartbeat_ms` is taken at (a longer one is
    /// judged at this bound); None: only the model's clamp applies.
    pub heartbeat_max_ms: Option<u64>,
    /// The target promises that every stream starts with a `retry:` block of its own
    /// (the spine does; most SSE servers do not): `lifecycle.retry-first` is judged.
    pub retry_first: bool,
    /// `wire.open-time`: the longest a stream's head (and, with lifecycle frames, its
    /// first frame) may take after the request is sent, in ms.
    pub open_within_ms: u64,
    /// `wire.event-latency`: the longest an event of a slow trickle may take to be
    /// decodable after its publish is acknowledged, in ms.
    pub event_within_ms: u64,
    /// The level `wire.*` findings are reported at: the profile's (MUST on spine).
    pub wire_level: harness_model::Level,
    /// The contract families this scenario judges (e.g. `["resume","delivery"]`); the
    /// others are skipped. Empty means every family.
    pub families: Vec<harness_model::Family>,
}

/// Judges one scenario's recording: every finding of every judged family, sorted by
/// contract, client, connection, seq and byte offset.
///
/// Browser clients are judged only on the contracts a page can observe (see
/// [`JUDGED_ON_BROWSERS`]; [`not_judged`] lists the others).
pub fn check(contracts: &Contracts, cfg: &CheckConfig, rec: &Recording) -> Vec<Finding> {
    if browser::has_browsers(rec) {
        return browser::check(contracts, cfg, rec, check_all);
    }
    check_all(contracts, cfg, rec)
}

/// Every family on every transcript.
fn check_all(contracts: &Contracts, cfg: &CheckConfig, rec: &Recording) -> Vec<Finding> {
    let mut ctx = view::Ctx::new(contracts, cfg, rec);
    resume::check(&mut ctx);
    delivery::check(&mut ctx);
    lifecycle::check(&mut ctx);
    heartbeat::check(&mut ctx);
    version::check(&mut ctx);
    framing::check(&mut ctx);
    durability::check(&mut ctx);
    liveness::check(&mut ctx);
    stalled::check(&mut ctx);
    limits::check(&mut ctx);
    wire::check(&mut ctx);
    ctx.finish()
}

/// The scenario facts of a workload's recording (publish rate, per-group delivery
/// p99, slow readers' lag), by name; empty for recordings without a workload plan.
pub fn facts(rec: &Recording) -> BTreeMap<String, serde_json::Value> {
    let mut out = facts::facts(rec);
    out.extend(resume_ids::facts(rec));
    out.extend(browser::facts(rec));
    out
}

/// Latency and rate histograms from a recording (values in µs, or events/s for
/// [`Metric::ReplayRate`]); metrics with no sample are absent. `cfg` says how ids are
/// judged (what a reconnected client is owed depends on it).
pub fn measure(
    cfg: &CheckConfig,
    rec: &Recording,
) -> BTreeMap<Metric, hdrhistogram::Histogram<u64>> {
    metrics::measure(cfg.ids, rec)
}
