#!/usr/bin/env bash
# Backend benchmarks: rpcbench against dpdk-testpmd on the same device and core, back to
# back, printing both figures and the ratio (the machine is shared: only ratios from one
# run mean anything).
#
#   scripts/bench.sh [--seconds N] [--core C] [--only null|pcap|afpacket|kvlat|kvpcap|rpc|shm] [--count N]
#                    [--rpc-seconds S]
#
# 1. macswap over net_null,copy=1            rpcbench dpdk     vs testpmd (target >= 0.9)
# 2. macswap over net_pcap,infinite_rx=1     rpcbench dpdk     vs testpmd (target >= 0.9)
# 3. io forwarding over a veth pair          rpcbench afpacket vs testpmd net_af_packet (target >= 1.0)
# 4. kv-server answering a replayed kv-pcap  GET (>= 0.6) and SET (>= 0.4) vs testpmd macswap
#    (full UDP checksums; then again with udp_checksum = "zero", labelled)
# kvlat: KV GET round trip, one outstanding (--count N GETs, default 20000): kernel UDP
#    echo on a veth pair, then kv-server/kv-client over the same pair (afpacket, DPDK
#    net_af_packet) and over net_memif (two DPDK processes, one core each); p50/p99.
# rpc: the RPC tax, side by side (issue 7): kernel UDP echo, gRPC (tonic) direct, gRPC
#    through two HAProxy HTTP/2 sidecars (firewall as a header ACL), and flatrpc
#    (rpcbench rpc-server/rpc-client: afpacket, DPDK net_af_packet, net_memif) on one
#    veth pair; latency (1 outstanding), throughput (4 sessions x 16), a value-size
#    sweep, CPU per RPC of every process of each stack. Writes benches/results/rpc.md,
#    runs.jsonl and SVG plots (--rpc-seconds S measured per run, default 1.5).
# shm: KV host mode (dataplane run on each side, kv-server/kv-client as attached application
#    processes over shared memory) vs the in-process engines on the same veth path: GET
#    round trip p50/p99 (one outstanding) and SET throughput (16 outstanding); targets
#    <= 1.5 us added to the median, >= 0.7 of in-process throughput. Then the channel
#    microbenchmark (`cargo bench --bench shm`) and the same KV server path with the
#    handler in-process vs attached, one polling thread and one app thread
#    (`cargo bench --bench kv_path`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

secs=8; core=1; only=""; kvlat_count=20000; rpc_secs=1.5
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) secs="$2"; shift 2 ;;
    --core) core="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --count) kvlat_count="$2"; shift 2 ;;
    --rpc-seconds) rpc_secs="$2"; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
main_core=0
[ "$core" = 0 ] && main_core=1

cargo build --release -q -p flatrpc --bin rpcbench
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
print(f"{name:<46} rpcbench {ours/1e6:8.2f} Mpps   testpmd {theirs/1e6:8.2f} Mpps   ratio {ratio:5.2f} ({verdict} target {target})")
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

