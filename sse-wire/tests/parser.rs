//! WHATWG event-stream interpretation rules, offsets, modes and limits.

use sse_wire::{Event, Item, Mode, Parser, ParserConfig, Violation, ViolationKind};

fn parse_chunks(chunks: &[&[u8]]) -> Vec<Item> {
    parse_cfg(chunks, ParserConfig::default())
}

fn parse_cfg(chunks: &[&[u8]], cfg: ParserConfig) -> Vec<Item> {
    let mut p = Parser::new(cfg);
    let mut out = Vec::new();
    for c in chunks {
        p.feed(c, &mut out);
    }
    p.finish(&mut out);
    out
}

fn parse(s: &[u8]) -> Vec<Item> {
    parse_chunks(&[s])
}

fn events(items: &[Item]) -> Vec<&Event> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn violations(items: &[Item]) -> Vec<&Violation> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Violation(v) => Some(v),
            _ => None,
        })
        .collect()
}

fn data(items: &[Item]) -> Vec<&str> {
    events(items).iter().map(|e| e.data.as_str()).collect()
}

#[test]
fn simple_event_defaults() {
    let items = parse(b"data: hello\n\n");
    assert_eq!(items.len(), 1);
    let e = events(&items)[0];
    assert_eq!(e.event_type, "message");
    assert_eq!(e.data, "hello");
    assert_eq!(e.id, None);
    assert_eq!(e.last_event_id, "");
    assert_eq!((e.start, e.end), (0, 13));
    assert_eq!(&e.raw[..], b"data: hello\n\n");
}

#[test]
fn bom_stripped_only_at_stream_start() {
    let items = parse(b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n");
    let ev = events(&items);
    assert_eq!(ev.len(), 1, "{items:?}");
    assert_eq!(ev[0].data, "a");
    assert_eq!((ev[0].start, ev[0].end), (3, 12));
    // The second BOM makes the field name "\u{feff}data": unknown, ignored.
    assert!(items.iter().any(|i| matches!(
        i,
        Item::UnknownField { name, offset: 12 } if name == "\u{feff}data"
    )));
}

#[test]
fn bom_split_across_chunks_and_partial_bom() {
    let items = parse_chunks(&[b"\xEF", b"\xBB", b"\xBFdata: a\n\n"]);
    assert_eq!(data(&items), ["a"]);
    assert_eq!(events(&items)[0].start, 3);
    // A BOM prefix that is not a BOM is content (invalid UTF-8 here).
    let items = parse_chunks(&[b"\xEF\xBB", b"x: 1\n\n"]);
    assert_eq!(violations(&items)[0].kind, ViolationKind::InvalidUtf8);
    assert_eq!(violations(&items)[0].offset, 0);
}

#[test]
fn line_endings_lf_cr_crlf_and_mixed() {
    for body in [
        &b"data: a\n\ndata: b\n\n"[..],
        b"data: a\r\rdata: b\r\r",
        b"data: a\r\n\r\ndata: b\r\n\r\n",
        b"data: a\r\n\rdata: b\n\r\n",
    ] {
        assert_eq!(data(&parse(body)), ["a", "b"], "{body:?}");
        assert!(violations(&parse(body)).is_empty());
    }
}

#[test]
fn cr_at_chunk_end_then_lf_is_one_line_ending() {
    let whole = parse(b"data: a\r\n\r\ndata: b\r\n\r\n");
    let split = parse_chunks(&[b"data: a\r", b"\n\r", b"\ndata: b\r", b"\n\r", b"\n"]);
    assert_eq!(whole, split);
    let ev = events(&split);
    assert_eq!((ev[0].start, ev[0].end), (0, 11));
    assert_eq!((ev[1].start, ev[1].end), (11, 22));
    assert_eq!(&ev[1].raw[..], b"data: b\r\n\r\n");
}

#[test]
fn cr_at_chunk_end_waits_for_next_byte_then_dispatches() {
    let mut p = Parser::new(ParserConfig::default());
    let mut out = Vec::new();
    p.feed(b"data: a\r\r", &mut out);
    assert!(out.is_empty(), "the last CR may be followed by LF");
    p.feed(b"x", &mut out);
    assert_eq!(data(&out), ["a"]);
    assert_eq!(events(&out)[0].end, 9);
    // And at finish, a held CR completes the blank line.
    let items = parse(b"data: z\r\r");
    assert_eq!(data(&items), ["z"]);
}

#[test]
fn comments() {
    let items = parse(b": hello\n:\ndata: x\n\n");
    assert_eq!(
        items[0],
        Item::Comment {
            offset: 0,
            text: " hello".into()
        }
    );
    assert_eq!(
        items[1],
        Item::Comment {
            offset: 8,
            text: String::new()
        }
    );
    let e = events(&items)[0];
    assert_eq!(e.data, "x");
    // The comments belong to the block: the event starts at the first line.
    assert_eq!((e.start, e.end), (0, 19));
    // A comment-only block followed by a blank line dispatches nothing.
    let items = parse(b":ping\n\n");
    assert_eq!(items.len(), 1);
    assert!(events(&items).is_empty());
}

#[test]
fn retry_valid_and_invalid() {
    let items =
        parse(b"retry: 2000\n\nretry: 12a\nretry:\nretry: -1\nretry: 99999999999999999999999\n\n");
    assert_eq!(
        items[0],
        Item::Retry {
            offset: 0,
            millis: 2000
        }
    );
    let v = violations(&items);
    assert_eq!(v.len(), 3);
    assert!(
        v.iter()
            .all(|v| v.kind == ViolationKind::BadRetry && !v.fatal)
    );
    assert_eq!(v[0].offset, 13);
    assert!(items.contains(&Item::Retry {
        offset: 41,
        millis: u64::MAX
    }));
    assert!(events(&items).is_empty());
}

#[test]
fn id_with_nul_is_ignored() {
    let items = parse(b"id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n");
    let ev = events(&items);
    assert_eq!(ev[0].id.as_deref(), Some("1"));
    assert_eq!(ev[1].id, None);
    assert_eq!(ev[1].last_event_id, "1");
    let v = violations(&items);
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].kind, v[0].offset, v[0].fatal),
        (ViolationKind::NulInId, 15, false)
    );
}

