//! `framing.*`: in strict mode every wire violation the parser reported, and every
//! frame whose data the profile could not read as the promised JSON; in every mode,
//! lenient included, a parser stop (a line or an event over the size limit): the
//! stream could not be read on, which no leniency excuses.

use harness_model::ids;
use harness_model::{ConnEnd, Evidence, FrameKind, WireViolation};

use crate::view::{Ctx, at_frame, ms};

/// Whether the parser stops at this violation.
fn fatal(v: WireViolation) -> bool {
    matches!(v, WireViolation::LineTooLong | WireViolation::EventTooLarge)
}

pub(crate) fn check(ctx: &mut Ctx) {
    if !ctx.enabled("framing") {
        return;
    }
    let strict = ctx.cfg.strict;
    let mut found = Vec::new();
    for c in &ctx.clients {
        for conn in &c.t.connections {
            let stop_reported = conn.violations.iter().any(|v| fatal(v.kind));
            if conn.end == ConnEnd::ParserLimit && !stop_reported {
                found.push((
                    ids::FRAMING_WELL_FORMED,
                    Evidence {
                        expected: "lines and events within the parser's size limits".to_owned(),
                        seen: format!("the parser stopped after {} bytes", conn.body_bytes),
                        ..at_frame(c.id(), conn, None)
                    },
                ));
            }
            for v in conn.violations.iter().filter(|v| strict || fatal(v.kind)) {
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
            for f in conn.frames.iter().filter(|_| strict) {
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
