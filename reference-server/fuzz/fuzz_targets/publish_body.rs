//! The publish body parser (`POST /v1/jobs/<id>/events`): never panics, and whatever
//! it accepts respects the protocol's limits and is safe to frame as SSE.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reference_server::jobs::{
    MAX_BATCH, MAX_EVENT_TYPE, MAX_PAYLOAD_BYTES, RESERVED_TYPES, parse_publish_body,
};

fuzz_target!(|data: &[u8]| {
    let Ok(events) = parse_publish_body(data, "job-1") else {
        return;
    };
    assert!((1..=MAX_BATCH).contains(&events.len()));
    for ev in &events {
        assert_eq!(ev.job_id, "job-1");
        assert!(!ev.event_type.is_empty() && ev.event_type.len() <= MAX_EVENT_TYPE);
        assert!(!ev.event_type.chars().any(char::is_control));
        assert!(!RESERVED_TYPES.contains(&ev.event_type.as_str()));
        assert!(ev.payload.len() as u64 <= MAX_PAYLOAD_BYTES);
        // One `data:` line: compact JSON has no raw line break.
        assert!(!ev.payload.contains('\n') && !ev.payload.contains('\r'));
        let v: serde_json::Value = serde_json::from_str(&ev.payload).expect("payload is JSON");
        assert!(v.is_object());
    }
});
