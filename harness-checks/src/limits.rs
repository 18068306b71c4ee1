//! `gate.record-limit`: a connection the harness stopped at one of its recording caps
//! (a flood of frames, comments, retries or violations, or the scenario's shared byte
//! budget). The harness cannot judge what it did not record, so the scenario must not
//! pass: this is reported whatever contract families the scenario judges.

use harness_model::ids;
use harness_model::{ConnEnd, Evidence};

use crate::view::{Ctx, at_frame};

pub(crate) fn check(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for c in &ctx.clients {
        for conn in &c.t.connections {
            if let ConnEnd::RecordLimit { limit } = &conn.end {
                found.push(Evidence {
                    byte_offset: Some(conn.body_bytes),
                    expected: "a stream the harness can record within its caps".to_owned(),
                    seen: format!(
                        "stopped at the cap {} after {} frames, {} comments, {} retries, {} violations and {} body bytes",
                        limit.name(),
                        conn.frames.len(),
                        conn.comments.len(),
                        conn.retries.len(),
                        conn.violations.len(),
                        conn.body_bytes
                    ),
                    ..at_frame(c.id(), conn, None)
                });
            }
        }
    }
    for e in found {
        ctx.emit_always(ids::GATE_RECORD_LIMIT, e);
    }
}
