//! The SSE parser alone: arbitrary bytes fed in arbitrary splits, in both modes and
//! with small limits. No panic; events lie inside the bytes fed, and the parser never
//! reports more than two items per byte fed (plus the end).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_wire::{Item, Mode, Parser, ParserConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, body)) = data.split_first() else {
        return;
    };
    let mode = if knobs & 1 == 0 {
        Mode::Strict
    } else {
        Mode::Lenient
    };
    let mut parser = Parser::new(ParserConfig {
        mode,
        max_line_bytes: 64 + usize::from(knobs & 0x3f) * 16,
        max_event_bytes: 256,
    });
    let step = 1 + usize::from(knobs >> 4);
    let mut items = Vec::new();
    let mut fed = 0usize;
    for piece in body.chunks(step) {
        parser.feed(piece, &mut items);
        fed += piece.len();
        if parser.is_stopped() {
            break;
        }
    }
    parser.finish(&mut items);
    assert!(items.len() <= 2 * fed + 2, "{} items from {fed} bytes", items.len());
    for it in &items {
        if let Item::Event(ev) = it {
            assert!(ev.start <= ev.end && ev.end <= fed as u64);
        }
    }
});
