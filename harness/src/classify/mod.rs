//! Turns a parsed SSE event into a transcript frame, as the target profile describes
//! its frames: data events (seq, job, marker, digest), lifecycle frames, heartbeats,
//! version events, or something else.

use harness_model::{DataEvent, FrameKind, Seq};
use std::borrow::Cow;
use std::cell::OnceCell;

use serde::de::{Deserialize, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

mod scan;

#[cfg(test)]
mod equivalence;
#[cfg(test)]
mod reference;

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

/// Reads a JSON data event in one borrowed pass over its top-level object: each
/// field's raw text is kept as sent, and only what a pointer reaches into, or what
/// must be canonicalised for the digest, is read further. Found with a profile of the
/// harness drain benchmark (BENCHMARKS.md): parsing every event into a `Value`,
/// re-serialising it and freeing it cost more than the SSE parsing itself. The pass is
/// the hand-written [`scan`] where the data is plain (the common case: no escapes, no
/// floats inside nested values), else `serde_json` with `RawValue`s, the exact
/// reference both paths agree with (see the tests).
fn classify_json(profile: &Profile, id: Option<&str>, data: &str) -> FrameKind {
    let Some(fields) = Object::scanned(data).or_else(|| Object::parsed(data)) else {
        return not_an_object(data);
    };
    classify_fields(profile, id, &fields)
}

/// [`classify_json`] once the data's top-level object is read.
fn classify_fields(profile: &Profile, id: Option<&str>, fields: &Object<'_>) -> FrameKind {
    let ev = &profile.events;
    let get_str = |p: Option<&str>| p.and_then(|p| fields.lookup_str(p));
    let job = get_str(ev.job_pointer.as_deref());
    let event_type = get_str(ev.event_type_pointer.as_deref());
    let marker = get_str(ev.marker_pointer.as_deref());
    let correlation_id = get_str(Some("/correlation_id"));
    let seq = match numeric_id(profile, id) {
        Ok(s) => s,
        Err(reason) => return FrameKind::Malformed { reason },
    };
    if let (Some(sp), Some(Seq(n))) = (&ev.seq_pointer, seq) {
        match fields.lookup::<u64>(sp) {
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
        digest: fields.digest(&ev.volatile),
    })
}

/// One top-level field of a data object.
struct Field<'a> {
    /// The key, unescaped.
    key: Cow<'a, str>,
    /// The value's text as sent.
    raw: &'a str,
    /// The value is simple in the sense of [`scan`]: its canonical form and what a
    /// pointer reaches in it are read from its text.
    simple: bool,
}

/// A data object as the classifier reads it: its top-level fields sorted by key
/// (the last of duplicate keys wins, as in a `Value`), each with its raw text and,
/// once something needed it, its parsed value (parsed at most once).
struct Object<'a> {
    fields: Vec<Field<'a>>,
    parsed: OnceCell<Vec<OnceCell<Value>>>,
}

