//! `lifecycle.*`: the grammar of every stream: headers, the leading `retry:` block,
//! `connection_open` first, no ids on lifecycle frames, nothing after
//! `connection_close`, errors before abnormal closes, task-stream ends, and one
//! correlation id per connection.

use harness_model::{CloseReason, KnownContract, ids};
use std::collections::BTreeSet;

use harness_model::{ClientId, ConnEnd, Connection, Evidence, Frame, FrameKind, StreamKind};
use serde_json::Value;

use crate::IdMode;
use crate::jobs;
use crate::view::{
    Ctx, Cursor, at_conn, at_frame, cursor_of, describe, describe_end, error_shape, is_lifecycle,
    lifecycle, str_field,
};

pub(crate) fn check(ctx: &mut Ctx) {
    // Frame ids are judged by whichever family owns the frame, even when lifecycle is off.
    no_id(ctx);
    if !ctx.enabled("lifecycle") {
        return;
    }
    let shaped = shape_clients(ctx);
    let mut found: Vec<(KnownContract, Evidence)> = Vec::new();
    for c in &ctx.clients {
        let id = c.id();
        for conn in &c.t.connections {
            if !conn.status.is_some_and(|s| (200..300).contains(&s))
                || ctx.finished_task_204(c.t, conn)
            {
                continue;
            }
            found.extend(
                headers(id, conn, ctx.cfg.lifecycle_frames).map(|e| (ids::LIFECYCLE_HEADERS, e)),
            );
            if ctx.cfg.retry_first {
                found.extend(retry_first(id, conn).map(|e| (ids::LIFECYCLE_RETRY_FIRST, e)));
            }
            if ctx.cfg.lifecycle_frames {
                found.extend(
                    close_reason(c.t.stream, id, conn).map(|e| (ids::LIFECYCLE_CLOSE_REASON, e)),
                );
            }
            if ctx.cfg.lifecycle_frames && !shaped.contains(id) {
                found.extend(
                    open_first(ctx, c.t.stream, id, conn).map(|e| (ids::LIFECYCLE_OPEN_FIRST, e)),
                );
            }
            if !shaped.contains(id) {
                found.extend(close_last(id, conn).map(|e| (ids::LIFECYCLE_CLOSE_LAST, e)));
            }
            // Judged on every client, those with a shape contract of their own included:
            // they are exactly the ones that get error + close pairs.
            found.extend(
                error_before_close(id, conn).map(|e| (ids::LIFECYCLE_ERROR_BEFORE_CLOSE, e)),
            );
            found.extend(correlation(ctx, id, conn).map(|e| (ids::LIFECYCLE_CORRELATION_ID, e)));
        }
    }
    found.extend(task_content(ctx));
    for (client, reason) in &ctx.rec.expect.task_terminal {
        found.extend(
            terminal_close(ctx, client, *reason)
                .into_iter()
                .map(|e| (ids::LIFECYCLE_TERMINAL_CLOSE, e)),
        );
    }
    for client in &ctx.rec.expect.task_not_found {
        let Some(c) = ctx.client(client) else {
            continue;
        };
        for conn in &c.t.connections {
            found.extend(
                error_shape(client, conn, CloseReason::TaskNotFound)
                    .map(|e| (ids::LIFECYCLE_TASK_NOT_FOUND, e)),
            );
        }
    }
    for (id, e) in found {
        ctx.emit(id, e);
    }
}

/// Clients judged by a shape contract of their own (`cursor_ahead`, `task_not_found`):
/// the generic grammar checks leave them alone so one problem is reported once.
fn shape_clients(ctx: &Ctx) -> BTreeSet<ClientId> {
    let e = &ctx.rec.expect;
    let mut s: BTreeSet<ClientId> = e.task_not_found.iter().cloned().collect();
    if ctx.enabled("resume") {
        s.extend(e.cursor_ahead.iter().cloned());
    }
    s
}

/// Content-Type `text/event-stream` is required of every SSE server; `Cache-Control:
/// no-cache` is spine §4's own rule, so it is judged only on spine-like targets (those
/// with lifecycle frames).
fn headers(id: &ClientId, conn: &Connection, spine: bool) -> Option<Evidence> {
    let ct = conn
        .headers
        .get("content-type")
        .map(|s| s.trim().to_ascii_lowercase());
    let cc = conn
        .headers
        .get("cache-control")
        .map(|s| s.to_ascii_lowercase());
    let seen = if !ct
        .as_deref()
        .is_some_and(|c| c.starts_with("text/event-stream"))
    {
        format!("content-type {}", ct.as_deref().unwrap_or("(none)"))
    } else if spine && !cc.as_deref().is_some_and(|c| c.contains("no-cache")) {
        format!("cache-control {}", cc.as_deref().unwrap_or("(none)"))
    } else {
        return None;
    };
    Some(Evidence {
        expected: if spine {
            "content-type text/event-stream and cache-control no-cache".to_owned()
        } else {
            "content-type text/event-stream".to_owned()
        },
        seen,
        ..at_conn(id, conn)
    })
}

