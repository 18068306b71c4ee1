//! The classifier's JSON path as it was before the [`scan`](super::scan) fast path,
//! kept verbatim (test-only) as the reference the new path must agree with, digest for
//! digest and field for field.

use harness_model::{DataEvent, FrameKind, Seq};
use std::borrow::Cow;
use std::cell::OnceCell;

use serde::de::{Deserialize, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::profile::{Ids, Profile};

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
/// must be canonicalised for the digest (nested objects and arrays, strings with
/// escapes), is parsed further. Found with a profile of the harness drain benchmark
/// (BENCHMARKS.md): parsing every event into a `Value`, re-serialising it and
/// freeing it cost more than the SSE parsing itself.
pub fn classify_json(profile: &Profile, id: Option<&str>, data: &str) -> FrameKind {
    let fields = match serde_json::from_str::<Fields>(data) {
        Ok(f) => Object::new(f),
        Err(_) => return not_an_object(data),
    };
    let ev = &profile.events;
    let get_str = |p: Option<&str>| p.and_then(|p| fields.lookup::<String>(p));
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

/// A data object as the classifier reads it: its top-level fields sorted by key
/// (the last of duplicate keys wins, as in a `Value`), each with its raw text and,
/// once something needed it, its parsed value (parsed at most once).
struct Object<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    parsed: Vec<OnceCell<Value>>,
}

impl<'a> Object<'a> {
    fn new(Fields(mut fields): Fields<'a>) -> Object<'a> {
        fields.reverse();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        fields.dedup_by(|later, kept| later.0 == kept.0);
        let parsed = fields.iter().map(|_| OnceCell::new()).collect();
        Object { fields, parsed }
    }

    /// The field `i` as a `Value`.
    fn value(&self, i: usize) -> &Value {
        self.parsed[i]
            .get_or_init(|| serde_json::from_str(self.fields[i].1.get()).unwrap_or(Value::Null))
    }

    /// The value a JSON pointer reaches, read as `T` (a value of another type is
    /// `None`); a top-level field is read straight from its text.
    fn lookup<T: DeserializeOwned>(&self, pointer: &str) -> Option<T> {
        let (tok, rest) = first_token(pointer)?;
        let i = self
            .fields
            .binary_search_by(|f| f.0.as_ref().cmp(&tok))
            .ok()?;
        if rest.is_empty() {
            return serde_json::from_str(self.fields[i].1.get()).ok();
        }
        T::deserialize(self.value(i).pointer(rest)?).ok()
    }

    /// The digest of the data as a `Value` would compare it: volatile fields removed,
    /// keys sorted, nested values and escaped strings canonicalised; plain scalars are
    /// hashed as sent (their text is already canonical).
    fn digest(&self, volatile: &[String]) -> String {
        let volatile: Vec<(Cow<str>, &str)> =
            volatile.iter().filter_map(|p| first_token(p)).collect();
        let mut h = Sha256::new();
        let mut buf = Vec::new();
        h.update(b"{");
        let mut first = true;
        for (i, (key, raw)) in self.fields.iter().enumerate() {
            let nested: Vec<&str> = volatile
                .iter()
                .filter(|(t, _)| t == key)
                .map(|(_, rest)| *rest)
                .collect();
            if nested.contains(&"") {
                continue; // the whole field is volatile
            }
            if !first {
                h.update(b",");
            }
            first = false;
            buf.clear();
            let _ = serde_json::to_writer(&mut buf, key.as_ref());
            h.update(&buf);
            h.update(b":");
            let text = raw.get();
            if nested.is_empty() && !text.starts_with(['{', '[']) && !text.contains('\\') {
                h.update(text.as_bytes());
                continue;
            }
            buf.clear();
            if nested.is_empty() {
                let _ = serde_json::to_writer(&mut buf, self.value(i));
            } else {
                let mut v = self.value(i).clone();
                for rest in nested {
                    remove_pointer(&mut v, rest);
                }
                let _ = serde_json::to_writer(&mut buf, &v);
            }
            h.update(&buf);
        }
        h.update(b"}");
        hex::encode(&h.finalize()[..8])
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
