//! The fast path ([`scan`](super::scan)) against the reference (the `serde_json` path as
//! it was, [`reference`](super::reference)): the same frame kind, fields and digest for
//! every input, valid or not, over a table of tricky inputs and generated ones.

use proptest::prelude::*;

use super::{classify, reference};
use crate::profile::Profile;

/// Profiles that read the data differently: spine's pointers, a nested volatile field,
/// pointers through an array and an escaped key.
fn profiles() -> Vec<Profile> {
    let spine = Profile::load("spine").unwrap();
    let mut nested = spine.clone();
    nested.events.volatile.push("/payload/at".to_owned());
    let mut arrays = spine.clone();
    arrays.events.marker_pointer = Some("/payload/list/1".to_owned());
    arrays.events.job_pointer = Some("/a~1b/0".to_owned());
    arrays.events.volatile.push("/payload".to_owned());
    vec![spine, nested, arrays]
}

fn agree(data: &str) {
    for p in profiles() {
        for id in [Some("7"), Some("18446744073709551615"), None] {
            let new = classify(&p, "task_event", id, data);
            let old = reference::classify_json(&p, id, data);
            assert_eq!(new, old, "{data:?} with id {id:?}");
        }
    }
}

#[test]
fn tricky_inputs_classify_and_digest_as_before() {
    let table = [
        r#"{"seq":7,"job_id":"j1","event_type":"harness.marker","ts":"t","payload":{"marker":"hm-a-0-1","pad":""},"correlation_id":"c1"}"#,
        r#"  {"seq" : 7 ,"payload" : { "pad" : "x" , "marker" : "hm-1" } }  "#,
        "{\"seq\":7,\r\n\t\"payload\":{\"marker\":\"hm-1\"}}\n",
        r#"{"seq":7,"seq":8}"#,
        r#"{"seq":8,"seq":7}"#,
        r#"{"seq":7,"payload":{"marker":"a","marker":"b"}}"#,
        r#"{"seq":7,"payload":{"b":1,"a":2,"b":3}}"#,
        r#"{"seq":7.0}"#,
        r#"{"seq":7e0}"#,
        r#"{"seq":-7}"#,
        r#"{"seq":"7"}"#,
        r#"{"seq":7,"payload":{"n":1.0,"m":1e3,"k":-0,"j":1E+2,"i":-0.5e-3}}"#,
        r#"{"seq":7,"n":1.0,"m":1e3,"k":-0,"big":18446744073709551616,"neg":-9223372036854775809}"#,
        r#"{"seq":7,"payload":{"big":18446744073709551615,"neg":-9223372036854775808}}"#,
        r#"{"seq":7,"payload":{"big":18446744073709551616,"neg":-9223372036854775809}}"#,
        r#"{"seq":7,"payload":{"marker":"hm-\u0031","s":"a\"b\\c\/d\n"}}"#,
        r#"{"seq":7,"job_id":"j\u0031","correlation_id":"\ud800"}"#,
        r#"{"seq":7,"payload":{"marker":"\ud83d\ude00 \ud800"}}"#,
        r#"{"seq":7,"pay\u006coad":{"marker":"hm-1"}}"#,
        r#"{"seq":7,"payload":{"mark\u0065r":"hm-1"}}"#,
        r#"{"seq":7,"payload":{"marker":"ßß∑😀","list":[1,"x",{"b":2,"a":1},[]]}}"#,
        r#"{"seq":7,"payload":{"list":[0,"hm-2"]},"a/b":["j"]}"#,
        r#"{"seq":7,"payload":{"list":{"1":"hm-3"}},"a/b":{"0":"j"}}"#,
        r#"{"seq":7,"payload":{"at":1,"marker":"hm-1"}}"#,
        r#"{"seq":7,"payload":{"at":1.5,"marker":"hm-1","x":"\t"}}"#,
        r#"{"seq":7,"payload":[1,2]}"#,
        r#"{"seq":7,"payload":"hm"}"#,
        r#"{"seq":7,"payload":null,"t":true,"f":false}"#,
        r#"{}"#,
        r#"{ }"#,
        r#"[1,2]"#,
        r#""s""#,
        r#"nope"#,
        "",
        "{",
        r#"{"seq":7,}"#,
        r#"{"seq":7 "a":1}"#,
        r#"{"seq":07}"#,
        r#"{"seq":7,"a":1.}"#,
        r#"{"seq":7,"a":.5}"#,
        r#"{"seq":7,"a":-}"#,
        r#"{"seq":7,"a":tru}"#,
        r#"{"seq":7,"a":"\x"}"#,
        r#"{"seq":7,"a":"\u12"}"#,
        "{\"seq\":7,\"a\":\"ctl\u{1}\"}",
        "\u{feff}{\"seq\":7}",
        r#"{"seq":7} x"#,
        r#"{"seq":7}{}"#,
        "{\"seq\":7,\"a\":\"\u{7f}\"}",
        r#"{"seq":7,"":1,"payload":{"":2}}"#,
    ];
    for data in table {
        agree(data);
    }
    let deep = format!(
        "{{\"seq\":7,\"payload\":{}1{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    agree(&deep);
    let deep_obj = format!(
        "{{\"seq\":7,\"payload\":{}1{}}}",
        "{\"a\":".repeat(150),
        "}".repeat(150)
    );
    agree(&deep_obj);
}

/// Whitespace JSON allows between tokens.
fn ws() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", "", " ", "\n\t", "\r\n "])
}