/// Judged only on a first block that was completely received: a connection the
/// harness cut before any frame was dispatched and before any `retry:` line was read
/// may have been cut inside that block.
fn retry_first(id: &ClientId, conn: &Connection) -> Option<Evidence> {
    if conn.body_bytes == 0 {
        return None;
    }
    let cut_early = matches!(conn.end, ConnEnd::Cut { .. })
        && conn.frames.is_empty()
        && conn.retries.is_empty();
    if cut_early {
        return None;
    }
    let first = conn.frames.first();
    let ok = conn.retries.iter().any(|(off, _)| *off == 0) && first.is_none_or(|f| f.start > 0);
    if ok {
        return None;
    }
    let seen = match (conn.retries.first(), first) {
        (Some((0, _)), Some(f)) => format!("retry inside the first event block ({})", describe(f)),
        (Some((off, _)), _) => format!("the first retry at byte {off}"),
        (None, Some(f)) => format!("{} first, no retry", describe(f)),
        (None, None) => "no retry".to_owned(),
    };
    Some(Evidence {
        expected: "a block of its own with retry: <ms> at byte 0".to_owned(),
        seen,
        ..at_frame(id, conn, first)
    })
}

/// The reasons a stream of `kind` may end with (spine §4.1; `server_shutdown` and
/// `slow_consumer` on every log stream, §4.3).
fn allowed_reasons(kind: StreamKind) -> &'static [CloseReason] {
    use CloseReason::*;
    match kind {
        StreamKind::Events => &[ServerShutdown, SlowConsumer, CursorAhead],
        StreamKind::Task => &[
            ServerShutdown,
            SlowConsumer,
            CursorAhead,
            TaskCompleted,
            TaskFailed,
            TaskNotFound,
        ],
        StreamKind::Version => &[Replaced, ServerShutdown],
    }
}

/// A `connection_close` whose reason is unknown or not one its stream may end with.
fn close_reason(kind: StreamKind, id: &ClientId, conn: &Connection) -> Option<Evidence> {
    let allowed = allowed_reasons(kind);
    conn.frames.iter().find_map(|f| {
        let (name, fields) = lifecycle(f)?;
        if name != "connection_close" {
            return None;
        }
        let reason = str_field(fields, "reason");
        let ok = reason
            .and_then(|r| r.parse::<CloseReason>().ok())
            .is_some_and(|r| allowed.contains(&r));
        (!ok).then(|| Evidence {
            expected: format!(
                "a {} stream closed with reason {}",
                stream_name(kind),
                allowed
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            seen: describe(f),
            ..at_frame(id, conn, Some(f))
        })
    })
}

/// The spine's name of a stream kind.
fn stream_name(kind: StreamKind) -> &'static str {
    match kind {
        StreamKind::Events => "events",
        StreamKind::Task => "task",
        StreamKind::Version => "version",
    }
}

fn open_first(ctx: &Ctx, stream: StreamKind, id: &ClientId, conn: &Connection) -> Option<Evidence> {
    let want = stream_name(stream);
    let expected =
        format!("connection_open with stream {want}, head_seq, resume_from and heartbeat_ms first");
    let Some(f) = conn.frames.first() else {
        return (conn.end == ConnEnd::ServerClosed).then(|| Evidence {
            expected,
            seen: "the response ending with no frame".to_owned(),
            ..at_conn(id, conn)
        });
    };
    let seen = match lifecycle(f) {
        Some(("connection_open", fields)) => open_fields(ctx, stream, want, conn, fields)?,
        _ => describe(f),
    };
    Some(Evidence {
        expected,
        seen,
        ..at_frame(id, conn, Some(f))
    })
}

