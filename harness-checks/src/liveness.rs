//! `liveness.*`: the active-stream gauge rises to at least its baseline plus the
//! clients while they are connected (a gauge that never counts proves nothing), and
//! after they vanish returns to its baseline within 2 x `heartbeat_ms` (plus one
//! interval of slack for the sampling).

use harness_model::ids;
use harness_model::{Evidence, LivenessProbe};

use crate::view::{Ctx, ms};

pub(crate) fn check(ctx: &mut Ctx) {
    if !ctx.enabled("liveness") {
        return;
    }
    let Some(p) = &ctx.rec.expect.liveness else {
        return;
    };
    if let Some(e) = never_rose(ctx, p) {
        ctx.emit(ids::LIVENESS_DISCONNECT_NOTICED, e);
        return;
    }
    let deadline = p
        .disconnected_us
        .saturating_add(p.heartbeat_ms.saturating_mul(3_000));
    let samples = gauge_samples(ctx, p, |t| t >= p.disconnected_us);
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

/// The probe's gauge samples (time, value) whose time passes `keep`, in order.
fn gauge_samples(ctx: &Ctx, p: &LivenessProbe, keep: impl Fn(u64) -> bool) -> Vec<(u64, f64)> {
    ctx.rec
        .gauges
        .get(&p.gauge)
        .map(|s| s.iter().copied().filter(|(t, _)| keep(*t)).collect())
        .unwrap_or_default()
}

/// Evidence that no sample taken while the clients were connected counted them all.
fn never_rose(ctx: &Ctx, p: &LivenessProbe) -> Option<Evidence> {
    if p.clients == 0 {
        return None;
    }
    let want = p.baseline + f64::from(p.clients);
    let before = gauge_samples(ctx, p, |t| t < p.disconnected_us);
    if before.iter().any(|(_, v)| *v >= want) {
        return None;
    }
    let seen = match before.iter().map(|(_, v)| *v).reduce(f64::max) {
        Some(top) => format!(
            "{} at most {top} in {} sample(s) while they were connected",
            p.gauge,
            before.len()
        ),
        None => format!("no sample of {} while they were connected", p.gauge),
    };
    Some(Evidence {
        at_ms: Some(ms(p.disconnected_us)),
        expected: format!(
            "{} at least {want} (baseline {} + {} clients) while the clients were connected",
            p.gauge, p.baseline, p.clients
        ),
        seen,
        ..Evidence::default()
    })
}
