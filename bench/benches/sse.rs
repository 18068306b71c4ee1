//! `cargo bench -p sse-bench`: the same run as `cargo run --release -p sse-bench`
//! (cargo builds benches with the release profile), rewriting BENCHMARKS.md.

#[path = "../src/main.rs"]
mod app;

fn main() -> anyhow::Result<()> {
    app::main()
}
