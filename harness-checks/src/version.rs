//! `version.*`: version events' fields, the pending queue flushed in order after
//! `connection_open`, and one stream per request id (`replaced`).

use harness_model::ids;
use harness_model::{CloseReason, Evidence, FrameKind};
use serde_json::Value;

use crate::view::{Ctx, at_frame, is_lifecycle, not_closed_with, str_field};

pub(crate) fn check(ctx: &mut Ctx) {
    if !ctx.enabled("version") {
        return;
    }
    fields(ctx);
    pending_order(ctx);
    replaced(ctx);
}

fn fields(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for c in &ctx.clients {
        for conn in &c.t.connections {
            for f in &conn.frames {
                let FrameKind::Version { fields } = &f.kind else {
                    continue;
                };
                let missing: Vec<&str> = [
                    "request_id",
                    "version",
                    "environment",
                    "git_commit",
                    "correlation_id",
                ]
                .into_iter()
                .filter(|k| match *k {
                    // environment and git_commit are null when the notify left them out.
                    "environment" | "git_commit" => fields
                        .get(k)
                        .is_none_or(|v| !(v.is_string() || v.is_null())),
                    _ => str_field(fields, k).is_none(),
                })
                .collect();
                let seen = if f.event != "version" {
                    format!("event: {}", f.event)
                } else if !missing.is_empty() {
                    format!("missing or mistyped {}", missing.join(", "))
                } else if let Some(id) = &f.id {
                    format!("id: {id}")
                } else {
                    continue;
                };
                found.push(Evidence {
                    expected: "event: version with request_id, version, environment, git_commit, correlation_id and no id"
                        .to_owned(),
                    seen,
                    ..at_frame(c.id(), conn, Some(f))
                });
            }
        }
    }
    for e in found {
        ctx.emit(ids::VERSION_FIELDS, e);
    }
}

fn version_text(fields: &Value) -> String {
    match fields.get("version") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "(none)".to_owned(),
    }
}

/// An expected version matches the one received; `*` stands for any version (the
/// running server's own, which the harness cannot know).
fn same_version(want: &str, got: &str) -> bool {
    want == "*" || want == got
}

fn pending_order(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for (client, want) in &ctx.rec.expect.versions {
        let Some(c) = ctx.client(client) else {
            continue;
        };
        let mut got = Vec::new();
        let mut first_bad = None;
        for conn in &c.t.connections {
            let mut opened = !ctx.cfg.lifecycle_frames;
            for f in &conn.frames {
                if is_lifecycle(f, "connection_open") {
                    opened = true;
                }
                let FrameKind::Version { fields } = &f.kind else {
                    continue;
                };
                let v = version_text(fields);
                if first_bad.is_none()
                    && (!opened || !want.get(got.len()).is_some_and(|w| same_version(w, &v)))
                {
                    first_bad = Some((conn, f));
                }
                got.push(v);
            }
        }
        if got.len() == want.len() && first_bad.is_none() {
            continue;
        }
        let (conn, f) = match first_bad {
            Some((conn, f)) => (conn, Some(f)),
            None => match c.t.connections.last() {
                Some(conn) => (conn, None),
                None => continue,
            },
        };
        found.push(Evidence {
            expected: format!(
                "versions [{}] after connection_open, in order",
                want.join(", ")
            ),
            seen: format!("[{}]", got.join(", ")),
            ..at_frame(client, conn, f)
        });
    }
    for e in found {
        ctx.emit(ids::VERSION_PENDING_ORDER, e);
    }
}

fn replaced(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for client in &ctx.rec.expect.replaced {
        let Some(c) = ctx.client(client) else {
            continue;
        };
        let Some(conn) = c.t.connections.last() else {
            continue;
        };
        let Some(seen) = not_closed_with(conn, CloseReason::Replaced) else {
            continue;
        };
        found.push(Evidence {
            expected: "the stream to end with connection_close{reason:replaced}".to_owned(),
            seen,
            ..at_frame(client, conn, conn.frames.last())
        });
    }
    for e in found {
        ctx.emit(ids::VERSION_REPLACED, e);
    }
}