impl<'a> Object<'a> {
    /// The object read by [`scan`], when the data is for its fast path.
    fn scanned(data: &'a str) -> Option<Object<'a>> {
        let mut members = Vec::with_capacity(8);
        scan::members(data, &mut members)?;
        let fields = members
            .into_iter()
            .map(|m| Field {
                key: Cow::Borrowed(m.key),
                raw: m.raw,
                simple: m.simple,
            })
            .collect();
        Some(Object::new(fields))
    }

    /// The object read by `serde_json` (any valid object; `None` when `data` is not one).
    fn parsed(data: &'a str) -> Option<Object<'a>> {
        let Fields(fields) = serde_json::from_str::<Fields>(data).ok()?;
        let fields = fields
            .into_iter()
            .map(|(key, raw)| Field {
                key,
                raw: raw.get(),
                simple: false,
            })
            .collect();
        Some(Object::new(fields))
    }

    fn new(mut fields: Vec<Field<'a>>) -> Object<'a> {
        fields.reverse();
        fields.sort_by(|a, b| a.key.cmp(&b.key));
        fields.dedup_by(|later, kept| later.key == kept.key);
        Object {
            fields,
            parsed: OnceCell::new(),
        }
    }

    /// The field `i` as a `Value`.
    fn value(&self, i: usize) -> &Value {
        let parsed = self
            .parsed
            .get_or_init(|| self.fields.iter().map(|_| OnceCell::new()).collect());
        parsed[i].get_or_init(|| serde_json::from_str(self.fields[i].raw).unwrap_or(Value::Null))
    }

    /// The value a JSON pointer reaches, read as `T` (a value of another type is
    /// `None`); a top-level field, and anything inside a simple one, is read straight
    /// from its text.
    fn lookup<T: DeserializeOwned>(&self, pointer: &str) -> Option<T> {
        let (tok, rest) = first_token(pointer)?;
        let i = self
            .fields
            .binary_search_by(|f| f.key.as_ref().cmp(&tok))
            .ok()?;
        let field = &self.fields[i];
        if rest.is_empty() {
            return from_text(field.raw);
        }
        if field.simple {
            return from_text(scan::pointer(field.raw, rest)?);
        }
        T::deserialize(self.value(i).pointer(rest)?).ok()
    }

    /// The string a JSON pointer reaches ([`Object::lookup`] for a `String`, without
    /// `serde_json` where the text is plain).
    fn lookup_str(&self, pointer: &str) -> Option<String> {
        let (tok, rest) = first_token(pointer)?;
        let i = self
            .fields
            .binary_search_by(|f| f.key.as_ref().cmp(&tok))
            .ok()?;
        let field = &self.fields[i];
        if rest.is_empty() {
            return string_from_text(field.raw);
        }
        if field.simple {
            return string_from_text(scan::pointer(field.raw, rest)?);
        }
        String::deserialize(self.value(i).pointer(rest)?).ok()
    }

    /// The digest of the data as a `Value` would compare it: volatile fields removed,
    /// keys sorted, nested values and escaped strings canonicalised; plain scalars are
    /// hashed as sent (their text is already canonical).
    fn digest(&self, volatile: &[String]) -> String {
        DIGEST_SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            self.canonical(volatile, buf);
            digest(buf)
        })
    }

    /// Writes the canonical form [`Object::digest`] hashes to `buf`.
    fn canonical(&self, volatile: &[String], buf: &mut Vec<u8>) {
        buf.push(b'{');
        let mut first = true;
        for (i, field) in self.fields.iter().enumerate() {
            let key = &field.key;
            let nested = volatile
                .iter()
                .filter_map(|p| first_token(p))
                .filter(|(t, _)| t == key)
                .map(|(_, rest)| rest);
            let mut has_nested = false;
            let mut whole = false;
            for rest in nested.clone() {
                has_nested = true;
                whole |= rest.is_empty();
            }
            if whole {
                continue; // the whole field is volatile
            }
            if !first {
                buf.push(b',');
            }
            first = false;
            write_key(buf, key);
            buf.push(b':');
            let text = field.raw;
            if !has_nested && !text.starts_with(['{', '[']) && !text.contains('\\') {
                buf.extend_from_slice(text.as_bytes());
            } else if !has_nested && field.simple {
                scan::canonical(text, buf);
            } else if !has_nested {
                let _ = serde_json::to_writer(&mut *buf, self.value(i));
            } else {
                let mut v = self.value(i).clone();
                for rest in nested {
                    remove_pointer(&mut v, rest);
                }
                let _ = serde_json::to_writer(&mut *buf, &v);
            }
        }
        buf.push(b'}');
    }
}

thread_local! {
    /// The buffer canonical forms are written to before hashing (one per thread, so
    /// a digest allocates nothing but its hex).
    static DIGEST_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `T` read from a value's JSON text (`None` when it is another type).
fn from_text<T: DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_str(text).ok()
}

/// A string value's text read as a `String`: a string without escapes is its text
/// between the quotes (what `serde_json` would give), anything else `serde_json` reads.
fn string_from_text(text: &str) -> Option<String> {
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) if !inner.contains(['\\', '"']) => Some(inner.to_owned()),
        _ => from_text(text),
    }
}

