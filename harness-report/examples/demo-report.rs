//! Writes the reports of the synthetic test run into a directory, to look at them:
//! `cargo run -p harness-report --example demo-report -- /tmp/demo-report`.

#[path = "../tests/support/mod.rs"]
mod support;

use harness_report::{TerminalReporter, TerminalStyle};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "demo-report".into());
    let dir = std::path::Path::new(&dir);
    let mut reporters = harness_report::file_reporters(dir);
    reporters.push(Box::new(
        TerminalReporter::new(
            Box::new(std::io::stdout()),
            TerminalStyle {
                color: true,
                progress: false,
            },
        )
        .with_report_dir(dir),
    ));
    for e in support::events() {
        for r in reporters.iter_mut() {
            if let Err(e) = r.on_event(&e) {
                eprintln!("error: {e}: {:?}", std::error::Error::source(&e));
                std::process::exit(1);
            }
        }
    }
}
