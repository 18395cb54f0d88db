#!/usr/bin/env bash
# Backend benchmarks: rpcbench against dpdk-testpmd on the same device and core, back to
# back, printing both figures and the ratio (the machine is shared: only ratios from one
# run mean anything).
#
#   scripts/bench.sh [--seconds N] [--core C] [--only null|pcap|afpacket|kvpcap]
#
# 1. macswap over net_null,copy=1            rpcbench dpdk     vs testpmd (target >= 0.9)
# 2. macswap over net_pcap,infinite_rx=1     rpcbench dpdk     vs testpmd (target >= 0.9)
# 3. io forwarding over a veth pair          rpcbench afpacket vs testpmd net_af_packet (target >= 1.0)
# 4. kv-server answering a replayed kv-pcap  GET (>= 0.6) and SET (>= 0.4) vs testpmd macswap
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

secs=8; core=1; only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) secs="$2"; shift 2 ;;
    --core) core="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
main_core=0
[ "$core" = 0 ] && main_core=1

cargo build --release -q -p dataplane --bin rpcbench
RPCBENCH=target/release/rpcbench
work=$(mktemp -d /tmp/flatrpc-bench.XXXXXX)
ns=""
cleanup() { [ -n "$ns" ] && scripts/netns.sh down "$ns" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT

# testpmd: mean of its per-period Rx-pps lines (summed over ports) after the first period.
testpmd_pps() { # vdev-args... -- testpmd-args...
  local log="$work/testpmd.log"
  timeout -s INT "$((secs + 3))" dpdk-testpmd --no-huge -m 512 --no-pci --no-telemetry \
    --file-prefix "bench-tp-$$" -l "$main_core,$core" --main-lcore "$main_core" "$@" \
    --nb-cores=1 --stats-period=1 --auto-start --total-num-mbufs=16384 >"$log" 2>&1 </dev/null || true
  awk '/Port statistics/ {p++} /Rx-pps:/ && p>1 {s[p]+=$2} END {n=0; t=0; for (k in s) {t+=s[k]; n++}; if (n>1) printf "%.0f\n", t/n; else print 0}' "$log"
}
rx_pps_of_json() { # last JSON line on stdin -> rx_pps, or 0 with the error on stderr
  python3 -c '
import json, sys
lines = [l for l in sys.stdin.read().splitlines() if l.startswith("{")]
if not lines:
    print("bench.sh: rpcbench printed no result", file=sys.stderr); print(0)
else:
    print(round(json.loads(lines[-1])["rx_pps"]))'
}
rpcbench_pps() { # rpcbench args...
  "$RPCBENCH" --cores "$core" --duration "$secs" --stats-period 0 --json "$@" </dev/null 2>"$work/rpcbench.err" \
    | rx_pps_of_json || true
  grep -h "rpcbench: error" "$work/rpcbench.err" >&2 || true
}
report() { # name ours theirs target
  python3 - "$@" <<'PY'
import sys
name, ours, theirs, target = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ratio = ours / theirs if theirs > 0 else float("nan")
verdict = "meets" if ratio >= target else "BELOW"
print(f"{name:<42} rpcbench {ours/1e6:8.2f} Mpps   testpmd {theirs/1e6:8.2f} Mpps   ratio {ratio:5.2f} ({verdict} target {target})")
PY
}

results=()
if [ -z "$only" ] || [ "$only" = null ]; then
  vdev="net_null0,copy=1"
  tp=$(testpmd_pps --vdev="$vdev" -- --forward-mode=macswap --port-topology=loop)
  us=$(rpcbench_pps --backend dpdk --mode macswap \
        --eal "--no-huge -m 512 --no-pci --no-telemetry --file-prefix=bench-rb-$$ -l $main_core --vdev=$vdev")
  results+=("$(report "macswap net_null,copy=1 (1 core)" "$us" "$tp" 0.9)")
fi
if [ -z "$only" ] || [ "$only" = pcap ]; then
  pcap="$work/udp64.pcap"
  python3 - "$pcap" <<'PY'
import struct, sys
# 1024 64-byte Ethernet/IPv4/UDP frames over 64 source ports.
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for i in range(1024):
        payload = bytes(64 - 42)
        udp = struct.pack("!HHHH", 10000 + i % 64, 9000, 8 + len(payload), 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp) + len(payload), i, 0, 64, 17, 0,
                         bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]))
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        frame = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + udp + payload
        f.write(struct.pack("<IIII", 0, i, len(frame), len(frame)) + frame)
PY
  vdev="net_pcap0,rx_pcap=$pcap,infinite_rx=1"
  tp=$(testpmd_pps --vdev="$vdev" -- --forward-mode=macswap --port-topology=loop)
  us=$(rpcbench_pps --backend dpdk --mode macswap \
        --eal "--no-huge -m 512 --no-pci --no-telemetry --file-prefix=bench-rb-$$ -l $main_core --vdev=$vdev")
  results+=("$(report "macswap net_pcap,infinite_rx=1 (1 core)" "$us" "$tp" 0.9)")