fn scalar() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "0",
        "-0",
        "7",
        "-1",
        "1.0",
        "1e3",
        "1E+3",
        "-1.5e-3",
        "0.0",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "true",
        "false",
        "null",
        r#""hm-a-0-1""#,
        r#""""#,
        r#""a\"b""#,
        r#""\u0031""#,
        r#""\ud800""#,
        r#""ß∑😀""#,
        r#""\/""#,
        r#""t\tx""#,
        r#""\u00e9""#,
        r#""j1""#,
        r#""7""#,
    ])
    .prop_map(str::to_owned)
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "seq",
        "job_id",
        "event_type",
        "payload",
        "marker",
        "correlation_id",
        "ts",
        "pad",
        "at",
        "list",
        "a",
        "b",
        "",
        "a/b",
        "pay\\u006coad",
        "k\\\"q",
        "ß",
        "1",
        "0",
    ])
    .prop_map(|k| format!("\"{k}\""))
}

fn json() -> impl Strategy<Value = String> {
    scalar().prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec((ws(), inner.clone()), 0..5).prop_map(|v| {
                let items: Vec<String> = v.into_iter().map(|(w, x)| format!("{w}{x}{w}")).collect();
                format!("[{}]", items.join(","))
            }),
            prop::collection::vec((ws(), key(), inner), 0..6).prop_map(|v| {
                let items: Vec<String> = v
                    .into_iter()
                    .map(|(w, k, x)| format!("{w}{k}{w}:{w}{x}"))
                    .collect();
                format!("{{{}}}", items.join(","))
            }),
        ]
    })
}

/// A data object like the ones targets send, with a seq most of the time.
fn data() -> impl Strategy<Value = String> {
    (
        prop::option::of(prop::sample::select(vec!["7", "7.0", "8", "-7", "\"7\""])),
        prop::collection::vec((ws(), key(), json()), 0..7),
        ws(),
    )
        .prop_map(|(seq, fields, w)| {
            let mut items: Vec<String> = fields
                .into_iter()
                .map(|(w, k, x)| format!("{w}{k}{w}:{w}{x}"))
                .collect();
            if let Some(s) = seq {
                items.insert(items.len() / 2, format!("\"seq\":{s}"));
            }
            format!("{w}{{{}}}{w}", items.join(","))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn generated_objects_classify_and_digest_as_before(d in data()) {
        agree(&d);
    }

    #[test]
    fn broken_objects_classify_as_before(d in data(), cut in any::<prop::sample::Index>(), junk in prop::sample::select(vec!["", "x", "\"", "\\", ",", "}", "]", "{", "1", "\u{1}", "\\u", " "])) {
        let at = cut.index(d.len() + 1);
        let at = (0..=at).rev().find(|&i| d.is_char_boundary(i)).unwrap_or(0);
        agree(&format!("{}{junk}{}", &d[..at], &d[at..]));
        agree(&d[..at]);
    }
}

/// The events the harness's own targets send take the scanner's path, nested payload
/// included (so the tests above compare the fast path, not the fallback with itself).
#[test]
fn spine_events_take_the_fast_path() {
    let data = r#"{"seq":7,"job_id":"j1","event_type":"harness.marker","ts":"t","payload":{"marker":"hm-a-0-1","pad":""},"correlation_id":"c1"}"#;
    let o = super::Object::scanned(data).expect("fast path");
    assert!(o.fields.iter().all(|f| f.simple));
    let mut out = Vec::new();
    super::scan::canonical(
        r#"{ "b" : [1, {"d":true,"c":null}], "a":"x", "b":0 }"#,
        &mut out,
    );
    assert_eq!(out, br#"{"a":"x","b":0}"#);
}
