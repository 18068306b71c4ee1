//! `liveness.stalled-reader-freed`: subscribers behind a dead link (the toxic proxy
//! stopped reading their connections: no FIN, no RST) are a slow consumer once the
//! server's writes to them make no progress (spine §4.3). After the probe published
//! enough to fill every buffer between the server and them (`filled_us`), the server
//! must end those streams within its announced `write_stall_ms`, plus a slack of
//! 2 x `heartbeat_ms` (at least 2 s) for its paging and the gauge sampling:
//!
//! - the active-stream gauge returns to its baseline (what it read before the clients
//!   connected), having counted them first (a gauge that never counts proves nothing);
//! - the slow-consumer counter, when the profile names one, rises by at least the
//!   number of stalled streams by then.
//!
//! A probe whose stall did not reach every stream, or that could not publish enough
//! after it, proves nothing either way: the evidence rules make it inconclusive
//! (`Shortfall::StallNotReached`, `Shortfall::StallNotFilled`), and nothing is judged.

use harness_model::ids;
use harness_model::{Evidence, StalledReaderProbe};

use crate::view::{Ctx, ms};

/// The slack past `filled_us + write_stall_ms`, at least (see the module doc).
const MIN_SLACK_MS: u64 = 2_000;

pub(crate) fn check(ctx: &mut Ctx) {
    if !ctx.enabled("liveness") {
        return;
    }
    let Some(p) = ctx.rec.expect.stalled_reader.clone() else {
        return;
    };
    let Some(filled_us) = p.filled_us.filter(|_| p.stalled >= p.clients) else {
        return;
    };
    let slack_ms = p.heartbeat_ms.saturating_mul(2).max(MIN_SLACK_MS);
    let bound_ms = p.write_stall_ms.saturating_add(slack_ms);
    let deadline_us = filled_us.saturating_add(bound_ms.saturating_mul(1_000));
    let expected = |what: String| {
        format!(
            "{what} within {bound_ms} ms of the stall filling the buffers (write_stall_ms {} + {slack_ms} ms of slack)",
            p.write_stall_ms
        )
    };
    if let Some(seen) = never_counted(ctx, &p, filled_us) {
        let want = p.baseline + f64::from(p.clients);
        ctx.emit(
            ids::LIVENESS_STALLED_READER_FREED,
            Evidence {
                at_ms: Some(ms(filled_us)),
                expected: format!(
                    "{} at least {want} (baseline {} + {} stalled clients) before they are freed",
                    p.gauge, p.baseline, p.clients
                ),
                seen,
                ..Evidence::default()
            },
        );
        return;
    }
    let gauge = samples(ctx, &p.gauge);
    let back = gauge
        .iter()
        .find(|(t, v)| *t >= filled_us && *v <= p.baseline);
    if let Some(seen) = late(back, gauge.last(), &p.gauge, filled_us, deadline_us) {
        ctx.emit(
            ids::LIVENESS_STALLED_READER_FREED,
            Evidence {
                at_ms: Some(ms(filled_us)),
                expected: expected(format!("{} back to {}", p.gauge, p.baseline)),
                seen,
                ..Evidence::default()
            },
        );
        return;
    }
    let (Some(counter), Some(c0)) = (&p.counter, p.counter_baseline) else {
        return;
    };
    let want = c0 + f64::from(p.clients);
    let counted = samples(ctx, counter);
    let up = counted.iter().find(|(t, v)| *t >= filled_us && *v >= want);
    if let Some(seen) = late(up, counted.last(), counter, filled_us, deadline_us) {
        ctx.emit(
            ids::LIVENESS_STALLED_READER_FREED,
            Evidence {
                at_ms: Some(ms(filled_us)),
                expected: expected(format!(
                    "{counter} at least {want} ({c0} + {} stalled streams counted as slow consumers)",
                    p.clients
                )),
                seen,
                ..Evidence::default()
            },
        );
    }
}

/// The samples (time, value) of metric `name`, in order.
fn samples(ctx: &Ctx, name: &str) -> Vec<(u64, f64)> {
    ctx.rec.gauges.get(name).cloned().unwrap_or_default()
}

/// What was seen when the first sample meeting the goal (`hit`) came after
/// `deadline_us` or never came; `None` when it came in time.
fn late(
    hit: Option<&(u64, f64)>,
    last: Option<&(u64, f64)>,
    name: &str,
    from_us: u64,
    deadline_us: u64,
) -> Option<String> {
    match (hit, last) {
        (Some((t, _)), _) if *t <= deadline_us => None,
        (Some((t, v)), _) => Some(format!(
            "{name} {v} only {} ms after the buffers filled",
            ms(t - from_us)
        )),
        (None, Some((t, v))) => Some(format!(
            "{name} still {v} {} ms after the buffers filled (last sample)",
            ms(t.saturating_sub(from_us))
        )),
        (None, None) => Some(format!("no sample of {name}")),
    }
}

/// What was seen when no gauge sample before `filled_us` counted the stalled clients.
fn never_counted(ctx: &Ctx, p: &StalledReaderProbe, filled_us: u64) -> Option<String> {
    let want = p.baseline + f64::from(p.clients);
    let before: Vec<f64> = samples(ctx, &p.gauge)
        .into_iter()
        .filter(|(t, _)| *t < filled_us)
        .map(|(_, v)| v)
        .collect();
    if before.iter().any(|v| *v >= want) {
        return None;
    }
    Some(match before.iter().copied().reduce(f64::max) {
        Some(top) => format!(
            "{} at most {top} in {} sample(s) while they were stalled",
            p.gauge,
            before.len()
        ),
        None => format!("no sample of {} while they were stalled", p.gauge),
    })
}
