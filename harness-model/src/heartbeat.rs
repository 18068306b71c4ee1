//! The heartbeat interval a target announces in its `connection_open` frame
//! (`heartbeat_ms`), read in this one place by the live client (to stop waiting once
//! a stream has been silent long enough) and by the heartbeat checker (to judge
//! silences).
//!
//! The value comes from the target and is untrusted: it is clamped to
//! [`MIN_MS`]..=[`MAX_MS`], so that 0 (which no correct target announces: the spine
//! requires heartbeats) cannot make a wait or a silence limit zero, and a huge value
//! cannot overflow the multiples the callers compute (they use saturating
//! arithmetic as well) or make a client wait for days.

use serde_json::Value;

/// The shortest interval taken from a target: 10 ms.
pub const MIN_MS: u64 = 10;

/// The longest interval taken from a target: one hour.
pub const MAX_MS: u64 = 3_600_000;

/// The `heartbeat_ms` of a `connection_open` frame's fields, clamped to
/// [`MIN_MS`]..=[`MAX_MS`]; None when absent or not a non-negative integer.
pub fn interval_ms(open_fields: &Value) -> Option<u64> {
    open_fields
        .get("heartbeat_ms")
        .and_then(Value::as_u64)
        .map(|ms| ms.clamp(MIN_MS, MAX_MS))
}

/// [`interval_ms`] of a `connection_open` frame's raw data (None when not JSON).
pub fn interval_ms_of_data(data: &str) -> Option<u64> {
    serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|v| interval_ms(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_plain_interval_is_taken_as_is() {
        assert_eq!(interval_ms(&json!({"heartbeat_ms": 500})), Some(500));
        assert_eq!(
            interval_ms_of_data(r#"{"heartbeat_ms":15000}"#),
            Some(15_000)
        );
    }

    #[test]
    fn zero_and_huge_values_are_clamped() {
        assert_eq!(interval_ms(&json!({"heartbeat_ms": 0})), Some(MIN_MS));
        assert_eq!(
            interval_ms(&json!({"heartbeat_ms": u64::MAX})),
            Some(MAX_MS)
        );
    }

    #[test]
    fn absent_or_malformed_values_are_none() {
        assert_eq!(interval_ms(&json!({})), None);
        assert_eq!(interval_ms(&json!({"heartbeat_ms": -5})), None);
        assert_eq!(interval_ms(&json!({"heartbeat_ms": "500"})), None);
        assert_eq!(interval_ms(&json!({"heartbeat_ms": 1.5})), None);
        assert_eq!(interval_ms_of_data("not json"), None);
    }
}
