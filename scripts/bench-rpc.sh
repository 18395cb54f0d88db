# The `rpc` section of scripts/bench.sh (sourced by it; not run on its own): the RPC
# tax, side by side, on one veth pair made by scripts/netns.sh.
#
#   namespace a (client side, core $main_core)      namespace b (server side, core $core)
#   kernel 10.77.0.1, flatrpc 10.77.1.1      veth   kernel 10.77.0.2, flatrpc 10.77.1.2
#
# Stacks (every one answers KV RPCs with the user checked by a firewall, except the
# kernel echo, which is the floor):
#   kernel UDP echo       udp-echo (busy-polling) with a KV GET's datagram sizes
#   gRPC direct           grpc-kv server (tonic, firewall + session counting in the app)
#   gRPC + HAProxy        client -> haproxy (a, HTTP/2) -> haproxy (b, HTTP/2, x-user ACL)
#                         -> grpc-kv server --no-firewall on b's loopback
#   flatrpc afpacket / DPDK net_af_packet / DPDK net_memif
#                         rpcbench rpc-server / rpc-client (generated KV chain)
# Per stack: a latency run (1 session, 1 outstanding, GETs of 64 B values), a
# throughput run (4 sessions x 16 outstanding), and for gRPC and flatrpc afpacket a
# latency sweep over value sizes 1 KiB, 16 KiB, 64 KiB: GETs (the response carries the
# value) and SETs (the request carries it; reliable-ordered in flatrpc).
# CPU per RPC: user+system time of every process of the stack (client, server,
# proxies) over the client's whole life (start-up, fill, warm-up included), from the
# client's rusage and /proc/PID/stat deltas of the others, divided by every RPC the
# client completed in that life.
#
# Inputs from bench.sh: core, main_core, rpc_secs, work, RPCBENCH, results (array).

cargo build --release -q -p kv-example --bin udp-echo
cargo build --release -q -p grpc-kv -p rpc-report
rb_bin=target/release
rb_ns="rb$$"; rb_pids=(); rb_side=()
rb_runs="$work/runs.jsonl"; : >"$rb_runs"
rb_tck=$(getconf CLK_TCK)
rb_cleanup() {
  rb_stop_all
  scripts/netns.sh down "$rb_ns" >/dev/null 2>&1 || true
  rm -rf /var/run/dpdk/bench-rb-$$-*
}
trap 'rb_cleanup; cleanup' EXIT
scripts/netns.sh up "$rb_ns" >/dev/null

rb_stop_all() {
  local p
  for p in "${rb_pids[@]}"; do kill -TERM "$p" 2>/dev/null && { wait "$p" 2>/dev/null || true; }; done
  rb_pids=(); rb_side=()
}
rb_wait_for() { # file pattern -> 0 once the file has the pattern (10 s at most)
  local _
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
rb_ticks() { # CPU ticks (utime+stime) of the server-side PIDs in rb_side
  local p t=0 f
  for p in "${rb_side[@]}"; do
    f=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || f=0
    t=$((t + ${f:-0}))
  done
  echo "$t"
}
# rb_client STACK ROLE MODE SIZE -- command...: runs the client, adds one record.
rb_client() {
  local stack=$1 role=$2 mode=$3 size=$4; shift 5
  local t0 t1 out="$work/rb-client.json" cpu="$work/rb-client.cpu"
  local try
  # A new memif client can find the server still tearing down the previous client's
  # connection (port start refused, or the session's connect lost while the link comes
  # up): such a start is retried, at most twice, and said so.
  for try in 1 2 3; do
    t0=$(rb_ticks)
    python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[2:], stdin=subprocess.DEVNULL)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%f\n" % (u.ru_utime + u.ru_stime))
sys.exit(r.returncode)' "$cpu" "$@" >"$out" 2>"$work/rb-client.err" || true
    t1=$(rb_ticks)
    grep -q '^{' "$out" && break
    grep -q "rte_eth_dev_start failed\|could not open" "$work/rb-client.err" || break
    echo "  $stack $mode $size B: client start retried ($(grep -m1 -o 'error.*' "$work/rb-client.err" | cut -c1-80))" >&2
    sleep 0.5
  done
  grep -q '^{' "$out" || echo "  $stack $mode $size B: client failed: $(grep -m1 -o 'error.*' "$work/rb-client.err" | cut -c1-120)" >&2
  python3 - "$stack" "$role" "$mode" "$size" "$out" "$cpu" "$(( t1 - t0 ))" "$rb_tck" "$rb_runs" <<'PY' || true
import json, sys
stack, role, mode, size, out, cpu, ticks, tck, runs = sys.argv[1:]
lines = [l for l in open(out).read().splitlines() if l.startswith("{")]
if not lines:
    print(f"bench.sh rpc: {stack} {mode} {size} B: no result", file=sys.stderr); sys.exit(0)
r = json.loads(lines[-1])
try:
    client_cpu = float(open(cpu).read())
except (OSError, ValueError):
    client_cpu = None
completed = r.get("completed", 0)
errors = r.get("errors", r.get("lost", 0))
total = r.get("completed_total", completed)
rec = {
    "stack": stack, "role": role, "mode": mode, "op": r.get("op", "get"), "size": int(size),
    "sessions": r.get("sessions", 1), "window": r.get("window", 1),
    "completed": completed, "errors": errors, "rps": r.get("rps", 0.0),
    "p50_us": r["p50_us"], "p90_us": r["p90_us"], "p99_us": r["p99_us"], "p999_us": r["p999_us"],
    "stack_cpu_s": (client_cpu + int(ticks) / int(tck)) if client_cpu is not None else None,
    "stack_rpcs": total + errors,
    "cdf": r.get("cdf", []),
}
open(runs, "a").write(json.dumps(rec) + "\n")
cpu_txt = "%.1f" % (rec["stack_cpu_s"] * 1e6 / rec["stack_rpcs"]) if rec["stack_cpu_s"] and rec["stack_rpcs"] else "-"
print(f"  {stack:<34} {mode:<10} {rec['op']:<3} {size:>6} B  p50 {r['p50_us']:8.1f} us  p99 {r['p99_us']:8.1f} us  "
      f"{r.get('rps', 0) / 1e6:7.3f} Mrps  CPU {cpu_txt} us/RPC  ({completed} ok, {errors} failed)", file=sys.stderr)
PY
}
rb_in_a() { echo ip netns exec "$rb_ns-a" taskset -c "$main_core"; }
rb_serve() { # ns core log command... -> starts a server-side process, records its PID
  local ns=$1 c=$2 log=$3; shift 3
  ip netns exec "$ns" taskset -c "$c" "$@" >"$log.out" 2>"$log" </dev/null &
  rb_pids+=($!); rb_side+=($!)
}
rb_common=(--duration "$rpc_secs" --warmup 0.3 --timeout 60 --json)
rb_sweep=(1024 16384 65536)