#[test]
fn empty_id_resets_and_id_persists() {
    let items = parse(b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid:\ndata: d\n\n");
    let ev = events(&items);
    assert_eq!(ev[0].last_event_id, "7");
    assert_eq!(ev[1].id, None);
    assert_eq!(ev[1].last_event_id, "7");
    assert_eq!(ev[2].id.as_deref(), Some(""));
    assert_eq!(ev[2].last_event_id, "");
    assert_eq!(ev[3].id.as_deref(), Some(""));
}

#[test]
fn id_only_block_updates_buffer_without_dispatch() {
    let mut p = Parser::new(ParserConfig::default());
    let mut out = Vec::new();
    p.feed(b"id: 42\n\n", &mut out);
    assert!(out.is_empty());
    assert_eq!(p.last_event_id(), "42");
    p.feed(b"data: x\n\n", &mut out);
    let e = events(&out)[0];
    assert_eq!((e.id.as_deref(), e.last_event_id.as_str()), (None, "42"));
    assert_eq!((e.start, e.end), (8, 17));
}

#[test]
fn no_dispatch_without_blank_line_and_partial_discarded() {
    let mut p = Parser::new(ParserConfig::default());
    let mut out = Vec::new();
    p.feed(b"data: a\n\ndata: b\nid: 9\n", &mut out);
    assert_eq!(data(&out), ["a"]);
    assert_eq!(p.offset(), 23);
    p.finish(&mut out);
    assert_eq!(
        out.last(),
        Some(&Item::Discarded {
            offset: 9,
            bytes: 14
        })
    );
    assert_eq!(data(&out), ["a"]);
    // A last line without any line ending is discarded too.
    let items = parse(b"data: a\n\ndata: b");
    assert_eq!(
        items.last(),
        Some(&Item::Discarded {
            offset: 9,
            bytes: 7
        })
    );
}

#[test]
fn data_lines_join_with_lf() {
    assert_eq!(
        data(&parse(b"data: a\ndata: b\ndata\ndata:\n\n")),
        ["a\nb\n\n"]
    );
    assert_eq!(
        data(&parse(b"data\n\n")),
        [""],
        "buffer \"\\n\" is not empty"
    );
    // `data` with an empty value makes the buffer "\n": dispatched as "".
    assert_eq!(data(&parse(b"data\ndata\n\n")), ["\n"]);
}

#[test]
fn single_space_after_colon_removed() {
    let items = parse(b"data:a\n\ndata: a\n\ndata:  a\n\nevent:  t\ndata:x\n\n");
    assert_eq!(data(&items), ["a", "a", " a", "x"]);
    assert_eq!(events(&items)[3].event_type, " t");
}

#[test]
fn field_without_colon_and_value_with_colons() {
    let items = parse(b"data\ndata: a:b: c\nevent\n\n");
    let e = events(&items)[0];
    assert_eq!(e.data, "\na:b: c");
    assert_eq!(e.event_type, "message", "empty event field means message");
}

#[test]
fn event_type_and_unknown_fields() {
    let items = parse(b"event: ping\nfoo: bar\nData: x\ndata: y\n\n");
    let e = events(&items)[0];
    assert_eq!((e.event_type.as_str(), e.data.as_str()), ("ping", "y"));
    let unknown: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Item::UnknownField { name, offset } => Some((name.as_str(), *offset)),
            _ => None,
        })
        .collect();
    assert_eq!(unknown, [("foo", 12), ("Data", 21)]);
    assert!(violations(&items).is_empty(), "unknown fields are legal");
}

