//! `liveness.*`: after clients vanish, the active-stream gauge returns to its baseline
//! within 2 x `heartbeat_ms` (plus one interval of slack for the sampling).

use harness_model::Evidence;
use harness_model::ids;

use crate::view::{Ctx, ms};

pub(crate) fn check(ctx: &mut Ctx) {
    if !ctx.enabled("liveness") {
        return;
    }
    let Some(p) = &ctx.rec.expect.liveness else {
        return;
    };
    let deadline = p
        .disconnected_us
        .saturating_add(p.heartbeat_ms.saturating_mul(3_000));
    let samples: Vec<(u64, f64)> = ctx
        .rec
        .gauges
        .get(&p.gauge)
        .map(|s| {
            s.iter()
                .copied()
                .filter(|(t, _)| *t >= p.disconnected_us)
                .collect()
        })
        .unwrap_or_default();
    let back = samples.iter().find(|(_, v)| *v <= p.baseline);
    let seen = match (back, samples.last()) {
        (Some((t, _)), _) if *t <= deadline => return,
        (Some((t, v)), _) => format!(
            "{} {v} only {} ms after the disconnect",
            p.gauge,
            ms(t - p.disconnected_us)
        ),
        (None, Some((t, v))) => format!(
            "{} still {v} {} ms after the disconnect (last sample)",
            p.gauge,
            ms(t - p.disconnected_us)
        ),
        (None, None) => format!("no sample of {} after the disconnect", p.gauge),
    };
    let e = Evidence {
        at_ms: Some(ms(p.disconnected_us)),
        expected: format!(
            "{} back to {} within {} ms of the disconnect (2 x heartbeat_ms + one interval of sampling slack)",
            p.gauge,
            p.baseline,
            p.heartbeat_ms * 3
        ),
        seen,
        ..Evidence::default()
    };
    ctx.emit(ids::LIVENESS_DISCONNECT_NOTICED, e);
}