/// What is wrong with a `connection_open`'s fields, if anything.
fn open_fields(
    ctx: &Ctx,
    stream: StreamKind,
    want: &str,
    conn: &Connection,
    fields: &Value,
) -> Option<String> {
    if str_field(fields, "stream") != Some(want) {
        return Some(format!(
            "stream {}",
            fields.get("stream").unwrap_or(&Value::Null)
        ));
    }
    let head = fields.get("head_seq");
    let head_ok = match ctx.cfg.ids {
        IdMode::Numeric => head.is_some_and(Value::is_u64),
        IdMode::Opaque => head.is_some(),
    };
    if !head_ok {
        return Some(format!(
            "head_seq {}",
            head.map_or("missing".to_owned(), Value::to_string)
        ));
    }
    if !fields.get("heartbeat_ms").is_some_and(Value::is_u64) {
        return Some(format!(
            "heartbeat_ms {}",
            fields
                .get("heartbeat_ms")
                .map_or("missing".to_owned(), Value::to_string)
        ));
    }
    let Some(from) = fields.get("resume_from") else {
        return Some("no resume_from".to_owned());
    };
    let ok = match (cursor_of(&conn.cursor), stream) {
        (_, StreamKind::Version) => from.is_null() || from.is_u64(),
        (Cursor::Absent, _) => from.is_null(),
        (Cursor::Seq(l), _) => from.as_u64() == Some(l),
        (Cursor::Opaque(_), _) => true,
    };
    (!ok).then(|| {
        let sent = conn
            .cursor
            .as_deref()
            .map_or("none".to_owned(), |c| format!("cursor {c}"));
        format!("resume_from {from} for {sent}")
    })
}

fn no_id(ctx: &mut Ctx) {
    let mut found = Vec::new();
    for c in &ctx.clients {
        for conn in &c.t.connections {
            for f in &conn.frames {
                let Some(raw) = &f.id else { continue };
                let (owner, what) = match &f.kind {
                    FrameKind::Lifecycle { name, .. } => ("lifecycle", name.as_str()),
                    FrameKind::Heartbeat { .. } => ("heartbeat", "heartbeat"),
                    FrameKind::Version { .. } => ("version", "version"),
                    _ => continue,
                };
                // Heartbeat and version frames' ids are their own family's, when judged.
                if owner != "lifecycle" && ctx.enabled(owner) {
                    continue;
                }
                found.push(Evidence {
                    expected: format!("no id: on {what}"),
                    seen: format!("id: {raw}"),
                    ..at_frame(c.id(), conn, Some(f))
                });
            }
        }
    }
    for e in found {
        ctx.emit(ids::LIFECYCLE_NO_ID, e);
    }
}

fn close_last(id: &ClientId, conn: &Connection) -> Option<Evidence> {
    let i = conn
        .frames
        .iter()
        .position(|f| is_lifecycle(f, "connection_close"))?;
    let close = &conn.frames[i];
    let expected = "nothing after connection_close, and the end of the response".to_owned();
    if let Some(f) = conn.frames.get(i + 1) {
        return Some(Evidence {
            expected,
            seen: format!("{} after it", describe(f)),
            ..at_frame(id, conn, Some(f))
        });
    }
    if let Some(c) = conn.comments.iter().find(|c| c.offset >= close.end) {
        return Some(Evidence {
            expected,
            seen: format!("comment {:?} at byte {} after it", c.text, c.offset),
            ..at_frame(id, conn, Some(close))
        });
    }
    (conn.end == ConnEnd::Deadline).then(|| Evidence {
        expected,
        seen: format!("the response still open until {}", describe_end(&conn.end)),
        ..at_frame(id, conn, Some(close))
    })
}

fn error_before_close(id: &ClientId, conn: &Connection) -> Option<Evidence> {
    let (i, reason) = conn
        .frames
        .iter()
        .enumerate()
        .find_map(|(i, f)| match lifecycle(f) {
            Some(("connection_close", fields)) => str_field(fields, "reason")
                .filter(|r| {
                    matches!(
                        r.parse(),
                        Ok(CloseReason::TaskNotFound | CloseReason::CursorAhead)
                    )
                })
                .map(|r| (i, r)),
            _ => None,
        })?;
    let has_error = conn.frames[..i].iter().any(|f| {
        lifecycle(f).is_some_and(|(n, fl)| n == "error" && str_field(fl, "code") == Some(reason))
    });
    (!has_error).then(|| {
        let f = &conn.frames[i];
        let seen = match i.checked_sub(1).map(|p| &conn.frames[p]) {
            Some(p) => format!("{} then {}", describe(p), describe(f)),
            None => format!("{} with no error before it", describe(f)),
        };
        Evidence {
            expected: format!("error{{code:{reason}}} before connection_close{{reason:{reason}}}"),
            seen,
            ..at_frame(id, conn, Some(f))
        }
    })
}

