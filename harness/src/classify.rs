//! Turns a parsed SSE event into a transcript frame, as the target profile describes
//! its frames: data events (seq, job, marker, digest), lifecycle frames, heartbeats,
//! version events, or something else.

use harness_model::{DataEvent, FrameKind, Seq};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::profile::{Format, HeartbeatKind, Ids, Profile};

/// The prefix of every marker the harness publishes.
pub const MARKER_PREFIX: &str = "hm-";

/// Classifies one dispatched event.
pub fn classify(profile: &Profile, event_type: &str, id: Option<&str>, data: &str) -> FrameKind {
    if profile.lifecycle.frames
        && matches!(event_type, "connection_open" | "error" | "connection_close")
    {
        return FrameKind::Lifecycle {
            name: event_type.to_owned(),
            fields: serde_json::from_str(data).unwrap_or(Value::Null),
        };
    }
    if profile.heartbeat.form == HeartbeatKind::Event
        && Some(event_type) == profile.heartbeat.event.as_deref()
    {
        return FrameKind::Heartbeat {
            fields: serde_json::from_str(data).unwrap_or(Value::Null),
        };
    }
    if profile.version.is_some() && event_type == "version" {
        return match serde_json::from_str(data) {
            Ok(v) => FrameKind::Version { fields: v },
            Err(e) => FrameKind::Malformed {
                reason: format!("version data is not JSON: {e}"),
            },
        };
    }
    if event_type != profile.events.data_event {
        return FrameKind::Other;
    }
    match profile.events.format {
        Format::Text => FrameKind::Data(DataEvent {
            seq: numeric_id(profile, id).ok().flatten(),
            opaque_id: id.map(str::to_owned),
            job: None,
            event_type: None,
            marker: find_marker(data),
            correlation_id: None,
            digest: digest(data.as_bytes()),
        }),
        Format::Json => classify_json(profile, id, data),
    }
}

fn numeric_id(profile: &Profile, id: Option<&str>) -> Result<Option<Seq>, String> {
    if profile.ids != Ids::Numeric {
        return Ok(None);
    }
    match id {
        None => Err("data event without id".into()),
        Some(s) => s
            .parse::<u64>()
            .map(|n| Some(Seq(n)))
            .map_err(|_| format!("id {s:?} is not a decimal u64")),
    }
}

fn classify_json(profile: &Profile, id: Option<&str>, data: &str) -> FrameKind {
    let mut v: Value = match serde_json::from_str(data) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return FrameKind::Malformed {
                reason: "data is JSON but not an object".into(),
            };
        }
        Err(e) => {
            return FrameKind::Malformed {
                reason: format!("data is not JSON: {e}"),
            };
        }
    };
    let ev = &profile.events;
    let get_str = |p: &Option<String>| -> Option<String> {
        p.as_ref()
            .and_then(|p| v.pointer(p))
            .and_then(|x| x.as_str().map(str::to_owned))
    };
    let job = get_str(&ev.job_pointer);
    let event_type = get_str(&ev.event_type_pointer);
    let marker = get_str(&ev.marker_pointer);
    let correlation_id = v
        .get("correlation_id")
        .and_then(|x| x.as_str())
        .map(str::to_owned);
    let seq = match numeric_id(profile, id) {
        Ok(s) => s,
        Err(reason) => return FrameKind::Malformed { reason },
    };
    if let (Some(sp), Some(Seq(n))) = (&ev.seq_pointer, seq) {
        match v.pointer(sp).and_then(Value::as_u64) {
            Some(d) if d == n => {}
            Some(d) => {
                return FrameKind::Malformed {
                    reason: format!("id {n} but data {sp} is {d}"),
                };
            }
            None => {
                return FrameKind::Malformed {
                    reason: format!("data has no integer at {sp}"),
                };
            }
        }
    }
    for p in &ev.volatile {
        remove_pointer(&mut v, p);
    }
    let canonical = serde_json::to_vec(&v).unwrap_or_default();
    FrameKind::Data(DataEvent {
        seq,
        opaque_id: if profile.ids == Ids::Opaque {
            id.map(str::to_owned)
        } else {
            None
        },
        job,
        event_type,
        marker,
        correlation_id,
        digest: digest(&canonical),
    })
}

fn remove_pointer(v: &mut Value, pointer: &str) {
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return;
    };
    let target = if parent.is_empty() {
        Some(v)
    } else {
        v.pointer_mut(parent)
    };
    if let Some(Value::Object(m)) = target {
        m.remove(key);
    }
}

/// Finds the harness marker in text data: the first whitespace-separated token with the prefix.
pub fn find_marker(data: &str) -> Option<String> {
    data.split(|c: char| c.is_whitespace() || c == '"')
        .find(|t| t.starts_with(MARKER_PREFIX))
        .map(str::to_owned)
}

/// A short content digest (hex of the first 8 bytes of SHA-256).
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spine() -> Profile {
        Profile::load("spine").unwrap()
    }

    #[test]
    fn spine_data_event_is_read_with_seq_job_marker_and_a_digest_without_correlation() {
        let p = spine();
        let a = r#"{"seq":7,"job_id":"j1","event_type":"harness.marker","ts":"t","payload":{"marker":"hm-a-0-1","pad":""},"correlation_id":"c1"}"#;
        let b = a.replace("c1", "c2");
        let (FrameKind::Data(x), FrameKind::Data(y)) = (
            classify(&p, "task_event", Some("7"), a),
            classify(&p, "task_event", Some("7"), &b),
        ) else {
            panic!("not data")
        };
        assert_eq!(x.seq, Some(Seq(7)));
        assert_eq!(x.job.as_deref(), Some("j1"));
        assert_eq!(x.marker.as_deref(), Some("hm-a-0-1"));
        assert_eq!(x.correlation_id.as_deref(), Some("c1"));
        assert_eq!(x.digest, y.digest);
    }

    #[test]
    fn id_and_data_seq_disagreeing_is_malformed() {
        let p = spine();
        let d = r#"{"seq":8,"job_id":"j","event_type":"x","ts":"t","payload":{}}"#;
        assert!(matches!(
            classify(&p, "task_event", Some("7"), d),
            FrameKind::Malformed { .. }
        ));
        assert!(matches!(
            classify(&p, "task_event", None, d),
            FrameKind::Malformed { .. }
        ));
        assert!(matches!(
            classify(&p, "task_event", Some("8"), "not json"),
            FrameKind::Malformed { .. }
        ));
    }

    #[test]
    fn lifecycle_and_heartbeat_frames_are_recognised() {
        let p = spine();
        assert!(matches!(
            classify(&p, "connection_open", None, r#"{"stream":"events"}"#),
            FrameKind::Lifecycle { .. }
        ));
        assert!(matches!(
            classify(&p, "heartbeat", None, "{}"),
            FrameKind::Heartbeat { .. }
        ));
    }

    #[test]
    fn text_marker_is_found() {
        assert_eq!(find_marker("hm-x-1-2 ßßß").as_deref(), Some("hm-x-1-2"));
        assert_eq!(find_marker("nothing"), None);
    }
}
