//! What the harness is willing to spend on one target: caps on what a connection
//! records, a byte budget shared by the clients of one scenario, a cap on every HTTP
//! body read, and the grace a scenario gets past its deadline before the runner aborts what is left.
//!
//! A target is untrusted: a flood of `:` comments or tiny events at loopback speed
//! must stop at a cap with a finding (the connection ends with
//! [`ConnEnd::RecordLimit`](harness_model::ConnEnd::RecordLimit)), not exhaust memory.
//! The caps are far above what legitimate scenarios record (the largest, CT-11's late
//! join, records about 100,500 frames on one connection). With them, the harness's
//! peak RSS while ten clients are flooded at loopback speed (CT-12/ten-clients-at-once,
//! `a_flood_stops_at_the_caps_in_bounded_memory`) stays under 1 GiB (measured: about
//! 330 MiB in a debug build); without them the same run passed 2 GiB in 6 s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use harness_model::RecordLimit;
use sse_wire::Item;

/// The caps; [`Limits::default`] is what a run uses unless told otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Frames recorded per connection.
    pub frames_per_conn: usize,
    /// Comment lines recorded per connection.
    pub comments_per_conn: usize,
    /// `retry:` fields recorded per connection.
    pub retries_per_conn: usize,
    /// Violations recorded per connection.
    pub violations_per_conn: usize,
    /// Estimated bytes all clients of one scenario may record together (see [`cost`]).
    pub scenario_bytes: u64,
    /// Most bytes read of any plain HTTP body (publish, create, metrics, head); the
    /// rest is dropped and the answer says it was truncated.
    pub http_body_bytes: usize,
    /// Most bytes kept of a refused stream's (non-2xx) body.
    pub error_body_bytes: usize,
}

/// The default of [`Limits::http_body_bytes`]: 1 MiB.
pub const DEFAULT_HTTP_BODY_BYTES: usize = 1024 * 1024;

/// The least time past its deadline a scenario may run before the runner aborts it.
pub const SCENARIO_GRACE: Duration = Duration::from_secs(30);

/// How long past a `deadline` a scenario may run before the runner aborts it: the
/// deadline again, at least [`SCENARIO_GRACE`] (probes legitimately wind down after
/// their deadline: a restart, a gauge settling over three heartbeats).
pub fn grace(deadline: Duration) -> Duration {
    deadline.max(SCENARIO_GRACE)
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frames_per_conn: 1_000_000,
            comments_per_conn: 1_000_000,
            retries_per_conn: 100_000,
            violations_per_conn: 100_000,
            scenario_bytes: DEFAULT_SCENARIO_BYTES,
            http_body_bytes: DEFAULT_HTTP_BODY_BYTES,
            error_body_bytes: 4096,
        }
    }
}

/// The default of [`Limits::scenario_bytes`]: 256 MiB.
pub const DEFAULT_SCENARIO_BYTES: u64 = 256 * 1024 * 1024;

/// The most MiB `--max-recorded-mib` accepts (1 TiB); the least is 1.
pub const MAX_RECORDED_MIB: u64 = 1 << 20;

impl Limits {
    /// These caps with `mib` MiB for [`Limits::scenario_bytes`] (`--max-recorded-mib`,
    /// for long runs on a machine with the memory for them). The per-connection counts
    /// of frames and comments grow in proportion when the budget grows (1,000,000 per
    /// 256 MiB), so one connection can use the whole budget; they never shrink below
    /// their defaults.
    pub fn with_recorded_mib(mut self, mib: u64) -> Limits {
        self.scenario_bytes = mib.saturating_mul(1024 * 1024);
        let scale = |n: usize| {
            let grown = (n as u128 * u128::from(self.scenario_bytes)
                / u128::from(DEFAULT_SCENARIO_BYTES)) as usize;
            grown.max(n)
        };
        self.frames_per_conn = scale(self.frames_per_conn);
        self.comments_per_conn = scale(self.comments_per_conn);
        self
    }
}

/// The recorded bytes of one scenario, shared by its clients.
#[derive(Debug, Default)]
pub struct Budget {
    spent: AtomicU64,
}

impl Budget {
    /// Charges `bytes`; false (and nothing charged) when that would pass `cap`.
    pub fn charge(&self, bytes: u64, cap: u64) -> bool {
        self.spent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |spent| {
                spent.checked_add(bytes).filter(|&total| total <= cap)
            })
            .is_ok()
    }

    /// Bytes charged so far.
    pub fn spent(&self) -> u64 {
        self.spent.load(Ordering::Relaxed)
    }
}

