# Recipes for the SSE contract-test harness. `just --list` shows them.

# Run every scenario against the embedded reference server and write a report.
run *ARGS:
    cargo run --release -p sse-harness -- run {{ARGS}}

# The whole test suite, as CI runs it (installs nginx+nchan, xmllint and Chromium when missing).
ci:
    bash .ci/run

# The tests only (one test per scenario in harness/tests/conformance.rs, plus unit tests).
test *ARGS:
    cargo test --workspace {{ARGS}}

# List the scenarios and whether a profile can run them.
list PROFILE="spine":
    cargo run -q -p sse-harness -- list --profile {{PROFILE}}

# The crash/restart contract with all 20 kill cycles against a reference-server process.
durability:
    cargo build --release -p sse-harness
    d=$(mktemp -d) && port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])') && \
    ./target/release/sse-harness run --target http://127.0.0.1:$port --token t \
      --server-cmd "exec ./target/release/sse-harness serve-reference --addr 127.0.0.1:$port --data $d --token t" \
      --scenario 'DURABILITY/*'

# Start nginx+nchan on a free loopback port in DIR (prints its URL; installs it as root when missing).
nchan-start DIR="/tmp/sse-nchan":
    bash targets/nchan/install.sh
    bash targets/nchan/nchan.sh start {{DIR}}

# Stop the nginx+nchan started in DIR.
nchan-stop DIR="/tmp/sse-nchan":
    bash targets/nchan/nchan.sh stop {{DIR}}

# Fuzz every target of every */fuzz/ crate for SECONDS each (CI runs 20 s); needs nightly.
fuzz SECONDS="300" TARGET="*":
    FUZZ_SECONDS={{SECONDS}} bash .ci/fuzz '{{TARGET}}'

# Format and lint, as CI does.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# The side-by-side benchmarks (reference vs nchan, harness vs raw reader); rewrites BENCHMARKS.md.
bench *ARGS:
    cargo run --release -p sse-bench -- {{ARGS}}

# The mutation table (fault → contract → finding) in docs/MUTATIONS.md.
mutations:
    cargo run --release -p sse-harness -- mutations --seed 1 --out docs/MUTATIONS.md
