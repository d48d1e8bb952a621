#!/usr/bin/env bash
# The whole test suite, from a fresh machine. Installs what the tests need, then runs them.
# Usage: scripts/test.sh            (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p spate-cluster --all-targets --locked --features bug-injection -- -D warnings
cargo nextest run --workspace --locked --no-run
# The tests drive the `spate` binary this build made (the spate package's own integration
# tests make cargo build it). Without SPATE_BIN each test process would first run
# `cargo build -p spate`, whose feature set differs from the workspace's, compiling a second
# copy of the server: minutes and gigabytes on a CI machine.
SPATE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/spate" \
    cargo nextest run --workspace --locked --no-fail-fast
# The replication simulator must find each known bug injected behind spate-cluster's
# test-only `bug-injection` feature (docs/reliability.md, "Simulator"): a few seconds.
cargo nextest run -p spate-cluster --locked --features bug-injection \
    --test replication_simulation -E 'test(injected_bugs)'
# Doc tests are not run by nextest.
cargo test --workspace --locked --doc
