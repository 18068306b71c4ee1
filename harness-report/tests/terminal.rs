//! The terminal summary, plain and coloured.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use harness_report::{Reporter, TerminalReporter, TerminalStyle};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn run(color: bool) -> String {
    let buf = Buf::default();
    let mut t = TerminalReporter::new(
        Box::new(buf.clone()),
        TerminalStyle {
            color,
            progress: false,
        },
    )
    .with_report_dir("reports/20261123T091500Z-424242");
    for e in support::events() {
        t.on_event(&e).unwrap();
    }
    String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn plain_summary() {
    let text = run(false);
    assert!(!text.contains('\x1b'), "no ANSI escapes without colour");
    support::redacted().bind(|| insta::assert_snapshot!("terminal-plain", text));
}

#[test]
fn coloured_summary() {
    let text = run(true);
    assert!(
        text.contains("\x1b[31m")
            || text.contains("\x1b[1m\x1b[31m")
            || text.contains("\x1b[31;1m"),
        "red fail"
    );
    let stripped = console::strip_ansi_codes(&text);
    assert_eq!(stripped, run(false), "colour changes nothing but colour");
}

#[test]
fn progress_bar_mode_still_prints_the_summary() {
    let buf = Buf::default();
    let mut t = TerminalReporter::new(
        Box::new(buf.clone()),
        TerminalStyle {
            color: false,
            progress: true,
        },
    );
    for e in support::events() {
        t.on_event(&e).unwrap();
    }
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("FAIL: 1 passed, 1 failed, 1 skipped, 1 error"),
        "{text}"
    );
    assert!(
        !text.contains("[1/4]"),
        "per-scenario lines only without a bar"
    );
}
