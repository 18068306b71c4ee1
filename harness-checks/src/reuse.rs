//! Seq reuse, judged once for two families: one seq acknowledged or delivered for two
//! different writes is `durability.seq-not-reused` when a restart lies between them,
//! else `delivery.ack-matches` / `delivery.consistent`. The delivery family runs these;
//! when only durability is judged, it runs them for its half. Not a family itself.

use harness_model::ids;
use std::collections::{BTreeMap, BTreeSet};

use harness_model::{ClientId, Evidence, Seq};

use crate::view::{Ctx, Delivery, ms};

/// One seq acknowledged for two different writes: `durability.seq-not-reused` when a
/// restart lies between the two acks, else `delivery.ack-matches`.
pub(crate) fn reused_acks(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for (s, acks) in &ctx.ack_by_seq {
        let Some(other) = acks.iter().find(|a| a.marker != acks[0].marker) else {
            continue;
        };
        let a = acks[0];
        let (t0, t1) = (
            a.acked_us.min(other.acked_us),
            a.acked_us.max(other.acked_us),
        );
        let id = if ctx.rec.restarts.iter().any(|r| (t0..=t1).contains(r))
            && ctx.enabled("durability")
        {
            ids::DURABILITY_SEQ_NOT_REUSED
        } else {
            ids::DELIVERY_ACK_MATCHES
        };
        found.push((
            id,
            Evidence {
                seq: Some(*s),
                marker: Some(other.marker.clone()),
                at_ms: Some(ms(other.acked_us)),
                expected: format!(
                    "a fresh seq (seq {s} was acked for marker {} at {} ms)",
                    a.marker,
                    ms(a.acked_us)
                ),
                seen: format!("seq {s} acked again for marker {}", other.marker),
                ..Evidence::default()
            },
        ));
    }
    for (id, e) in found {
        ctx.emit(id, e);
    }
}

/// Same seq, different event, for two deliveries: `durability.seq-not-reused` when a
/// restart lies between them, else `delivery.consistent`.
pub(crate) fn numeric_consistent(ctx: &mut Ctx, flagged: &BTreeSet<(ClientId, Seq)>) {
    let mut reference: BTreeMap<Seq, (&ClientId, &Delivery)> = BTreeMap::new();
    let mut found = Vec::new();
    let mut reported = BTreeSet::new();
    for c in &ctx.clients {
        for d in &c.deliveries {
            let Some(s) = d.ev.seq else { continue };
            if flagged.contains(&(c.id().clone(), s))
                || ctx.ack_by_seq.get(&s).is_some_and(|a| a.len() > 1)
            {
                continue;
            }
            let Some((rc, r)) = reference.get(&s) else {
                reference.insert(s, (c.id(), d));
                continue;
            };
            let same = r.ev.digest == d.ev.digest
                && r.ev.job == d.ev.job
                && r.ev.event_type == d.ev.event_type;
            if same || !reported.insert((c.id().clone(), s)) {
                continue;
            }
            let (t0, t1) = (
                r.frame.at_us.min(d.frame.at_us),
                r.frame.at_us.max(d.frame.at_us),
            );
            let restart = ctx.rec.restarts.iter().any(|x| (t0..=t1).contains(x));
            let id = if restart && ctx.enabled("durability") {
                ids::DURABILITY_SEQ_NOT_REUSED
            } else {
                ids::DELIVERY_CONSISTENT
            };
            let show = |d: &Delivery| {
                format!(
                    "{} of job {} digest {}",
                    d.ev.event_type.as_deref().unwrap_or("(no type)"),
                    d.ev.job.as_deref().unwrap_or("(none)"),
                    d.ev.digest
                )
            };
            found.push((
                id,
                Evidence {
                    expected: format!("seq {s} to be {} as {rc} got it at {}", show(r), r.place()),
                    seen: show(d),
                    ..d.evidence(c.id())
                },
            ));
        }
    }
    for (id, e) in found {
        ctx.emit(id, e);
    }
}