fi
if [ -z "$only" ] || [ "$only" = afpacket ]; then
  # One veth pair: rpcbench txonly generates 64-byte frames over 64 flows in namespace
  # b; in namespace a testpmd (net_af_packet) and then rpcbench (afpacket) io-forward
  # what arrives back out of the same port, on the same core, one after the other.
  ns="fb$$"
  scripts/netns.sh up "$ns" >/dev/null
  gen() { ip netns exec "$ns-b" "$RPCBENCH" --backend afpacket --iface "$ns-vb" --mode txonly \
            --cores "$main_core" --duration "$((secs + 4))" --stats-period 0 --json \
            --pkt-size 64 --flows 64 >/dev/null 2>&1; }
  gen & g=$!
  tp=$(ip netns exec "$ns-a" bash -c "$(declare -f testpmd_pps); secs=$secs core=$core main_core=$main_core work=$work; testpmd_pps --vdev=net_af_packet0,iface=$ns-va -- --forward-mode=io --port-topology=loop")
  wait "$g" || true
  gen & g=$!
  us=$(ip netns exec "$ns-a" "$RPCBENCH" --backend afpacket --iface "$ns-va" --mode io \
        --cores "$core" --duration "$secs" --stats-period 0 --json </dev/null | rx_pps_of_json)
  wait "$g" || true
  results+=("$(report "io afpacket vs net_af_packet, veth (1 core)" "$us" "$tp" 1.0)")
fi

if [ -z "$only" ] || [ "$only" = kvpcap ]; then
  # The KV server pipeline (firewall + session tracker + transport + store, answering
  # every request) on net_pcap,infinite_rx=1 replaying a kv-pcap recording (Connect,
  # confirmation, 1024 GETs or 1024 loopable reliable-ordered SETs; see
  # examples/kv/src/replay.rs), against testpmd macswap on the same pcap and core.
  # Figures: kv-server's mean per-second RPC rate (handler executions, each answered)
  # after its first period; testpmd's mean Rx-pps.
  cargo build --release -q -p kv-example --bin kv-server --bin kv-pcap
  kv_rps() { # pcap -> mean rps
    local log="$work/kv-server.log"
    cat >"$work/kv.toml" <<EOF
cores = [$core]
[port]
backend = "dpdk"
eal = "--no-huge -m 512 --no-pci --no-telemetry --file-prefix=bench-kv-$$ -l $main_core --vdev=net_pcap0,rx_pcap=$1,infinite_rx=1"
[net]
ip = "10.77.1.2"
udp_port = 7000
mac = "02:00:00:77:01:02"
neighbors = [{ ip = "10.77.1.1", mac = "02:00:00:77:01:01" }]
[transport]
tag_seed = 1
[tables.firewall]
rules = { alice = "allow" }
EOF
    timeout -s INT "$((secs + 3))" target/release/kv-server --config "$work/kv.toml" \
      --stats-period 1 </dev/null >/dev/null 2>"$log" || true
    grep -h "kv-server: error" "$log" >&2 || true
    awk '/ rps / {n++; for (i = 1; i < NF; i++) if ($i == "rps") v = $(i + 1); if (n > 1) {t += v; k++}}
         END {if (k > 0) printf "%.0f\n", t / k; else print 0}' "$log"
  }
  report_kv() { # name ours theirs target
    python3 - "$@" <<'PY'
import sys
name, ours, theirs, target = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ratio = ours / theirs if theirs > 0 else float("nan")
verdict = "meets" if ratio >= target else "BELOW"
print(f"{name:<42} kv-server {ours/1e6:7.2f} Mrps   testpmd {theirs/1e6:8.2f} Mpps   ratio {ratio:5.2f} ({verdict} target {target})")
PY
  }
  for op in get set; do
    pcap="$work/kv-$op.pcap"
    target/release/kv-pcap --op "$op" --count 1024 --tag-seed 1 --user alice --out "$pcap" 2>/dev/null
    tp=$(testpmd_pps --vdev="net_pcap0,rx_pcap=$pcap,infinite_rx=1" -- --forward-mode=macswap --port-topology=loop)
    us=$(kv_rps "$pcap")
    if [ "$op" = get ]; then
      results+=("$(report_kv "KV GET (unreliable), replayed pcap (1 core)" "$us" "$tp" 0.6)")
    else
      results+=("$(report_kv "KV SET (reliable-ordered), replayed pcap" "$us" "$tp" 0.4)")
    fi
  done
fi

echo
echo "== flatrpc backend benchmarks ($(date -u +%Y-%m-%d), ${secs}s each, forwarding core $core)"
printf '%s\n' "${results[@]}"
