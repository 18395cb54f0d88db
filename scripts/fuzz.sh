#!/usr/bin/env bash
# Runs the cargo-fuzz (libFuzzer) targets in fuzz/ for a bounded time.
#
#   scripts/fuzz.sh TARGET [SECONDS]   # one target, default 60 s
#   scripts/fuzz.sh all [SECONDS]      # every target in turn, SECONDS each
#   scripts/fuzz.sh list               # the target names
#
# Targets (each calls a check function that also runs in a seeded-random #[test]):
#   wire_l2l4     Ethernet/ARP/IPv4/UDP views   dataplane::wire::frame::fuzz_check_l2l4
#   rpc_header    32-byte RPC header view        dataplane::wire::rpc::fuzz_check
#   transport_rx  transport receive path         dataplane::transport::fuzzing::check_rx
#   appnet_parse  AppNet element parser          specgen::appnet::fuzz_parse
#   control_request  host control socket + HTTP head   dataplane::host::control::fuzz_check
#   prometheus_text  Prometheus text format parser     dataplane::stats::prometheus::fuzz_check
#   app_proto     shm attach protocol messages   dataplane::app::proto::fuzz_check
#
# Toolchain: cargo-fuzz needs nightly-only flags (-Zsanitizer=address, coverage passes).
# This machine runs stable Rust, which accepts them with RUSTC_BOOTSTRAP=1; the script
# sets it and uses the default (stable) toolchain. cargo-fuzz itself is installed with
# `cargo install cargo-fuzz --locked` when missing. Builds use cargo-fuzz's defaults:
# release + debug assertions + overflow checks + AddressSanitizer (LeakSanitizer on).
#
# Each run is one libFuzzer process (`-jobs=1 -workers=1`: the machine has 2 cores
# shared with others), limited by -max_total_time, and per target by -max_len,
# -rss_limit_mb (OOM) and -timeout (a slow unit counts as a failure). Its output is
# written to fuzz/logs/TARGET/fuzz-0.log while it runs and copied to the terminal
# and fuzz/logs/TARGET.log at the end.
#
# Corpora: fuzz/corpus-seed/TARGET/ holds a few small committed seeds (read only):
#   wire_l2l4     UDP/IPv4 frames carrying RPC headers (with and without IP options,
#                 a fragment, a zero UDP checksum), an ARP request/reply, a VLAN frame
#   rpc_header    one valid header of each packet type, fragments, ordered/resync flags
#   transport_rx  packet streams in the target's framing: per packet a control byte
#                 (bit 0: 0 = to the server, 1 = to the client; bit 1: patch in the live
#                 session id; bit 2: patch in magic/version; bits 3-7: advance the clock
#                 by n*50 us), a u16 LE length, then the packet
#   appnet_parse  the example and corpus .appnet elements
#   app_proto     a server and a client Hello, a Welcome, a Refused
# and fuzz/dict/TARGET.dict a libFuzzer dictionary. New inputs go to fuzz/corpus/TARGET/
# (git-ignored), which later runs resume from.
#
# Exit status: 0 when every run finished clean; 1 when one found a crash, leak, timeout
# or OOM, after printing the reproducer (saved under fuzz/artifacts/TARGET/) and the
# command that replays it; 2 on usage or build errors.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FUZZ="$ROOT/fuzz"
TARGETS=(wire_l2l4 rpc_header transport_rx appnet_parse control_request prometheus_text app_proto)
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never
export RUSTC_BOOTSTRAP=1

usage() {
    echo "usage: $0 TARGET|all|list [SECONDS]   (targets: ${TARGETS[*]})" >&2
    exit 2
}

# Per-target libFuzzer limits: max input length, RSS limit (MB), per-unit timeout (s).
limits() {
    case "$1" in
    wire_l2l4) echo "2100 1024 10" ;;    # frames up to the 2048-byte rebuild buffer and past it
    rpc_header) echo "1100 1024 10" ;;   # header + payload; only lengths matter past 32
    transport_rx) echo "8192 2048 20" ;; # several framed packets of up to ~1.5 kB
    appnet_parse) echo "8192 1024 10" ;; # the corpus elements are under 1 kB
    control_request) echo "4096 1024 10" ;; # request lines, JSON replies, HTTP heads
    prometheus_text) echo "4096 1024 10" ;; # exposition documents
    app_proto) echo "600 512 10" ;;      # messages are at most 512 bytes
    *) return 1 ;;
    esac
}

ensure_cargo_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "fuzz.sh: installing cargo-fuzz" >&2
        cargo install cargo-fuzz --locked
    fi
}

# Prints the last libFuzzer status line and the execution count of a log.
summarise() {
    local target="$1" log="$2" status="$3" line runs
    line="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    echo "fuzz.sh: $target: $status; executions ${runs:-?}; last: ${line:-none}"
}

run_target() {
    local target="$1" secs="$2" max_len rss timeout
    read -r max_len rss timeout < <(limits "$target")
    local seeds="$FUZZ/corpus-seed/$target" corpus="$FUZZ/corpus/$target"
    local logdir="$FUZZ/logs/$target" log="$FUZZ/logs/$target.log"
    mkdir -p "$corpus" "$logdir" "$FUZZ/artifacts/$target"
    local args=(
        "-max_total_time=$secs" -jobs=1 -workers=1
        "-max_len=$max_len" "-rss_limit_mb=$rss" "-timeout=$timeout"
        -print_final_stats=1
    )
    [ -f "$FUZZ/dict/$target.dict" ] && args+=("-dict=$FUZZ/dict/$target.dict")
    local corpora=("$corpus")
    [ -d "$seeds" ] && corpora+=("$seeds")

    echo "fuzz.sh: $target for ${secs}s (live log: $logdir/fuzz-0.log)" >&2
    # Build first so that a compile error is told apart from a finding.
    if ! (cd "$FUZZ" && cargo fuzz build "$target"); then
        echo "fuzz.sh: $target: build failed" >&2
        return 2
    fi
    local rc=0
    # libFuzzer's -jobs mode writes fuzz-0.log into the working directory.
    (cd "$logdir" && cargo fuzz run --fuzz-dir "$FUZZ" "$target" "${corpora[@]}" -- "${args[@]}") \
        >"$log" 2>&1 || rc=$?
    cat "$log"
    if [ "$rc" -eq 0 ]; then
        summarise "$target" "$log" "clean"
        return 0
    fi
    summarise "$target" "$log" "FAILED (exit $rc)"
    local found
    found="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | sort -u)"
    if [ -n "$found" ]; then
        while read -r a; do
            case "$a" in /*) ;; *) a="$logdir/$a" ;; esac
            echo "fuzz.sh: $target: reproducer: $a"
            echo "fuzz.sh: $target: replay with: (cd $FUZZ && RUSTC_BOOTSTRAP=1 cargo fuzz run $target $a)"
        done <<<"$found"
    else
        echo "fuzz.sh: $target: no reproducer written; see $log"
    fi
    return 1
}

[ $# -ge 1 ] || usage
what="$1"
secs="${2:-60}"
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || usage

case "$what" in
list)
    printf '%s\n' "${TARGETS[@]}"
    exit 0
    ;;
all) selected=("${TARGETS[@]}") ;;
*)
    limits "$what" >/dev/null || usage
    selected=("$what")
    ;;
esac

ensure_cargo_fuzz
status=0
for t in "${selected[@]}"; do
    rc=0
    run_target "$t" "$secs" || rc=$?
    if [ "$rc" -gt "$status" ]; then status="$rc"; fi
done
exit "$status"