echo "== rpc: the RPC tax, side by side (${rpc_secs}s per run)" >&2
# 1. Kernel UDP echo: a 64-byte-value GET's datagrams (58-byte request, 105-byte reply).
rb_serve "$rb_ns-b" "$core" "$work/echo.err" "$rb_bin/udp-echo" server --bind 10.77.0.2:9000 --reply-size 105 --spin
if rb_wait_for "$work/echo.err" serving; then
  rb_client "kernel UDP echo (busy-poll)" kernel latency 64 -- $(rb_in_a) "$rb_bin/udp-echo" client \
    --server 10.77.0.2:9000 --count 30000 --warmup 2000 --size 58 --reply-size 105 --spin --json
fi
rb_stop_all

# 2. gRPC direct, and 3. gRPC through two HAProxy sidecars.
rb_grpc() { # stack role url
  local stack=$1 role=$2 url=$3 s
  rb_client "$stack" "$role" latency 64 -- $(rb_in_a) "$rb_bin/grpc-kv" client --server "$url" "${rb_common[@]}"
  rb_client "$stack" "$role" throughput 64 -- $(rb_in_a) "$rb_bin/grpc-kv" client --server "$url" \
    --sessions 4 --window 16 "${rb_common[@]}"
  for s in "${rb_sweep[@]}"; do
    rb_client "$stack" "$role" latency "$s" -- $(rb_in_a) "$rb_bin/grpc-kv" client --server "$url" --size "$s" "${rb_common[@]}"
  done
  for s in 64 "${rb_sweep[@]}"; do
    rb_client "$stack" "$role" latency "$s" -- $(rb_in_a) "$rb_bin/grpc-kv" client --server "$url" --op set --size "$s" "${rb_common[@]}"
  done
}
rb_serve "$rb_ns-b" "$core" "$work/grpc.err" "$rb_bin/grpc-kv" server --listen 10.77.0.2:8000 --deny mallory
if rb_wait_for "$work/grpc.err" "serving on"; then
  rb_grpc "gRPC (tonic) direct" grpc http://10.77.0.2:8000
else
  echo "bench.sh rpc: grpc-kv server did not start: $(tail -1 "$work/grpc.err")" >&2
fi
rb_stop_all
if command -v haproxy >/dev/null; then
  "$rb_bin/grpc-kv" sidecar-config --listen 127.0.0.1:8001 --upstream 10.77.0.2:8002 >"$work/hc.cfg"
  "$rb_bin/grpc-kv" sidecar-config --listen 10.77.0.2:8002 --upstream 127.0.0.1:8003 --deny mallory >"$work/hs.cfg"
  rb_serve "$rb_ns-b" "$core" "$work/grpc.err" "$rb_bin/grpc-kv" server --listen 127.0.0.1:8003 --no-firewall
  rb_serve "$rb_ns-b" "$core" "$work/hs.err" haproxy -db -f "$work/hs.cfg"
  # The client-side sidecar shares the client's namespace and core; its CPU counts too.
  rb_serve "$rb_ns-a" "$main_core" "$work/hc.err" haproxy -db -f "$work/hc.cfg"
  if rb_wait_for "$work/grpc.err" "serving on"; then
    sleep 0.3
    rb_grpc "gRPC + HAProxy sidecars" sidecar http://127.0.0.1:8001
  fi
  rb_stop_all
