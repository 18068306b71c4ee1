//! Plays arbitrary bytes as a server's whole response (head, chunked or not, body)
//! through the byte-exact client and the SSE parser: no panic, no hang (time is
//! paused, so every deadline fires at once), and never more raw body taken off the
//! wire (`wire_offset`) than bytes sent; a `Content-Encoding` body decodes to more,
//! held at most `MAX_DECODED_AHEAD` bytes ahead. Memory is bounded by libFuzzer's
//! `-rss_limit_mb` (see `.ci/fuzz`).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sse_wire::{Item, Mode, Parser, ParserConfig, RequestSpec, Target};
use tokio::io::AsyncWriteExt;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, wire)) = data.split_first() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    rt.block_on(play(knobs, wire));
});

async fn play(knobs: u8, wire: &[u8]) {
    let (client, mut server) = tokio::io::duplex(wire.len().max(64 * 1024) + 1);
    server.write_all(wire).await.expect("the duplex has room");
    // EOF after the bytes, with the server's read side still open for the request.
    server.shutdown().await.expect("shutdown");
    let target = Target {
        host: "fuzz.invalid".into(),
        port: 80,
        tls: false,
    };
    let method = if knobs & 1 == 0 { "GET" } else { "HEAD" };
    let req = RequestSpec {
        method: method.into(),
        ..RequestSpec::get("/events")
    };
    let Ok(mut resp) = sse_wire::open_on(client, &target, &req, Duration::from_secs(5)).await
    else {
        return;
    };
    let mode = if knobs & 2 == 0 {
        Mode::Strict
    } else {
        Mode::Lenient
    };
    let mut parser = Parser::new(ParserConfig {
        mode,
        max_line_bytes: 4096,
        max_event_bytes: 8192,
    });
    let step = 1 + usize::from(knobs >> 2);
    let mut buf = vec![0u8; step];
    let mut items = Vec::new();
    let mut decoded = 0usize;
    loop {
        match resp.read_body(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                assert!(n <= step, "read_body returned more than asked");
                decoded += n;
                // A compressed body decodes to more than was sent: bound the raw bytes.
                assert!(resp.wire_offset() <= wire.len() as u64, "more body than bytes sent");
                parser.feed(&buf[..n], &mut items);
                check(&items, decoded);
                items.clear();
                if parser.is_stopped() {
                    break;
                }
            }
        }
    }
    assert_eq!(resp.body_offset(), decoded as u64);
    parser.finish(&mut items);
    check(&items, decoded);
}

fn check(items: &[Item], fed: usize) {
    for it in items {
        if let Item::Event(ev) = it {
            assert!(ev.start <= ev.end && ev.end <= fed as u64, "event outside the body");
        }
    }
}
