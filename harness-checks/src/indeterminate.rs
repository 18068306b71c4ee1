//! `delivery.indeterminate`: writes whose ack was lost, judged as Jepsen judges `:info`
//! operations. The harness sent the request and no answer came (the rule is the
//! harness's `fate` module), so the write may exist or not; both are legal. What is not:
//!
//! - **all or none**: a write of unknown fate that some subscriber received is owed,
//!   from then on, to every subscriber the owed rule ([`harness_model::owed`]) owes an
//!   ack sent when it was sent and acknowledged when it was first seen (or when the
//!   harness gave up, if later): such a subscriber that never receives it, while it
//!   read past the write (its seq lies inside one of its connections' spans) or read
//!   long enough after it (`ClientView::tail_owed`), is a finding;
//! - **one seq**: every copy of a write that lost an answer, its retries' ack included,
//!   carries one seq (one opaque id): two mean the target committed it twice (a retry
//!   with the same idempotency key taken as a new write), named with both seqs and the
//!   clients that saw them.
//!
//! Exactly once per subscriber is `resume.no-duplicate`'s (the same seq twice), and a
//! position consistent with every subscriber is `delivery.consistent`'s: writes of
//! unknown fate are in neither's exceptions. A write a retry resolved is an ack: the
//! lost-ack rules judge whether it arrived; only the one-seq rule is judged here.

use std::collections::BTreeMap;

use harness_model::{Evidence, Indeterminate, Seq, ids};

use crate::IdMode;
use crate::delivery::{connection_spans, ended, loss_clients};
use crate::view::{ClientView, Ctx, Delivery, ms};

pub(crate) fn check(ctx: &mut Ctx) {
    if ctx.uncertain.is_empty() {
        return;
    }
    // Every copy of each uncertain write, over every client, in recording order.
    let mut copies: BTreeMap<&str, Vec<(&ClientView, &Delivery)>> = BTreeMap::new();
    for c in ctx.log_clients() {
        for d in &c.deliveries {
            if let Some(m) = d.ev.marker.as_deref()
                && ctx.uncertain.contains_key(m)
            {
                copies.entry(m).or_default().push((c, d));
            }
        }
    }
    let mut found = Vec::new();
    for (&m, &w) in &ctx.uncertain {
        let seen = copies.get(m).map_or(&[][..], Vec::as_slice);
        found.extend(two_seqs(ctx, m, w, seen));
        if !w.resolved {
            found.extend(all_or_none(ctx, m, w, seen));
        }
    }
    for e in found {
        ctx.emit(ids::DELIVERY_INDETERMINATE, e);
    }
}

/// The identity a copy was delivered under: its seq (numeric ids) or its opaque id.
fn identity(ids: IdMode, d: &Delivery) -> Option<String> {
    match ids {
        IdMode::Numeric => d.ev.seq.map(|s| s.0.to_string()),
        IdMode::Opaque => d.ev.opaque_id.clone(),
    }
}

/// How the write came to be uncertain, for `expected`.
fn story(w: &Indeterminate) -> String {
    let key = w
        .key
        .as_deref()
        .map_or(String::new(), |k| format!(" with key {k}"));
    let end = if w.resolved {
        format!("acked by attempt {}", w.attempts)
    } else {
        format!("no answer in {} attempt(s)", w.attempts)
    };
    format!(
        "publisher {} lost the answer at {} ms ({}); {end}{key}",
        w.publisher,
        ms(w.sent_us),
        w.cause
    )
}

/// One seq per write: the first identity seen (the ack's first, when a retry was
/// acknowledged with seqs), and a finding at the first copy under another.
fn two_seqs(
    ctx: &Ctx,
    m: &str,
    w: &Indeterminate,
    seen: &[(&ClientView, &Delivery)],
) -> Option<Evidence> {
    let numeric = ctx.cfg.ids == IdMode::Numeric;
    let acked = ctx
        .ack_by_marker
        .get(m)
        .and_then(|a| a.seq)
        .filter(|_| numeric && w.resolved);
    let mut first: Option<(String, String)> = acked.map(|s| (s.0.to_string(), "its ack".into()));
    for (c, d) in seen {
        let Some(id) = identity(ctx.cfg.ids, d) else {
            continue;
        };
        let Some((id0, where0)) = &first else {
            first = Some((id, format!("{} at {}", c.id(), d.place())));
            continue;
        };
        if &id != id0 {
            let what = if numeric { "seq" } else { "id" };
            return Some(Evidence {
                expected: format!(
                    "marker {m} committed once, under {what} {id0} only ({})",
                    story(w)
                ),
                seen: format!(
                    "marker {m} under {what} {id0} ({where0}) and under {what} {id} ({} at {}): committed twice",
                    c.id(),
                    d.place()
                ),
                ..d.evidence(c.id())
            });
        }
    }
    None
}

/// All or none: once some client received the write, every client owed it.
fn all_or_none(
    ctx: &Ctx,
    m: &str,
    w: &Indeterminate,
    seen: &[(&ClientView, &Delivery)],
) -> Vec<Evidence> {
    let Some(&(fc, fd)) = seen.iter().min_by_key(|(_, d)| d.frame.at_us) else {
        return Vec::new();
    };
    let seq = fd.ev.seq;
    let as_ack = w.as_ack(m, seq, fd.frame.at_us);
    let ids = ctx.cfg.ids;
    let mut found = Vec::new();
    for c in loss_clients(ctx) {
        if seen.iter().any(|(x, _)| x.id() == c.id()) || !c.owed(&as_ack, ids) {
            continue;
        }
        let inside = match (ids, seq) {
            (IdMode::Numeric, Some(Seq(s))) => {
                connection_spans(c).iter().any(|&(lo, hi)| s > lo && s < hi)
            }
            _ => false,
        };
        if !(inside || c.tail_owed(&as_ack, ids)) {
            continue;
        }
        let (name, how) = match seq {
            Some(s) if ids == IdMode::Numeric => (format!("seq {s}"), "read past it"),
            _ => (format!("marker {m}"), "read on after it"),
        };
        let conn =
            c.t.connections
                .last()
                .expect("an owed client has a connection");
        found.push(Evidence {
            seq,
            marker: Some(m.to_owned()),
            expected: format!(
                "{name} (marker {m}, fate unknown: {}) delivered, as {} received it at {}",
                story(w),
                fc.id(),
                fd.place()
            ),
            seen: format!(
                "never delivered although the client was owed it and {how}; {}",
                ended(c)
            ),
            ..crate::view::at_frame(c.id(), conn, None)
        });
    }
    found
}
