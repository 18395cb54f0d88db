#!/usr/bin/env bash
# The test command: installs what is needed (scripts/setup.sh), builds, runs every test.
# Root/netns tests run when root; under CI (CI=1) they must run, so run this as root there.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -- FILTER  # pass a filter to cargo test
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never

shift_args=()
if [ "${1:-}" = "--" ]; then shift; shift_args=("$@"); fi

echo "== check (no DPDK: the pure-Rust backends alone compile without libdpdk)"
cargo check --workspace --exclude dpdk-sys --no-default-features --all-targets

echo "== build (default features, DPDK)"
cargo build --workspace --all-targets

echo "== tests"
# One test binary at a time keeps namespace and EAL tests from fighting over 2 cores;
# inside a binary, tests run in parallel unless they serialise themselves.
cargo test --workspace --no-fail-fast "${shift_args[@]}"
