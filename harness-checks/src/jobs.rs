//! What the lifecycle and durability families both derive from a job read back whole
//! (spine §3, §5): whether its events are exactly the ones the job was asked for, in
//! order, and whether its receipt recomputes — its hash from the bytes served, its
//! `events_sha256` and `event_count` from the events streamed. The receipt is
//! recomputed here, never trusted: the target's own integrity report only compares
//! the target's files with the target's store.

use harness_model::JobReadBack;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// One way a job read back differs from what it must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// What the job must show.
    pub expected: String,
    /// What it showed.
    pub seen: String,
}

/// One event of a job as its type and, for `progress_update`, its step.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Step {
    event_type: String,
    step: Option<u64>,
}

impl Step {
    fn new(event_type: &str, step: Option<u64>) -> Step {
        Step {
            event_type: event_type.to_owned(),
            step,
        }
    }

    fn describe(&self) -> String {
        match self.step {
            Some(s) => format!("{} step {s}", self.event_type),
            None => self.event_type.clone(),
        }
    }
}

/// The events a job asked for must carry, in order.
fn expected_steps(job: &JobReadBack) -> Vec<Step> {
    let mut out = vec![Step::new("job_started", None)];
    for i in 1..=u64::from(job.steps) {
        if job.fail_at_step.map(u64::from) == Some(i) {
            out.push(Step::new("task_failed", None));
            return out;
        }
        out.push(Step::new("progress_update", Some(i)));
    }
    if job.artifact {
        out.push(Step::new("artifact_written", None));
    }
    out.push(Step::new("task_completed", None));
    out
}

/// The events as JSON (Null for data that is not JSON).
fn parsed(job: &JobReadBack) -> Vec<Value> {
    job.events
        .iter()
        .map(|d| serde_json::from_str(d).unwrap_or(Value::Null))
        .collect()
}

fn event_type(v: &Value) -> &str {
    v.get("event_type")
        .and_then(Value::as_str)
        .unwrap_or("(no event_type)")
}

fn seen_step(v: &Value) -> Step {
    let t = event_type(v);
    let step = (t == "progress_update")
        .then(|| v.pointer("/payload/step").and_then(Value::as_u64))
        .flatten();
    Step::new(t, step)
}

/// The first place where the job's events differ from the ones it asked for.
pub(crate) fn sequence_problem(job: &JobReadBack) -> Option<Problem> {
    let want = expected_steps(job);
    let seen: Vec<Step> = parsed(job).iter().map(seen_step).collect();
    let summary = describe_plan(job);
    for (i, w) in want.iter().enumerate() {
        match seen.get(i) {
            Some(s) if s == w => {}
            Some(s) => {
                return Some(Problem {
                    expected: format!("{summary}: event {} {}", i + 1, w.describe()),
                    seen: format!("event {} {}", i + 1, s.describe()),
                });
            }
            None => {
                return Some(Problem {
                    expected: format!("{summary}: event {} {}", i + 1, w.describe()),
                    seen: format!("only {} events, the last {}", seen.len(), last(&seen)),
                });
            }
        }
    }
    seen.get(want.len()).map(|extra| Problem {
        expected: format!("{summary}: nothing after event {}", want.len()),
        seen: format!("event {} {}", want.len() + 1, extra.describe()),
    })
}

fn last(seen: &[Step]) -> String {
    seen.last().map_or("(none)".to_owned(), Step::describe)
}

/// The job's plan in a few words: `job_started, progress_update 1..5, task_completed`.
fn describe_plan(job: &JobReadBack) -> String {
    let steps = job.fail_at_step.map_or(job.steps, |k| k.saturating_sub(1));
    let mut parts = vec!["job_started".to_owned()];
    if steps > 0 {
        parts.push(format!("progress_update 1..{steps}"));
    }
    match job.fail_at_step {
        Some(_) => parts.push("task_failed".to_owned()),
        None => {
            if job.artifact {
                parts.push("artifact_written".to_owned());
            }
            parts.push("task_completed".to_owned());
        }
    }
    parts.join(", ")
}

/// JSON with every object's keys sorted, at every depth.
pub(crate) fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// spine §5: SHA-256 over one line per event, the compact sorted-key JSON of
/// `{seq, job_id, event_type, ts, payload}` then `\n`.
pub(crate) fn events_sha256(events: &[Value]) -> String {
    let mut h = Sha256::new();
    for ev in events {
        let mut m = Map::new();
        for k in ["event_type", "job_id", "payload", "seq", "ts"] {
            m.insert(k.to_owned(), ev.get(k).cloned().unwrap_or(Value::Null));
        }
        let line = canonical(&Value::Object(m)).to_string();
        h.update(line.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Whether the job's receipt recomputes; None when it does, or when the job did not
/// complete or its receipt was not read (the sequence is judged on its own).
pub(crate) fn receipt_problem(job: &JobReadBack) -> Option<Problem> {
    let events = parsed(job);
    let done = events
        .iter()
        .position(|e| event_type(e) == "task_completed")?;
    let receipt = job.receipt.as_ref()?;
    let problem = |expected: String, seen: String| Some(Problem { expected, seen });
    if receipt.status != 200 {
        return problem(
            "GET …/receipt answering 200 for a completed job".to_owned(),
            format!("status {}", receipt.status),
        );
    }
    let body_hash = hex::encode(Sha256::digest(receipt.body.as_bytes()));
    if receipt.header_sha256.as_deref() != Some(body_hash.as_str()) {
        return problem(
            format!("X-Receipt-SHA256 {body_hash} (the SHA-256 of the receipt served)"),
            format!("{:?}", receipt.header_sha256),
        );
    }
    let announced = events[done].pointer("/payload/receipt_hash");
    if announced.and_then(Value::as_str) != Some(body_hash.as_str()) {
        return problem(
            format!("task_completed receipt_hash {body_hash} (the SHA-256 of the receipt)"),
            format!("{}", announced.unwrap_or(&Value::Null)),
        );
    }
    let r: Value = serde_json::from_str(&receipt.body).unwrap_or(Value::Null);
    let covered = &events[..done];
    let want_hash = events_sha256(covered);
    if r.get("events_sha256").and_then(Value::as_str) != Some(want_hash.as_str()) {
        return problem(
            format!(
                "events_sha256 {want_hash} (recomputed over the {} events before task_completed)",
                covered.len()
            ),
            format!("{}", r.get("events_sha256").unwrap_or(&Value::Null)),
        );
    }
    if r.get("event_count").and_then(Value::as_u64) != Some(covered.len() as u64) {
        return problem(
            format!("event_count {}", covered.len()),
            format!("{}", r.get("event_count").unwrap_or(&Value::Null)),
        );
    }
    None
}

/// Whether the job ended with `task_completed`.
pub(crate) fn completed(job: &JobReadBack) -> bool {
    parsed(job)
        .iter()
        .any(|e| event_type(e) == "task_completed")
}