else
  echo "bench.sh rpc: haproxy not installed (scripts/setup.sh): no sidecar stack" >&2
fi

# 4. flatrpc: rpcbench rpc-server / rpc-client with the generated KV chain.
rb_port() { # backend iface-or-vdev role core [extra EAL args] -> [port] section
  case "$1" in
    afpacket) printf '[port]\nbackend = "afpacket"\niface = "%s"\n' "$2" ;;
    dpdk) printf '[port]\nbackend = "dpdk"\neal = "--no-huge -m 256 --no-pci --no-telemetry --log-level=lib.eal:error -l %s --file-prefix=bench-rb-%s-%s --vdev=%s%s"\n' "$4" "$$" "$3" "$2" "${5:+ $5}" ;;
  esac
}
rb_flatrpc() { # stack server-ns client-ns backend server-dev client-dev sweep?
  local stack=$1 sns=$2 cns=$3 be=$4 sdev=$5 cdev=$6 sweep=$7 s
  { echo "cores = [$core]"; rb_port "$be" "$sdev" server "$core"
    printf '[net]\nip = "10.77.1.2"\nudp_port = 7000\n[tables.firewall]\nrules = { alice = "allow", mallory = "deny" }\n'
    printf '[transport]\nunreliable_timeout_us = 200000\n'
  } >"$work/rb-server.toml"
  { echo "cores = [$main_core]"; rb_port "$be" "$cdev" client "$main_core"
    printf '[net]\nip = "10.77.1.1"\nudp_port = 7001\n[client]\nserver = "10.77.1.2:7000"\n'
    printf '[transport]\nunreliable_timeout_us = 200000\n'
  } >"$work/rb-client.toml"
  ip netns exec "$sns" "$RPCBENCH" rpc-server --config "$work/rb-server.toml" --json \
    >"$work/rb-server.out" 2>"$work/rb-server.err" </dev/null &
  rb_pids+=($!); rb_side+=($!)
  if ! rb_wait_for "$work/rb-server.err" serving; then
    echo "bench.sh rpc: $stack: rpc-server did not start: $(grep -m1 -o 'error.*' "$work/rb-server.err")" >&2
    rb_stop_all; return
  fi
  local client=(ip netns exec "$cns" "$RPCBENCH" rpc-client --config "$work/rb-client.toml" "${rb_common[@]}")
  rb_client "$stack" flatrpc latency 64 -- "${client[@]}"
  rb_client "$stack" flatrpc throughput 64 -- "${client[@]}" --sessions 4 --window 16
  if [ "$sweep" = sweep ]; then
    for s in "${rb_sweep[@]}"; do rb_client "$stack" flatrpc latency "$s" -- "${client[@]}" --size "$s"; done
    for s in 64 "${rb_sweep[@]}"; do rb_client "$stack" flatrpc latency "$s" -- "${client[@]}" --op set --size "$s"; done
  fi
  rb_stop_all
}
rb_flatrpc "flatrpc afpacket" "$rb_ns-b" "$rb_ns-a" afpacket "$rb_ns-vb" "$rb_ns-va" sweep
if pkg-config --exists libdpdk 2>/dev/null; then
  rb_flatrpc "flatrpc DPDK net_af_packet" "$rb_ns-b" "$rb_ns-a" dpdk \
    "net_af_packet0,iface=$rb_ns-vb" "net_af_packet0,iface=$rb_ns-va" no
  rb_flatrpc "flatrpc DPDK net_memif" "$rb_ns-a" "$rb_ns-a" dpdk \
    "net_memif0,role=server,socket=$work/rb-memif.sock" "net_memif0,role=client,socket=$work/rb-memif.sock" no
fi

mkdir -p benches/results
{
  echo "Measured $(date -u +%Y-%m-%d) with \`scripts/bench.sh --only rpc\` (${rpc_secs} s measured per run, release build)"
  echo "on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), shared with other work;"
  echo "server side on core $core, client side on core $main_core; load average at the end: $(cut -d' ' -f1 /proc/loadavg)."
  echo "Raw records: runs.jsonl."
  echo
} >"$work/preamble.md"
cp "$rb_runs" benches/results/runs.jsonl
"$rb_bin/rpc-report" --input "$rb_runs" --out benches/results --preamble "$work/preamble.md" 2>&1 | sed 's/^/  /' >&2 || true
results+=("$(cat benches/results/rpc.md 2>/dev/null || echo 'rpc: no report')")
rb_cleanup
trap cleanup EXIT