fn terminal_close(ctx: &Ctx, client: &ClientId, want: CloseReason) -> Vec<Evidence> {
    let Some(c) = ctx.client(client) else {
        return Vec::new();
    };
    let expected = format!("connection_close{{reason:{want}}} right after the terminal event");
    let mut found = Vec::new();
    let mut closed = false;
    for conn in &c.t.connections {
        if ctx.finished_task_204(c.t, conn) {
            closed = true;
            continue;
        }
        let terminal = conn.frames.iter().position(|f| {
            matches!(&f.kind, FrameKind::Data(d)
                if matches!(d.event_type.as_deref(), Some("task_completed" | "task_failed")))
        });
        let close = conn
            .frames
            .iter()
            .position(|f| is_lifecycle(f, "connection_close"));
        let reason =
            |i: usize| lifecycle(&conn.frames[i]).and_then(|(_, f)| str_field(f, "reason"));
        match (terminal, close) {
            (Some(t), _) => {
                closed = true;
                let next = conn.frames.get(t + 1);
                let fits = next.is_some_and(|f| {
                    is_lifecycle(f, "connection_close")
                        && lifecycle(f).and_then(|(_, fl)| str_field(fl, "reason"))
                            == Some(want.name())
                });
                if !fits {
                    let term = describe(&conn.frames[t]);
                    let seen = match next {
                        Some(f) => format!("{term} then {}", describe(f)),
                        None => format!("{term} then {}", describe_end(&conn.end)),
                    };
                    found.push(Evidence {
                        expected: expected.clone(),
                        seen,
                        ..at_frame(client, conn, next.or(conn.frames.get(t)))
                    });
                }
            }
            (None, Some(i))
                if matches!(
                    reason(i).map(str::parse),
                    Some(Ok(CloseReason::TaskCompleted | CloseReason::TaskFailed))
                ) =>
            {
                closed = true;
                if reason(i) != Some(want.name()) {
                    found.push(Evidence {
                        expected: expected.clone(),
                        seen: describe(&conn.frames[i]),
                        ..at_frame(client, conn, Some(&conn.frames[i]))
                    });
                }
            }
            _ => {}
        }
    }
    // Every ending but a cut of the harness's own: the server closing, resetting or
    // refusing, a parser or recording limit, or the client's deadline.
    if !closed
        && let Some(last) = c.t.connections.last()
        && !matches!(last.end, ConnEnd::Cut { .. })
    {
        found.push(Evidence {
            expected,
            seen: format!(
                "no terminal close; the stream ended by {}",
                describe_end(&last.end)
            ),
            ..at_frame(client, last, last.frames.last())
        });
    }
    found
}

fn frame_correlation(f: &Frame) -> Option<Option<&str>> {
    match &f.kind {
        FrameKind::Data(d) => Some(d.correlation_id.as_deref()),
        FrameKind::Lifecycle { fields, .. }
        | FrameKind::Heartbeat { fields }
        | FrameKind::Version { fields } => fields
            .is_object()
            .then(|| str_field(fields, "correlation_id")),
        _ => None,
    }
}

fn correlation(ctx: &Ctx, id: &ClientId, conn: &Connection) -> Option<Evidence> {
    let mut want: Option<(&str, String)> = conn
        .correlation_sent
        .as_deref()
        .map(|s| (s, "the X-Correlation-ID sent".to_owned()));
    for f in &conn.frames {
        let Some(cid) = frame_correlation(f) else {
            continue;
        };
        match (cid, &want) {
            (None, _) if !ctx.cfg.lifecycle_frames => {}
            (Some(x), None) => want = Some((x, format!("as in the frame at byte {}", f.start))),
            (Some(x), Some((w, _))) if x == *w => {}
            (got, w) => {
                let expected = match w {
                    Some((w, why)) => format!("correlation_id {w} in every frame ({why})"),
                    None => "a correlation_id in every frame".to_owned(),
                };
                let seen = match got {
                    Some(x) => format!("correlation_id {x} on {}", describe(f)),
                    None => format!("no correlation_id on {}", describe(f)),
                };
                return Some(Evidence {
                    expected,
                    seen,
                    ..at_frame(id, conn, Some(f))
                });
            }
        }
    }
    None
}

/// The jobs a task probe read from their first event: exactly the events the job was
/// asked for (`lifecycle.task-events`), and a receipt that recomputes
/// (`lifecycle.task-receipt`).
fn task_content(ctx: &Ctx) -> Vec<(KnownContract, Evidence)> {
    let mut found = Vec::new();
    for job in &ctx.rec.jobs {
        let Some(reader) = &job.reader else {
            continue;
        };
        let at = |p: jobs::Problem| Evidence {
            client: Some(reader.clone()),
            connection: Some(0),
            expected: format!("job {}: {}", job.job, p.expected),
            seen: p.seen,
            ..Evidence::default()
        };
        found.extend(jobs::sequence_problem(job).map(|p| (ids::LIFECYCLE_TASK_EVENTS, at(p))));
        found.extend(jobs::receipt_problem(job).map(|p| (ids::LIFECYCLE_TASK_RECEIPT, at(p))));
    }
    found
}