#[test]
fn offsets_and_raw_across_splits() {
    let body = b"retry: 5\n\n: c\nid: 1\nevent: e\ndata: \xC3\xA9\r\n\r\ndata: two\r\rdata: 3\n\n";
    let whole = parse(body);
    let ev = events(&whole);
    assert_eq!(ev.len(), 3);
    for e in &ev {
        assert_eq!(&e.raw[..], &body[e.start as usize..e.end as usize]);
    }
    assert_eq!(ev[0].start, 10);
    assert_eq!(ev[0].data, "é");
    assert_eq!(ev[1].start, ev[0].end);
    assert_eq!(ev[2].end, body.len() as u64);
    for cut in 0..=body.len() {
        for cut2 in cut..=body.len() {
            let split = parse_chunks(&[&body[..cut], &body[cut..cut2], &body[cut2..]]);
            assert_eq!(split, whole, "split at {cut}/{cut2}");
        }
    }
}

#[test]
fn invalid_utf8_lenient_and_strict() {
    for mode in [Mode::Lenient, Mode::Strict] {
        let cfg = ParserConfig {
            mode,
            ..ParserConfig::default()
        };
        let items = parse_cfg(&[b"data: a\xFFb\n\n"], cfg);
        assert_eq!(data(&items), ["a\u{FFFD}b"]);
        let v = violations(&items);
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].kind, v[0].offset, v[0].fatal),
            (ViolationKind::InvalidUtf8, 7, false)
        );
        assert_eq!(v[0].kind.name(), "invalid-utf8");
        assert_eq!(v[0].is_failure(mode), mode == Mode::Strict);
    }
}

#[test]
fn multibyte_split_across_chunks_is_valid() {
    let body = "data: 日本 🎉\n\n".as_bytes();
    for cut in 0..=body.len() {
        let items = parse_chunks(&[&body[..cut], &body[cut..]]);
        assert_eq!(data(&items), ["日本 🎉"], "cut at {cut}");
        assert!(violations(&items).is_empty());
    }
    let one_by_one: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(data(&parse_chunks(&one_by_one)), ["日本 🎉"]);
}

#[test]
fn truncated_multibyte_at_line_end_is_invalid() {
    let items = parse(b"data: \xE6\x97\n\n");
    assert_eq!(data(&items), ["\u{FFFD}"]);
    assert_eq!(violations(&items).len(), 1);
}