if [ -z "$only" ] || [ "$only" = kvlat ]; then
  # KV GET round-trip latency, one RPC outstanding, client on core $main_core and
  # server on core $core. (a) One veth pair (netns.sh): the kernel's UDP stack on the
  # kernel addresses 10.77.0.x answering 58-byte datagrams with 169 bytes, the UDP
  # payloads of a flatrpc GET and its response (32-byte RPC header each; a 128-byte
  # value), blocking in recv and busy-polling; then kv-server /
  # kv-client on the dataplane addresses 10.77.1.x over the same pair, with the pure-Rust
  # afpacket backend (V2 RX ring, the engine default) and with DPDK's net_af_packet.
  # (b) net_memif: kv-server (role=server) and kv-client (role=client) as two DPDK
  # processes in one namespace joined by a memif socket; --no-huge is enough (copy mode).
  # Each kv run is a SET pass (fills the keys), a 1000-GET warm-up and the measured GETs.
  # GETs are unreliable RPCs: their timeout is raised from 5 ms to 200 ms (the echo
  # client's) so that a GET delayed by a preempted core is measured, not dropped.
  cargo build --release -q -p kv-example --bins
  kl_bin=target/release
  kl_ns="kl$$"; kl_pids=()
  kl_cleanup() {
    kl_cleanup_pids
    scripts/netns.sh down "$kl_ns" >/dev/null 2>&1 || true
    rm -rf /var/run/dpdk/bench-kl-$$-*   # the EAL runtime dirs of our --file-prefix
  }
  trap 'kl_cleanup; cleanup' EXIT
  scripts/netns.sh up "$kl_ns" >/dev/null
  kl_rows=()   # "stack|p50|p99|note"
  kl_p5099() { # JSON lines on stdin -> "p50|p99|completed/count", or "-|-|why"
    python3 -c '
import json, sys
rs = [json.loads(l) for l in sys.stdin.read().splitlines() if l.startswith("{")]
rs = [r for r in rs if r.get("completed", 0) > 0]
if not rs:
    print("-|-|no result")
else:
    r = rs[-1]
    lost = r.get("lost", r.get("errors", 0))
    print("%.1f|%.1f|%d/%d" % (r["p50_us"], r["p99_us"], r["completed"], r["count"]) + (" (%d lost)" % lost if lost else ""))'
  }
  kl_cleanup_pids() {
    local p
    for p in "${kl_pids[@]}"; do kill -TERM "$p" 2>/dev/null && { wait "$p" 2>/dev/null || true; }; done
    kl_pids=()
  }
  kl_wait_for() { # file pattern -> 0 once the file has the pattern (5 s at most)
    local _
    for _ in $(seq 50); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
  }
  # Kernel UDP echo, blocking and busy-polling, server in b on $core, client in a on $main_core.
  for kl_mode in blocking spin; do
    kl_flag=""; [ "$kl_mode" = spin ] && kl_flag="--spin"
    ip netns exec "$kl_ns-b" taskset -c "$core" "$kl_bin/udp-echo" server --bind 10.77.0.2:9000 --reply-size 169 $kl_flag \
      >"$work/echo.out" 2>"$work/echo.err" &
    kl_pids+=($!)
    if kl_wait_for "$work/echo.err" serving; then
      r=$(ip netns exec "$kl_ns-a" taskset -c "$main_core" "$kl_bin/udp-echo" client --server 10.77.0.2:9000 \
            --count "$kvlat_count" --warmup 1000 --size 58 --reply-size 169 $kl_flag --json 2>"$work/echo-client.err" </dev/null | kl_p5099) || true
    else
      r="-|-|echo server did not start"
    fi
    kl_rows+=("kernel UDP echo, veth ($kl_mode)|$r")
    kl_cleanup_pids
  done
  kl_port() { # backend iface-or-vdev role core [extra EAL args] -> [port] section
    case "$1" in
      afpacket) printf '[port]\nbackend = "afpacket"\niface = "%s"\n' "$2" ;;
      dpdk) printf '[port]\nbackend = "dpdk"\neal = "--no-huge -m 256 --no-pci --no-telemetry --log-level=lib.eal:error -l %s --file-prefix=bench-kl-%s-%s --vdev=%s%s"\n' "$4" "$$" "$3" "$2" "${5:+ $5}" ;;
    esac
  }
  kl_kv() { # label server-ns client-ns backend server-dev client-dev [client extra EAL args]
    local label=$1 sns=$2 cns=$3 be=$4 sdev=$5 cdev=$6 cextra=${7:-} r
    { echo "cores = [$core]"; kl_port "$be" "$sdev" server "$core"
      printf '[net]\nip = "10.77.1.2"\nudp_port = 7000\n[tables.firewall]\nrules = { alice = "allow" }\n'
      printf '[transport]\nunreliable_timeout_us = 200000\n'
    } >"$work/kl-server.toml"
    { echo "cores = [$main_core]"; kl_port "$be" "$cdev" client "$main_core" "$cextra"
      printf '[net]\nip = "10.77.1.1"\nudp_port = 7001\n[client]\nserver = "10.77.1.2:7000"\n'
      printf '[transport]\nunreliable_timeout_us = 200000\n'
    } >"$work/kl-client.toml"
    ip netns exec "$sns" "$kl_bin/kv-server" --config "$work/kl-server.toml" >"$work/kl-server.out" 2>"$work/kl-server.err" &
    kl_pids+=($!)
    if ! kl_wait_for "$work/kl-server.err" serving; then
      r="-|-|kv-server did not start: $(grep -m1 -o 'error.*' "$work/kl-server.err" | cut -c1-100)"
    else
      # A new memif client can find the server still tearing down the previous
      # process's connection (port start refused, or the session's connect lost while
      # the link comes up): such a start is retried, at most twice, and counted.
      kvc() {
        local try
        for try in 1 2 3; do
          if ip netns exec "$cns" "$kl_bin/kv-client" --config "$work/kl-client.toml" --timeout 60 --user alice \
               --value-size 128 --concurrency 1 --json "$@" 2>"$work/kl-client.err" </dev/null; then
            return 0
          fi
          grep -q "rte_eth_dev_start failed\|could not open a session" "$work/kl-client.err" || return 1
          kl_retries=$((kl_retries + 1)); sleep 0.5
        done
        return 1
      }
      kl_retries=0
      if kvc --op set --count 100 >/dev/null && kvc --op get --count 1000 >/dev/null \
         && kvc --op get --count "$kvlat_count" >"$work/kl-get.json"; then
        r=$(kl_p5099 <"$work/kl-get.json") || true
        [ "$kl_retries" -gt 0 ] && r="$r, $kl_retries client start(s) retried"
      else
        r="-|-|kv-client failed: $(grep -m1 -o 'error.*' "$work/kl-client.err" | cut -c1-100)"
      fi
    fi
    kl_cleanup_pids
    kl_rows+=("$label|$r")
  }
  kl_kv "flatrpc KV GET, veth (afpacket V2)" "$kl_ns-b" "$kl_ns-a" afpacket "$kl_ns-vb" "$kl_ns-va"
  if pkg-config --exists libdpdk 2>/dev/null; then
    kl_kv "flatrpc KV GET, veth (DPDK net_af_packet)" "$kl_ns-b" "$kl_ns-a" dpdk \
      "net_af_packet0,iface=$kl_ns-vb" "net_af_packet0,iface=$kl_ns-va"
    kl_sock="$work/memif.sock"
    kl_kv "flatrpc KV GET, net_memif" "$kl_ns-a" "$kl_ns-a" dpdk \
      "net_memif0,role=server,socket=$kl_sock" "net_memif0,role=client,socket=$kl_sock"
    # Zero-copy (client role only): the client's mempool memory is shared with the
    # server, which needs one file per memory segment list (--single-file-segments;
    # without it the probe fails with "Zero-copy doesn't support multi-file segments").
    kl_kv "flatrpc KV GET, net_memif (client zero-copy)" "$kl_ns-a" "$kl_ns-a" dpdk \
      "net_memif0,role=server,socket=$kl_sock" "net_memif0,role=client,zero-copy=yes,socket=$kl_sock" \
      --single-file-segments
  else
    kl_rows+=("flatrpc KV GET, veth (DPDK net_af_packet)|-|-|DPDK not installed")
    kl_rows+=("flatrpc KV GET, net_memif|-|-|DPDK not installed")
    kl_rows+=("flatrpc KV GET, net_memif (client zero-copy)|-|-|DPDK not installed")
  fi
  kl_cleanup
  trap cleanup EXIT
  results+=("$(python3 - "$kvlat_count" "${kl_rows[@]}" <<'PY'
import sys
count, rows = sys.argv[1], sys.argv[2:]
parsed = []
for row in rows:
    name, p50, p99, note = (row.split("|", 3) + ["-", "-", "unparsed"])[:4]
    num = lambda s: float(s) if s != "-" else None
    parsed.append((name, num(p50), num(p99), note))
kern = lambda mode: next((r for r in parsed if r[0].startswith("kernel") and mode in r[0] and r[1]), None)
refs = [kern("blocking"), kern("spin")]
num = lambda v: f"{v:7.1f}" if v is not None else f"{'-':>7}"
def ratio(v, ref, i):
    return f"{v / ref[i]:6.2f}" if v is not None and ref and ref[i] else f"{'-':>6}"
out = [f"KV GET round trip, 1 outstanding, {count} GETs (kernel echo: 58-byte datagrams, 169-byte replies)",
       f"  {'stack':<46} {'p50 us':>7} {'p99 us':>7}  {'/kernel blocking':<16} {'/kernel spin':<14} done",
       f"  {'':<46} {'':>7} {'':>7}  {'p50':>6} {'p99':>6}    {'p50':>6} {'p99':>6}"]
for name, p50, p99, note in parsed:
    b, sp = refs
    out.append(f"  {name:<46} {num(p50)} {num(p99)}  {ratio(p50, b, 1)} {ratio(p99, b, 2)}    "
               f"{ratio(p50, sp, 1)} {ratio(p99, sp, 2)}  {note}")
out.append("  (ratio = this row / the kernel UDP echo row; below 1 is faster than the kernel;"
           " load average at the end: " + open("/proc/loadavg").read().split()[0] + ")")
print("\n".join(out))
PY
)")
fi
if [ -z "$only" ] || [ "$only" = shm ]; then
  # The same KV path twice, afpacket on one veth pair, client side on core $main_core
  # and server side on core $core: (1) kv-server / kv-client engines (in-process
  # handlers and calls); (2) `dataplane run` with [host.apps] role server / client on
  # those cores with kv-server --attach and kv-client --attach as separate processes. The applications
  # are not pinned: with 2 cores they share the hosts' cores (a real host gives them
  # their own), so (2) also measures that sharing.
  cargo build --release -q -p kv-example --bins
  sb=target/release; sh_ns="sh$$"; sh_pids=()
  sh_stop() { local p; for p in "${sh_pids[@]}"; do kill -TERM "$p" 2>/dev/null && { wait "$p" 2>/dev/null || true; }; done; sh_pids=(); }
  sh_cleanup() { sh_stop; scripts/netns.sh down "$sh_ns" >/dev/null 2>&1 || true; }
  trap 'sh_cleanup; cleanup' EXIT
  scripts/netns.sh up "$sh_ns" >/dev/null
  sh_wait() { local _; for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
  printf 'cores = [%s]\n[port]\nbackend = "afpacket"\niface = "%s"\n[net]\nip = "10.77.1.2"\nudp_port = 7000\n[transport]\nunreliable_timeout_us = 200000\n[tables.firewall]\nrules = { alice = "allow" }\n' \
    "$core" "$sh_ns-vb" >"$work/sh-server.toml"
  printf 'cores = [%s]\n[port]\nbackend = "afpacket"\niface = "%s"\n[net]\nip = "10.77.1.1"\nudp_port = 7001\n[transport]\nunreliable_timeout_us = 200000\n[client]\nserver = "10.77.1.2:7000"\n' \
    "$main_core" "$sh_ns-va" >"$work/sh-client.toml"
  sh_rows=()
  sh_run() { # label client-args... (the client command, after "--json")
    local label=$1; shift
    "$@" --op set --count 200 --concurrency 1 --user alice --value-size 128 >/dev/null 2>>"$work/sh-client.err" </dev/null || true
    local lat thr
    lat=$("$@" --op get --count "$kvlat_count" --concurrency 1 --user alice --value-size 128 2>>"$work/sh-client.err" </dev/null | tail -1)
    thr=$("$@" --op set --count 20000 --concurrency 16 --user alice --value-size 128 2>>"$work/sh-client.err" </dev/null | tail -1)
    sh_rows+=("$label|$lat|$thr")
  }
  # (1) in-process
  ip netns exec "$sh_ns-b" "$sb/kv-server" --config "$work/sh-server.toml" >/dev/null 2>"$work/sh-s.err" &
  sh_pids+=($!)
  if sh_wait "$work/sh-s.err" serving; then
    sh_run "in-process (kv-server / kv-client engines)" ip netns exec "$sh_ns-a" "$sb/kv-client" --config "$work/sh-client.toml" --timeout 60 --json
  else sh_rows+=("in-process|{}|{}"); fi
  sh_stop
  # (2) host mode: dataplane run on each side, [host.apps]; idle cores yield so the
  # attached applications sharing them get the CPU promptly.
  cargo build --release -q -p flatrpc --bin dataplane
  for side in server client; do
    cp "$work/sh-$side.toml" "$work/sh-h$side.toml"
    printf '[engine]\nidle = "yield"\n[host]\ncontrol = "%s"\n[host.apps]\nsocket = "%s"\nrole = "%s"\n' \
      "$work/sh-$side-ctl.sock" "$work/sh-$side.sock" "$side" >>"$work/sh-h$side.toml"
  done
  ip netns exec "$sh_ns-b" "$sb/dataplane" run --config "$work/sh-hserver.toml" >/dev/null 2>"$work/sh-hs.err" &
  sh_pids+=($!)
  ip netns exec "$sh_ns-a" "$sb/dataplane" run --config "$work/sh-hclient.toml" >/dev/null 2>"$work/sh-hc.err" &
  sh_pids+=($!)
  if sh_wait "$work/sh-hs.err" serving && sh_wait "$work/sh-hc.err" serving; then
    "$sb/kv-server" --attach "$work/sh-server.sock" >/dev/null 2>"$work/sh-app.err" &
    sh_pids+=($!)
    sh_wait "$work/sh-app.err" attached || true
    sh_run "host mode (dataplane run + attached kv-server / kv-client)" "$sb/kv-client" --attach "$work/sh-client.sock" --timeout 60 --json
  else sh_rows+=("host mode|{}|{}"); fi
  sh_cleanup
  trap cleanup EXIT
  results+=("$(python3 - "$kvlat_count" "${sh_rows[@]}" <<'PY'
import json, sys
count, rows = sys.argv[1], sys.argv[2:]
def parse(s):
    try:
        return json.loads(s)
    except ValueError:
        return {}
parsed = []
for row in rows:
    name, lat, thr = (row.split("|", 2) + ["{}", "{}"])[:3]
    parsed.append((name, parse(lat), parse(thr)))
out = [f"KV over shared memory vs in-process, same veth path ({count} GETs one outstanding; 20000 SETs, 16 outstanding)",
       f"  {'mode':<56} {'p50 us':>7} {'p99 us':>7} {'SET/s':>9}"]
for name, lat, thr in parsed:
    out.append(f"  {name:<56} {lat.get('p50_us', float('nan')):7.1f} {lat.get('p99_us', float('nan')):7.1f} {thr.get('rps', float('nan')):9.0f}")
if len(parsed) == 2:
    (_, l0, t0), (_, l1, t1) = parsed
    if l0.get("p50_us") and l1.get("p50_us"):
        added = l1["p50_us"] - l0["p50_us"]
        out.append(f"  added to the median: {added:.1f} us ({'meets' if added <= 1.5 else 'BELOW'} target <= 1.5 us)")
    if t0.get("rps") and t1.get("rps"):
        r = t1["rps"] / t0["rps"]
        out.append(f"  throughput ratio: {r:.2f} ({'meets' if r >= 0.7 else 'BELOW'} target >= 0.7)")
out.append("  (load average at the end: " + open("/proc/loadavg").read().split()[0] + ")")
print("\n".join(out))
PY
)")
  results+=("$(cargo bench -q -p flatrpc --no-default-features --bench shm 2>/dev/null | sed 's/^/  /' | sed '1i shm channel microbenchmark (dataplane thread <-> attached app thread, 64-byte echo)')")
  results+=("$(cargo bench -q -p flatrpc --no-default-features --bench kv_path 2>/dev/null)")
fi
if [ -z "$only" ] || [ "$only" = kvpcap ]; then
  # The KV server pipeline (firewall + session tracker + transport + store, answering
  # every request) on net_pcap,infinite_rx=1 replaying a kv-pcap recording (Connect,
  # confirmation, 1024 GETs or 1024 loopable reliable-ordered SETs; see
  # examples/kv/src/replay.rs), against testpmd macswap on the same pcap and core.
  # Figures: kv-server's mean per-second RPC rate (handler executions, each answered)
  # after its first period; testpmd's mean Rx-pps. Each op runs twice: with full UDP
  # checksums (the headline figure, against the target), then with
  # `[net] udp_checksum = "zero"` and a pcap of requests without checksums (what a
  # client and server both configured so exchange), labelled as such. The full-checksum
  # runs also print two references: testpmd's csum forwarding on the same pcap, and
  # kv-server on the pure-Rust pcap backend (`[port] backend = "pcap"`).
  cargo build --release -q -p kv-example --bin kv-server --bin kv-pcap
  kv_rps() { # pcap udp_checksum dpdk|pcap [kv-server args...] -> mean rps
    local log="$work/kv-server.log" port
    if [ "$3" = dpdk ]; then
      port="backend = \"dpdk\"
eal = \"--no-huge -m 512 --no-pci --no-telemetry --file-prefix=bench-kv-$$ -l $main_core --vdev=net_pcap0,rx_pcap=$1,infinite_rx=1\""
    else
      port="backend = \"pcap\"
pcap = \"$1\""
    fi
    cat >"$work/kv.toml" <<EOF
cores = [$core]
[port]
$port
[net]
ip = "10.77.1.2"
udp_port = 7000
mac = "02:00:00:77:01:02"
neighbors = [{ ip = "10.77.1.1", mac = "02:00:00:77:01:01" }]
udp_checksum = "$2"
[transport]
tag_seed = 1
[tables.firewall]
rules = { alice = "allow" }
EOF
    timeout -s INT "$((secs + 3))" target/release/kv-server --config "$work/kv.toml" \
      --stats-period 1 "${@:4}" </dev/null >/dev/null 2>"$log" || true
    grep -h "kv-server: error" "$log" >&2 || true
    awk '/ rps / {n++; for (i = 1; i < NF; i++) if ($i == "rps") v = $(i + 1); if (n > 1) {t += v; k++}}
         END {if (k > 0) printf "%.0f\n", t / k; else print 0}' "$log"
  }
  report_kv() { # name ours theirs target [csum-fwd rust-pcap-port]
    python3 - "$@" <<'PY'
import sys
name, ours, theirs, target = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ratio = ours / theirs if theirs > 0 else float("nan")
verdict = "meets" if ratio >= target else "BELOW"
print(f"{name:<52} kv-server {ours/1e6:7.2f} Mrps   testpmd {theirs/1e6:8.2f} Mpps   ratio {ratio:5.2f} ({verdict} target {target})")
if len(sys.argv) > 6:
    csum, rust = float(sys.argv[5]), float(sys.argv[6])
    r = csum / theirs if theirs > 0 else float("nan")
    print(f"{'':<4}testpmd csum (its own header parse + software checksums, no RPC work) {csum/1e6:6.2f} Mpps = {r:4.2f} of macswap")
    print(f"{'':<4}kv-server on the pure-Rust pcap backend (no DPDK)                   {rust/1e6:6.2f} Mrps")
PY
  }
  for op in get set; do
    for csum in full zero; do
      pcap="$work/kv-$op-$csum.pcap"
      target/release/kv-pcap --op "$op" --count 1024 --tag-seed 1 --user alice \
        --udp-checksum "$csum" --out "$pcap" 2>/dev/null
      tp=$(testpmd_pps --vdev="net_pcap0,rx_pcap=$pcap,infinite_rx=1" -- --forward-mode=macswap --port-topology=loop)
      # GETs hit: the store starts with the 64 keys (32-byte values) the pcap names.
      preload=()
      [ "$op" = get ] && preload=(--preload 64 --preload-value-size 32)
      us=$(kv_rps "$pcap" "$csum" dpdk "${preload[@]}")
      label="full UDP csum"
      [ "$csum" = zero ] && label="udp_checksum=zero"
      # References with full checksums: testpmd's csum engine (parses the headers and
      # computes the IPv4 and UDP checksums in software, as net_pcap offers no offload:
      # the least any UDP server must do per packet here), and kv-server on the pure-Rust
      # replay port (the same pipeline without the PMD).
      refs=()
      if [ "$csum" = full ]; then
        refs+=("$(testpmd_pps --vdev="net_pcap0,rx_pcap=$pcap,infinite_rx=1" -- --forward-mode=csum --port-topology=loop)")
        refs+=("$(kv_rps "$pcap" "$csum" pcap "${preload[@]}")")
      fi
      if [ "$op" = get ]; then
        results+=("$(report_kv "KV GET (unreliable), pcap, $label" "$us" "$tp" 0.6 "${refs[@]}")")
      else
        results+=("$(report_kv "KV SET (reliable-ordered), pcap, $label" "$us" "$tp" 0.4 "${refs[@]}")")
      fi
    done
  done
fi

if [ -z "$only" ] || [ "$only" = rpc ]; then
  source scripts/bench-rpc.sh
fi

echo
echo "== flatrpc backend benchmarks ($(date -u +%Y-%m-%d), ${secs}s each, forwarding core $core)"
printf '%s\n' "${results[@]}"
