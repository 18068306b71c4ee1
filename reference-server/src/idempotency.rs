//! `Idempotency-Key` on `POST /v1/jobs/<id>/events` (protocol v1.1, §3): a publisher
//! that lost an ack retries with the same key and never creates a second copy.
//!
//! The key is stored with its seqs and the SHA-256 of the request's canonical body (the
//! JSON with every object's keys sorted, so key order and whitespace do not count) in
//! the `idempotency_keys` table, written by [`WriteOp::AppendKeyed`] in the same
//! transaction as the events: a crash never leaves events without their key or a key
//! without its events. The store's single writer looks the key up inside that
//! transaction, so two simultaneous requests with one key commit once; a request whose
//! key is already committed is answered from a read connection without queueing behind
//! the writer, and so also after the job's terminal event (the retry of a publish acked
//! just before it).
//!
//! Keys are kept as long as their job's events, which the log never prunes: one row per
//! acknowledged keyed publish, at most 200 bytes of key, a 64-byte digest and the seqs,
//! less than the events it guards. So the table is bounded by the event log itself and
//! a key stays valid for as long as a retry could name events that exist.

use axum::http::{HeaderMap, StatusCode};

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::faults::Fault;
use crate::store::{Applied, NewEvent, WriteOp, canonical};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 200;

/// A well-formed key with the digest of the body it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    key: String,
    body_sha256: String,
}

impl Keyed {
    /// The key of a publish request, if it has one: `400 invalid_request` when the
    /// header is repeated, empty, longer than [`MAX_KEY_LEN`] or not printable ASCII.
    /// `None` also under [`Fault::IdempotencyIgnored`] (the key is checked, then
    /// ignored). `body` must be a valid publish body (it is re-read as JSON).
    pub fn from_request(
        state: &AppState,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Option<Keyed>, ApiError> {
        let Some(key) = parse_key(headers)? else {
            return Ok(None);
        };
        if state.faults.has(Fault::IdempotencyIgnored) {
            return Ok(None);
        }
        Ok(Some(Keyed {
            key,
            body_sha256: body_sha256(body)?,
        }))
    }

    /// The seqs of an earlier request with this key on `job_id`, when one is committed
    /// with the same body; `409 idempotency_conflict` when with another body.
    pub async fn committed(
        &self,
        state: &AppState,
        job_id: &str,
    ) -> Result<Option<Vec<u64>>, ApiError> {
        match state.store.idempotency_key(job_id, &self.key).await? {
            None => Ok(None),
            Some(row) => answer(row.judge(&self.body_sha256)).map(|(_, seqs)| Some(seqs)),
        }
    }

    /// The write that appends `events` and stores this key with their seqs.
    pub fn op(self, job_id: &str, events: Vec<NewEvent>) -> WriteOp {
        WriteOp::AppendKeyed {
            job_id: job_id.to_owned(),
            key: self.key,
            body_sha256: self.body_sha256,
            events,
        }
    }
}

/// What a publish answers for what its write did: `201` and the new seqs, `200` and the
/// original seqs of a replay, or `409 idempotency_conflict`.
pub fn answer(applied: Applied) -> Result<(StatusCode, Vec<u64>), ApiError> {
    match applied {
        Applied::Committed(seqs) => Ok((StatusCode::CREATED, seqs)),
        Applied::Replayed(seqs) => Ok((StatusCode::OK, seqs)),
        Applied::Conflict => Err(ApiError::new(
            ErrorCode::IdempotencyConflict,
            "this Idempotency-Key was used on this job with another body",
        )),
    }
}

/// The `Idempotency-Key` header, checked; `None` when absent.
fn parse_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid("Idempotency-Key is given more than once"));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LEN {
        return Err(ApiError::invalid(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} bytes"
        )));
    }
    if !bytes.iter().all(|b| (b' '..=b'~').contains(b)) {
        return Err(ApiError::invalid("Idempotency-Key must be printable ASCII"));
    }
    // Printable ASCII, so valid UTF-8.
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// Lowercase hex SHA-256 of the body's canonical JSON (keys sorted, compact).
fn body_sha256(body: &[u8]) -> Result<String, ApiError> {
    use sha2::{Digest as _, Sha256};
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("body: {e}")))?;
    Ok(hex::encode(Sha256::digest(
        canonical(value).to_string().as_bytes(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn keys_of_1_to_200_printable_ascii_bytes_are_taken_as_sent() {
        assert_eq!(parse_key(&HeaderMap::new()).unwrap(), None);
        assert_eq!(parse_key(&with(&[b"a"])).unwrap().as_deref(), Some("a"));
        let long = "k".repeat(MAX_KEY_LEN);
        assert_eq!(parse_key(&with(&[long.as_bytes()])).unwrap(), Some(long));
        assert_eq!(
            parse_key(&with(&[b"a b~!"])).unwrap().as_deref(),
            Some("a b~!")
        );
    }

    #[test]
    fn empty_long_non_printable_and_repeated_keys_are_invalid_requests() {
        let long = "k".repeat(MAX_KEY_LEN + 1);
        for bad in [
            with(&[b""]),
            with(&[long.as_bytes()]),
            with(&[b"a\tb"]),
            with(&[b"caf\xc3\xa9"]),
            with(&[b"a", b"a"]),
        ] {
            let e = parse_key(&bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad:?}");
        }
    }

    #[test]
    fn the_digest_ignores_key_order_and_whitespace_and_nothing_else() {
        let a = body_sha256(br#"{"event_type":"x","payload":{"a":1,"b":[1,2]}}"#).unwrap();
        let b = body_sha256(br#"{ "payload": {"b": [1, 2], "a": 1}, "event_type": "x" }"#).unwrap();
        let c = body_sha256(br#"{"event_type":"x","payload":{"a":1,"b":[2,1]}}"#).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 64);
    }
}