#[test]
fn ten_mib_line_is_one_fatal_violation_with_bounded_memory() {
    let mut p = Parser::new(ParserConfig::default());
    let mut out = Vec::new();
    let chunk = vec![b'a'; 64 * 1024];
    p.feed(b"data: ", &mut out);
    let mut max_buffered = 0;
    for _ in 0..160 {
        p.feed(&chunk, &mut out);
        max_buffered = max_buffered.max(p.buffered_bytes());
    }
    p.feed(b"\n\n", &mut out);
    p.finish(&mut out);
    assert!(p.is_stopped());
    assert!(max_buffered <= 1024 * 1024, "buffered {max_buffered}");
    assert_eq!(
        out.len(),
        1,
        "{:?}",
        out.iter()
            .map(|i| format!("{i:?}").len())
            .collect::<Vec<_>>()
    );
    let v = violations(&out)[0];
    assert_eq!(
        (v.kind, v.offset, v.fatal),
        (ViolationKind::LineTooLong, 0, true)
    );
    assert_eq!(v.kind.name(), "line-too-long");
    assert!(p.offset() <= 1024 * 1024 + 6);
}

#[test]
fn line_exactly_at_limit_is_accepted() {
    let cfg = ParserConfig {
        max_line_bytes: 10,
        max_event_bytes: 100,
        ..ParserConfig::default()
    };
    assert_eq!(
        data(&parse_cfg(&[b"data: 1234\n\n"], cfg.clone())),
        ["1234"]
    );
    let items = parse_cfg(&[b"data: 12345\n\n"], cfg);
    assert_eq!(violations(&items)[0].kind, ViolationKind::LineTooLong);
}

#[test]
fn event_too_large_is_fatal_and_stops() {
    let cfg = ParserConfig {
        max_line_bytes: 100,
        max_event_bytes: 30,
        ..ParserConfig::default()
    };
    let mut p = Parser::new(cfg);
    let mut out = Vec::new();
    p.feed(b"data: ok\n\n", &mut out);
    for _ in 0..10 {
        p.feed(b"data: 0123456789\n", &mut out);
    }
    p.feed(b"\ndata: later\n\n", &mut out);
    p.finish(&mut out);
    assert!(p.is_stopped());
    assert_eq!(data(&out), ["ok"]);
    let v = violations(&out);
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].kind, v[0].offset, v[0].fatal),
        (ViolationKind::EventTooLarge, 10, true)
    );
    assert!(p.buffered_bytes() <= 30 + 2 * 3);
}

#[test]
fn feeding_after_stop_is_ignored() {
    let cfg = ParserConfig {
        max_line_bytes: 4,
        ..ParserConfig::default()
    };
    let mut p = Parser::new(cfg);
    let mut out = Vec::new();
    p.feed(b"data: toolong", &mut out);
    let at = p.offset();
    p.feed(b"\n\ndata: x\n\n", &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(p.offset(), at);
}

/// Regression: a cut inside an event must not move the id a client resumes with
/// (the harness once resumed after an event it never received).
#[test]
fn reconnect_id_ignores_the_id_of_an_undispatched_event() {
    let mut p = Parser::new(ParserConfig::default());
    let mut out = Vec::new();
    p.feed(b"id: 14\ndata: a\n\nid: 15\ndata: b\n", &mut out);
    assert_eq!(p.last_event_id(), "15");
    assert_eq!(p.reconnect_id(), "14");
    p.finish(&mut out);
    assert_eq!(p.reconnect_id(), "14");
    // A block without data still sets it at its blank line.
    let mut p = Parser::new(ParserConfig::default());
    p.feed(b"id: 7\n\n", &mut out);
    assert_eq!(p.reconnect_id(), "7");
}

#[test]
fn reconnect_id_carries_over_a_connection_that_dispatched_nothing() {
    let mut p = Parser::new(ParserConfig::default());
    p.set_last_event_id("41");
    let mut out = Vec::new();
    p.feed(b"retry: 10\n\nid: 42\ndata: par", &mut out);
    p.finish(&mut out);
    assert_eq!(p.reconnect_id(), "41");
}
