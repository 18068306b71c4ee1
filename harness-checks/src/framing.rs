//! `framing.*` (strict mode only): every wire violation the parser reported, and every
//! frame whose data the profile could not read as the promised JSON.

use harness_model::ids;
use harness_model::{Evidence, FrameKind};

use crate::view::{Ctx, at_frame, ms};

pub(crate) fn check(ctx: &mut Ctx) {
    if !ctx.enabled("framing") || !ctx.cfg.strict {
        return;
    }
    let mut found = Vec::new();
    for c in &ctx.clients {
        for conn in &c.t.connections {
            for v in &conn.violations {
                found.push((
                    ids::FRAMING_WELL_FORMED,
                    Evidence {
                        byte_offset: Some(v.offset),
                        at_ms: None,
                        expected: "well-formed UTF-8 event-stream framing".to_owned(),
                        seen: format!("{}: {}", v.kind, v.detail),
                        ..at_frame(c.id(), conn, None)
                    },
                ));
            }
            for f in &conn.frames {
                if let FrameKind::Malformed { reason } = &f.kind {
                    found.push((
                        ids::FRAMING_JSON_DATA,
                        Evidence {
                            at_ms: Some(ms(f.at_us)),
                            expected: format!(
                                "JSON data with the profile's fields on event {}",
                                f.event
                            ),
                            seen: reason.clone(),
                            ..at_frame(c.id(), conn, Some(f))
                        },
                    ));
                }
            }
        }
    }
    for (id, e) in found {
        ctx.emit(id, e);
    }
}
