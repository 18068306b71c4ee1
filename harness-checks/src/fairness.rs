//! `delivery.fast-not-held-back` (spine §4.3, "never slowing the other subscribers
//! down"), a rule of the delivery family: in a workload whose slow readers stop reading
//! for a while (`pause_after_events`, `pause_ms`), the fast readers' publish → deliver
//! p99 for writes sent while the slow ones stall is compared with the same run's p99
//! for writes sent before any of them stalled. Judged from the recording alone: the
//! stall window is where the slow readers' transcripts show it.

use std::collections::BTreeMap;

use harness_model::{Ack, Evidence, FrameKind, GroupPlan, Transcript, ids};

use crate::view::{Ctx, delivery_latencies, ms};

/// The bound: the stalled phase's p99 may be this many times the baseline's...
pub(crate) const SLOWDOWN_FACTOR: u64 = 4;
/// ...plus this much (µs), so a noisy shared machine never fails a correct server.
pub(crate) const SLOWDOWN_SLACK_US: u64 = 1_000_000;
/// Fewer samples than this in either phase: not judged.
const MIN_SAMPLES: usize = 20;

/// Where a client of `group` stalled: from its `pause_after_events`-th data event on
/// its first connection, for `pause_ms`.
fn stall(t: &Transcript, g: &GroupPlan) -> Option<(u64, u64)> {
    let first = t.connections.first()?;
    let n = usize::try_from(g.pause_after_events).ok()?.checked_sub(1)?;
    let f = first
        .frames
        .iter()
        .filter(|f| matches!(f.kind, FrameKind::Data(_)))
        .nth(n)?;
    Some((
        f.at_us,
        f.at_us.saturating_add(g.pause_ms.saturating_mul(1000)),
    ))
}

/// The group a client belongs to (`<group>#<i>`).
fn group_of<'g>(t: &Transcript, groups: &'g [GroupPlan]) -> Option<&'g GroupPlan> {
    let name = t
        .client
        .0
        .split_once('#')
        .map_or(t.client.0.as_str(), |(g, _)| g);
    groups.iter().find(|g| g.name == name)
}

/// The 99th percentile of `v` (µs), by nearest rank.
fn p99(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    let rank = (v.len() * 99).div_ceil(100).max(1);
    v[rank - 1]
}

/// Fast readers' publish → deliver latencies, split by when the write was sent:
/// before `start` (baseline, live writes only) and within `[start, end]` (stalled).
fn latencies(
    fast: &[&Transcript],
    by_marker: &BTreeMap<&str, &Ack>,
    live_from: u64,
    (start, end): (u64, u64),
) -> (Vec<u64>, Vec<u64>) {
    let (mut base, mut stalled) = (Vec::new(), Vec::new());
    let frames = fast
        .iter()
        .filter_map(|t| t.connections.first())
        .flat_map(|c| &c.frames);
    for (sent, v) in delivery_latencies(frames, by_marker) {
        if (live_from..start).contains(&sent) {
            base.push(v);
        } else if (start..=end).contains(&sent) {
            stalled.push(v);
        }
    }
    (base, stalled)
}

pub(crate) fn fast_not_held_back(ctx: &mut Ctx) {
    let rec = ctx.rec;
    let Some(plan) = &rec.workload else {
        return;
    };
    let (mut slow, mut fast) = (Vec::new(), Vec::new());
    for t in &rec.transcripts {
        match group_of(t, &plan.groups) {
            Some(g) if g.pause_ms > 0 && g.pause_after_events > 0 => slow.push((t, g)),
            Some(g) if g.pause_ms == 0 && g.bytes_per_sec == 0 => fast.push(t),
            _ => {}
        }
    }
    let windows: Vec<(u64, u64)> = slow.iter().filter_map(|(t, g)| stall(t, g)).collect();
    let (Some(start), Some(end)) = (
        windows.iter().map(|w| w.0).min(),
        windows.iter().map(|w| w.1).max(),
    ) else {
        return;
    };
    let (base, stalled) = latencies(&fast, &ctx.ack_by_marker, plan.live_from_us, (start, end));
    if base.len() < MIN_SAMPLES || stalled.len() < MIN_SAMPLES {
        return;
    }
    let (nb, ns) = (base.len(), stalled.len());
    let (b99, s99) = (p99(base), p99(stalled));
    let bound = b99.saturating_mul(SLOWDOWN_FACTOR) + SLOWDOWN_SLACK_US;
    if s99 <= bound {
        return;
    }
    let e = Evidence {
        at_ms: Some(ms(start)),
        expected: format!(
            "fast readers' publish → deliver p99 while {} slow readers stalled ({} ms to {} ms) at most {} ms ({SLOWDOWN_FACTOR} × the baseline p99 {} ms over {nb} deliveries + {} ms)",
            slow.len(),
            ms(start),
            ms(end),
            ms(bound),
            ms(b99),
            ms(SLOWDOWN_SLACK_US)
        ),
        seen: format!("p99 {} ms over {ns} deliveries", ms(s99)),
        ..Evidence::default()
    };
    ctx.emit(ids::DELIVERY_FAST_NOT_HELD_BACK, e);
}
