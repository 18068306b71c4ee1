//! Property tests: any stream split at any byte boundaries parses exactly as
//! in one chunk, and one chunk parses as a simple whole-input oracle says.

use proptest::prelude::*;
use sse_wire::{Item, Parser, ParserConfig};

fn parse_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Item> {
    let mut p = Parser::new(ParserConfig::default());
    let mut out = Vec::new();
    for c in chunks {
        p.feed(c, &mut out);
    }
    p.finish(&mut out);
    out
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 :\u{e9}\u{65e5}\u{1F389}\u{FEFF}]{0,12}"
}

fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => text().prop_map(|t| format!("data: {t}").into_bytes()),
        2 => text().prop_map(|t| format!("data:{t}").into_bytes()),
        1 => Just(b"data".to_vec()),
        1 => "[a-z_]{0,6}".prop_map(|t| format!("event: {t}").into_bytes()),
        1 => "[0-9a-z]{0,4}".prop_map(|t| format!("id: {t}").into_bytes()),
        1 => Just(b"id".to_vec()),
        1 => "[0-9]{1,3}".prop_map(|t| format!("id: {t}\0x").into_bytes()),
        1 => "[0-9]{0,6}[a-]?".prop_map(|t| format!("retry: {t}").into_bytes()),
        1 => text().prop_map(|t| format!(":{t}").into_bytes()),
        1 => "[a-z]{1,5}".prop_map(|t| format!("{t}: v").into_bytes()),
        4 => Just(Vec::new()),
        1 => prop::collection::vec(any::<u8>().prop_filter("no line ends", |b| *b != b'\r' && *b != b'\n'), 0..8)
            .prop_map(|mut b| { let mut l = b"data:".to_vec(); l.append(&mut b); l }),
    ]
}

fn ending() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![Just(&b"\n"[..]), Just(&b"\r"[..]), Just(&b"\r\n"[..])]
}

prop_compose! {
    fn stream()(
        bom in any::<bool>(),
        lines in prop::collection::vec((line(), ending()), 0..30),
        tail in prop::option::of(line()),
    ) -> Vec<u8> {
        let mut s = Vec::new();
        if bom {
            s.extend_from_slice(b"\xEF\xBB\xBF");
        }
        for (l, e) in lines {
            s.extend_from_slice(&l);
            s.extend_from_slice(e);
        }
        if let Some(t) = tail {
            s.extend_from_slice(&t);
        }
        s
    }
}

prop_compose! {
    fn stream_and_cuts()(s in stream())(
        cuts in prop::collection::vec(0..=s.len(), 0..12),
        s in Just(s),
    ) -> (Vec<u8>, Vec<usize>) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        (s, cuts)
    }
}

/// (type, data, last event id) of each event, computed over the whole input
/// the simple way, straight from the WHATWG rules.
fn oracle(input: &[u8]) -> Vec<(String, String, String)> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut lines = Vec::new();
    let mut cur = Vec::new();
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\n' => lines.push(std::mem::take(&mut cur)),
            b'\r' => {
                lines.push(std::mem::take(&mut cur));
                if input.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b => cur.push(b),
        }
        i += 1;
    }
    let (mut ty, mut data, mut last_id) = (String::new(), String::new(), String::new());
    let mut out = Vec::new();
    for l in lines {
        let l = String::from_utf8_lossy(&l).into_owned();
        if l.is_empty() {
            if !data.is_empty() {
                data.pop();
                let t = if ty.is_empty() {
                    "message".to_owned()
                } else {
                    ty.clone()
                };
                out.push((t, data.clone(), last_id.clone()));
            }
            ty.clear();
            data.clear();
            continue;
        }
        if l.starts_with(':') {
            continue;
        }
        let (name, value) = match l.find(':') {
            Some(p) => {
                let v = &l[p + 1..];
                (&l[..p], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (l.as_str(), ""),
        };
        match name {
            "event" => ty = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => last_id = value.to_owned(),
            _ => {}
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_split_parses_as_one_chunk((s, cuts) in stream_and_cuts()) {
        let whole = parse_chunks([s.as_slice()]);
        let mut chunks = Vec::new();
        let mut at = 0;
        for c in cuts {
            chunks.push(&s[at..c]);
            at = c;
        }
        chunks.push(&s[at..]);
        prop_assert_eq!(&parse_chunks(chunks), &whole);
        prop_assert_eq!(&parse_chunks(s.chunks(1)), &whole);
        prop_assert_eq!(&parse_chunks(s.chunks(2)), &whole);
        // Skipping the first byte changes the 2-byte phase.
        if !s.is_empty() {
            let tail = s[1..].chunks(2);
            prop_assert_eq!(&parse_chunks(std::iter::once(&s[..1]).chain(tail)), &whole);
        }
    }

    #[test]
    fn one_chunk_matches_the_oracle(s in stream()) {
        let items = parse_chunks([s.as_slice()]);
        let mut got = Vec::new();
        for i in &items {
            if let Item::Event(e) = i {
                prop_assert_eq!(&e.raw[..], &s[e.start as usize..e.end as usize]);
                got.push((e.event_type.clone(), e.data.clone(), e.last_event_id.clone()));
            }
        }
        prop_assert_eq!(got, oracle(&s));
    }
}