/// Writes `key` as a JSON string, as `serde_json` would.
fn write_key(buf: &mut Vec<u8>, key: &str) {
    if key.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        let _ = serde_json::to_writer(&mut *buf, key);
    } else {
        buf.push(b'"');
        buf.extend_from_slice(key.as_bytes());
        buf.push(b'"');
    }
}

/// The top-level fields of a JSON object, in order, with their raw text.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Fields<'de>, A::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some(Key(k)) = m.next_key()? {
                    v.push((k, m.next_value()?));
                }
                Ok(Fields(v))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// An object key: borrowed from the data unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(Visit)
    }
}

/// Why data that is not a JSON object is malformed (the slow path, for errors only).
fn not_an_object(data: &str) -> FrameKind {
    let reason = match serde_json::from_str::<Value>(data) {
        Ok(_) => "data is JSON but not an object".to_owned(),
        Err(e) => format!("data is not JSON: {e}"),
    };
    FrameKind::Malformed { reason }
}

/// Splits a JSON pointer into its first (unescaped) token and the rest (`""` or `/…`).
fn first_token(pointer: &str) -> Option<(Cow<'_, str>, &str)> {
    let p = pointer.strip_prefix('/')?;
    let (tok, rest) = match p.find('/') {
        Some(i) => (&p[..i], &p[i..]),
        None => (p, ""),
    };
    let tok = if tok.contains('~') {
        Cow::Owned(tok.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(tok)
    };
    Some((tok, rest))
}

/// Removes what a JSON pointer reaches, if it is an object member.
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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let sum = Sha256::digest(bytes);
    let mut out = String::with_capacity(16);
    for b in &sum[..8] {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
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

    fn digest_of(p: &Profile, data: &str) -> String {
        match classify(p, "task_event", Some("7"), data) {
            FrameKind::Data(d) => d.digest,
            other => panic!("not data: {other:?}"),
        }
    }

    #[test]
    fn digest_ignores_key_order_whitespace_escapes_and_volatile_fields() {
        let p = spine();
        let a = r#"{"seq":7,"job_id":"j1","ts":"t","payload":{"marker":"hm-1","n":[1,2]},"correlation_id":"c1"}"#;
        let b = r#"{ "payload" : { "n" : [1, 2], "marker" : "hm-\u0031" },
            "correlation_id":"other", "ts":"t", "job_id":"j\u0031", "seq":7 }"#;
        assert_eq!(digest_of(&p, a), digest_of(&p, b));
        let c = a.replace(r#""n":[1,2]"#, r#""n":[2,1]"#);
        assert_ne!(digest_of(&p, a), digest_of(&p, &c), "content differs");
    }

    #[test]
    fn the_last_of_duplicate_keys_wins_as_in_a_value() {
        let p = spine();
        let a = r#"{"seq":7,"job_id":"old","job_id":"j1","payload":{}}"#;
        let FrameKind::Data(d) = classify(&p, "task_event", Some("7"), a) else {
            panic!("not data")
        };
        assert_eq!(d.job.as_deref(), Some("j1"));
        assert_eq!(
            digest_of(&p, a),
            digest_of(&p, r#"{"seq":7,"job_id":"j1","payload":{}}"#)
        );
    }

    #[test]
    fn a_nested_volatile_field_is_left_out_of_the_digest() {
        let mut p = spine();
        p.events.volatile.push("/payload/at".to_owned());
        let a = r#"{"seq":7,"payload":{"at":1,"marker":"hm-1"}}"#;
        let b = r#"{"seq":7,"payload":{"at":2,"marker":"hm-1"}}"#;
        assert_eq!(digest_of(&p, a), digest_of(&p, b));
    }

    #[test]
    fn non_object_json_and_non_json_keep_their_reasons() {
        let p = spine();
        for (data, reason) in [
            ("[1,2]", "data is JSON but not an object"),
            ("nope", "data is not JSON"),
        ] {
            match classify(&p, "task_event", Some("7"), data) {
                FrameKind::Malformed { reason: r } => assert!(r.starts_with(reason), "{r}"),
                other => panic!("{data}: {other:?}"),
            }
        }
    }
}
