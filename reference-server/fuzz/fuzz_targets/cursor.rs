//! The stream cursor (`Last-Event-ID` header, else the `last_event_id` query value):
//! never panics, and accepts exactly the decimal u64s, from the header when it is
//! present and not empty. Input: header bytes, a 0xFF byte, the query value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reference_server::stream::parse_cursor_value;

fuzz_target!(|data: &[u8]| {
    let (header, query) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (Some(&data[..i]), std::str::from_utf8(&data[i + 1..]).ok()),
        None => (Some(data), None),
    };
    let result = parse_cursor_value(header, query);
    let header_str = header.filter(|h| !h.is_empty()).map(std::str::from_utf8);
    let raw = match header_str {
        Some(Err(_)) => {
            assert!(result.is_err(), "a non-UTF-8 header is refused");
            return;
        }
        Some(Ok(h)) => Some(h),
        None => query.filter(|q| !q.is_empty()),
    };
    match (raw, result) {
        (None, r) => assert!(matches!(r, Ok(None)), "absent is from the start"),
        (Some(s), Ok(Some(n))) => {
            assert!(s.bytes().all(|b| b.is_ascii_digit()), "{s:?} accepted");
            assert_eq!(s.parse::<u64>().ok(), Some(n));
        }
        (Some(s), Ok(None)) => panic!("{s:?} read as absent"),
        (Some(s), Err(_)) => {
            // Refused: it must not be a decimal u64 (a header with bytes outside
            // visible ASCII is refused before it is read as one).
            let visible = s.bytes().all(|b| (0x20..0x7f).contains(&b) || b == b'\t');
            assert!(
                !visible || s.parse::<u64>().is_err() || s.starts_with('+'),
                "{s:?} refused"
            );
        }
    }
});
