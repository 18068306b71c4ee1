//! The chunked decoder alone: arbitrary bytes in arbitrary input and output splits.
//! No panic, no loop without progress, never more output than input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_wire::ChunkedDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, wire)) = data.split_first() else {
        return;
    };
    let in_step = 1 + usize::from(knobs & 0x0f);
    let mut out = vec![0u8; 1 + usize::from(knobs >> 4)];
    let mut dec = ChunkedDecoder::new();
    let mut decoded = 0usize;
    let mut pos = 0usize;
    while pos < wire.len() && !dec.is_done() {
        let end = (pos + in_step).min(wire.len());
        match dec.decode(&wire[pos..end], &mut out) {
            Ok((used, n)) => {
                assert!(used <= end - pos && n <= out.len());
                assert!(used > 0 || n > 0 || dec.is_done(), "no progress");
                pos += used;
                decoded += n;
                assert!(decoded <= wire.len());
            }
            Err(_) => return,
        }
    }
});