/// What recording `item` costs in memory, estimated: the record's own size plus its
/// text, and for events twice the data again for what the profile parses out of it.
pub fn cost(item: &Item) -> u64 {
    let n = match item {
        Item::Event(ev) => {
            std::mem::size_of::<harness_model::Frame>()
                + ev.event_type.len()
                + ev.id.as_ref().map_or(0, String::len)
                + 3 * ev.data.len()
                + 64
        }
        Item::Comment { text, .. } => std::mem::size_of::<harness_model::Comment>() + text.len(),
        Item::Retry { .. } => 16,
        Item::Violation(v) => std::mem::size_of::<harness_model::WireIssue>() + 24 + v.detail.len(),
        Item::Discarded { .. } | Item::UnknownField { .. } => 0,
    };
    n as u64
}

/// How many records of each capped kind a connection holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Held {
    /// Frames.
    pub frames: usize,
    /// Comments.
    pub comments: usize,
    /// Retries.
    pub retries: usize,
    /// Violations.
    pub violations: usize,
}

/// Whether one more `item` may be recorded on a connection holding `held`, charging
/// the scenario's budget when it may; the cap it would pass when not.
pub fn admit(item: &Item, held: Held, limits: &Limits, budget: &Budget) -> Result<(), RecordLimit> {
    let (count, cap, limit) = match item {
        Item::Event(_) => (held.frames, limits.frames_per_conn, RecordLimit::Frames),
        Item::Comment { .. } => (
            held.comments,
            limits.comments_per_conn,
            RecordLimit::Comments,
        ),
        Item::Retry { .. } => (held.retries, limits.retries_per_conn, RecordLimit::Retries),
        Item::Violation(_) => (
            held.violations,
            limits.violations_per_conn,
            RecordLimit::Violations,
        ),
        Item::Discarded { .. } | Item::UnknownField { .. } => return Ok(()),
    };
    if count >= cap {
        return Err(limit);
    }
    if !budget.charge(cost(item), limits.scenario_bytes) {
        return Err(RecordLimit::ScenarioBytes);
    }
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; the soft limit now in force.
/// Every client's stream is a descriptor: the usual soft default (1024) is far below
/// the ~28k streams one process can hold towards one target address and port (its
/// ephemeral ports), so a run of many clients would fail on `EMFILE` first.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    // An unlimited hard limit cannot be the soft one for descriptors (Linux caps it at
    // fs.nr_open); ask for a large finite number instead.
    let want = if hard == RLIM_INFINITY { 1 << 20 } else { hard };
    if soft >= want {
        return Ok(soft);
    }
    setrlimit(Resource::RLIMIT_NOFILE, want, hard).map_err(std::io::Error::from)?;
    Ok(want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_stops_at_its_cap_and_charges_nothing_past_it() {
        let b = Budget::default();
        assert!(b.charge(60, 100));
        assert!(!b.charge(41, 100));
        assert!(b.charge(40, 100));
        assert!(!b.charge(u64::MAX, 100));
        assert_eq!(b.spent(), 100);
    }

    #[test]
    fn a_larger_recording_budget_raises_the_per_connection_counts_with_it() {
        let d = Limits::default();
        let big = Limits::default().with_recorded_mib(2560);
        assert_eq!(big.scenario_bytes, 2560 << 20);
        assert_eq!(big.frames_per_conn, 10 * d.frames_per_conn);
        assert_eq!(big.comments_per_conn, 10 * d.comments_per_conn);
        assert_eq!(big.retries_per_conn, d.retries_per_conn);
        let small = Limits::default().with_recorded_mib(16);
        assert_eq!(small.scenario_bytes, 16 << 20);
        assert_eq!(small.frames_per_conn, d.frames_per_conn);
    }

    #[test]
    fn a_connection_stops_at_each_count_cap() {
        let limits = Limits {
            comments_per_conn: 2,
            ..Limits::default()
        };
        let b = Budget::default();
        let c = Item::Comment {
            offset: 0,
            text: String::new(),
        };
        let held = |comments| Held {
            comments,
            ..Held::default()
        };
        assert_eq!(admit(&c, held(1), &limits, &b), Ok(()));
        assert_eq!(admit(&c, held(2), &limits, &b), Err(RecordLimit::Comments));
    }
}
