//! `durability.*`: acknowledged writes survive restarts, seqs are never given twice,
//! SIGTERM closes every stream with `server_shutdown`, and the integrity report after
//! crashes has no MISMATCH or MISSING item.

use harness_model::ids;
use std::collections::BTreeSet;

use harness_model::{CloseReason, ConnEnd, Evidence};
use serde_json::Value;

use crate::IdMode;
use crate::jobs;
use crate::reuse;
use crate::view::{Ctx, at_frame, first_restart_after, ms, not_closed_with, str_field};

pub(crate) fn check(ctx: &mut Ctx) {
    if !ctx.enabled("durability") {
        return;
    }
    acked_survive(ctx);
    if !ctx.enabled("delivery") {
        // Seq reuse is judged with the delivery family; without it, for its durability half.
        reuse::reused_acks(ctx);
        if ctx.cfg.ids == IdMode::Numeric {
            reuse::numeric_consistent(ctx, &BTreeSet::new());
        }
    }
    shutdown_close(ctx);
    integrity(ctx);
    receipts_recomputed(ctx);
}

/// Every job the probe saw complete has a receipt item in the integrity report, and
/// its receipt recomputes over HTTP (hash, `events_sha256`, `event_count`).
fn receipts_recomputed(ctx: &mut Ctx) {
    let mut found = Vec::new();
    let items: Vec<&Value> = ctx
        .rec
        .integrity
        .as_ref()
        .and_then(|r| r.get("items"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    for job in ctx.rec.jobs.iter().filter(|j| jobs::completed(j)) {
        let listed = items.iter().any(|i| {
            str_field(i, "kind") == Some("receipt") && str_field(i, "job_id") == Some(&job.job)
        });
        if ctx.rec.integrity.is_some() && !listed {
            found.push(Evidence {
                expected: format!(
                    "a receipt item for completed job {} in the integrity report",
                    job.job
                ),
                seen: format!("{} items, none a receipt of that job", items.len()),
                ..Evidence::default()
            });
        }
        if let Some(p) = jobs::receipt_problem(job) {
            found.push(Evidence {
                expected: format!("job {}: {}", job.job, p.expected),
                seen: p.seen,
                ..Evidence::default()
            });
        }
    }
    for e in found {
        ctx.emit(ids::DURABILITY_RECEIPTS_RECOMPUTED, e);
    }
}

fn acked_survive(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for a in ctx
        .rec
        .acks
        .iter()
        .filter(|a| ctx.vanished.contains(a.marker.as_str()))
    {
        let restart = first_restart_after(&ctx.rec.restarts, a.acked_us).unwrap_or(0);
        let owed: Vec<&str> = ctx
            .log_clients()
            .filter(|c| c.owed(a, ctx.cfg.ids))
            .map(|c| c.id().0.as_str())
            .collect();
        let name = match a.seq {
            Some(s) => format!("seq {s}"),
            None => format!("marker {}", a.marker),
        };
        found.push(Evidence {
            seq: a.seq,
            marker: Some(a.marker.clone()),
            at_ms: Some(ms(a.acked_us)),
            expected: format!(
                "{name} (acked at {} ms, before the restart at {} ms) delivered after the restart",
                ms(a.acked_us),
                ms(restart)
            ),
            seen: format!("no client received it (owed to {})", owed.join(", ")),
            ..Evidence::default()
        });
    }
    for e in found {
        ctx.emit(ids::DURABILITY_ACKED_SURVIVE, e);
    }
}

fn shutdown_close(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for client in &ctx.rec.expect.shutdown {
        let Some(c) = ctx.client(client) else {
            continue;
        };
        let mut judged = BTreeSet::new();
        for &r in &ctx.rec.restarts {
            let Some(conn) = c.t.connections.iter().rev().find(|k| k.opened_us <= r) else {
                continue;
            };
            let left_before =
                matches!(conn.end, ConnEnd::Cut { .. } | ConnEnd::Finished) && conn.ended_us < r;
            if left_before || !judged.insert(conn.index) {
                continue;
            }
            let Some(seen) = not_closed_with(conn, CloseReason::ServerShutdown) else {
                continue;
            };
            found.push(Evidence {
                expected: format!(
                    "connection_close{{reason:server_shutdown}} for the shutdown at {} ms",
                    ms(r)
                ),
                seen,
                ..at_frame(client, conn, conn.frames.last())
            });
        }
    }
    for e in found {
        ctx.emit(ids::DURABILITY_SHUTDOWN_CLOSE, e);
    }
}

fn integrity(ctx: &mut Ctx) {
    let Some(report) = &ctx.rec.integrity else {
        return;
    };
    let mut found = Vec::new();
    match report.get("items").and_then(Value::as_array) {
        None => found.push(Evidence {
            expected: "an integrity report with an items array".to_owned(),
            seen: format!(
                "keys {:?}",
                report
                    .as_object()
                    .map(|o| o.keys().collect::<Vec<_>>())
                    .unwrap_or_default()
            ),
            ..Evidence::default()
        }),
        Some(items) => {
            for item in items {
                let status = str_field(item, "status").unwrap_or("(no status)");
                if !matches!(status, "MISMATCH" | "MISSING") {
                    continue;
                }
                let s = |k: &str| str_field(item, k).unwrap_or("(none)").to_owned();
                found.push(Evidence {
                    expected: format!(
                        "{} {} of job {} with sha256 {}",
                        s("kind"),
                        s("path"),
                        s("job_id"),
                        s("expected_hash")
                    ),
                    seen: format!("{status}, sha256 {}", s("actual_hash")),
                    ..Evidence::default()
                });
            }
        }
    }
    for e in found {
        ctx.emit(ids::DURABILITY_INTEGRITY, e);
    }
}
