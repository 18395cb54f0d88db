#!/usr/bin/env bash
# The main job: the seed's KV service on the flatrpc dataplane, end to end.
#
#   scripts/run.sh [--mode inprocess|host] [--backend dpdk|afpacket] [--count N]
#                  [--concurrency C]
#
# Makes two network namespaces joined by a veth pair (scripts/netns.sh), serves the KV
# service in one (firewall + session tracker; alice allowed, bob denied, others
# unknown = denied) and drives kv-client from the other: reliable-ordered SETs,
# unreliable GETs that read them back, and GETs as bob and mallory that the firewall
# refuses. Prints throughput, latency and the ANF counters, then tears everything down.
# --mode inprocess (default): kv-server and kv-client each own their port and core.
# --mode host: a `dataplane run` host process in each namespace owns the port and core;
# kv-server and kv-client are separate application processes attached to them over
# shared memory ([host.apps]); the server-side dataplane runs the ANF chain.
# The backend is DPDK's net_af_packet when DPDK is installed, else the pure-Rust
# AF_PACKET backend. Needs root (namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

backend=""; count=2000; conc=8; mode=inprocess
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) mode="$2"; shift 2 ;;
    --backend) backend="$2"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    --concurrency) conc="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root (network namespaces)" >&2; exit 1; }

scripts/setup.sh >/dev/null
if [ -z "$backend" ]; then
  if pkg-config --exists libdpdk 2>/dev/null; then backend=dpdk; else backend=afpacket; fi
fi
case "$mode" in
  inprocess|host) ;;
  *) echo "run.sh: --mode is inprocess or host, not $mode" >&2; exit 2 ;;
esac
case "$backend" in
  dpdk) features="" ;;
  afpacket) features="--no-default-features" ;;
  *) echo "run.sh: --backend is dpdk or afpacket, not $backend" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
cargo build --release -q -p kv-example --bins $features
# shellcheck disable=SC2086
[ "$mode" = host ] && cargo build --release -q -p flatrpc --bin dataplane $features
bin=target/release

ns="kv$$"
work=$(mktemp -d /tmp/flatrpc-run.XXXXXX)
server_pid=""; pids=()
cleanup() {
  [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  scripts/netns.sh down "$ns" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
scripts/netns.sh up "$ns" >/dev/null

# The dataplane's addresses (10.77.1.x) are not the kernel's (10.77.0.x on the same
# veths), so the kernel neither answers ARP nor sends port-unreachables for them.
port_section() { # iface role core
  if [ "$backend" = dpdk ]; then
    printf '[port]\nbackend = "dpdk"\neal = "--no-huge -m 256 --no-pci --no-telemetry --log-level=lib.eal:error -l %s --file-prefix=flatrpc-%s-%s --vdev=net_af_packet0,iface=%s"\n' "$3" "$ns" "$2" "$1"
  else
    printf '[port]\nbackend = "afpacket"\niface = "%s"\n' "$1"
  fi
}
{ echo "cores = [1]"; port_section "$ns-vb" server 1
  printf '[net]\nip = "10.77.1.2"\nudp_port = 7000\n[tables.firewall]\nrules = { alice = "allow", bob = "deny" }\n'
} >"$work/server.toml"
{ echo "cores = [0]"; port_section "$ns-va" client 0
  printf '[net]\nip = "10.77.1.1"\nudp_port = 7001\n[client]\nserver = "10.77.1.2:7000"\n'
} >"$work/client.toml"

# waits (bounded) for a line matching $2 in file $1
wait_for() {
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  cat "$1" >&2; echo "run.sh: '$2' not seen in $1" >&2; exit 1
}

if [ "$mode" = inprocess ]; then
  echo "== flatrpc KV service, backend $backend, namespaces $ns-a (client) and $ns-b (server)"
  ip netns exec "$ns-b" "$bin/kv-server" --config "$work/server.toml" >"$work/server.out" 2>"$work/server.err" &
  server_pid=$!
  wait_for "$work/server.err" serving
  client() { ip netns exec "$ns-a" "$bin/kv-client" --config "$work/client.toml" --timeout 60 "$@"; }
else
  # The applications share the cores with the two polling dataplanes here, so idle
  # dataplane cores yield (`[engine] idle = "yield"`); on a host with spare cores for the
  # applications, leave the default (spin).
  for side in server client; do
    printf '[engine]\nidle = "yield"\n[host]\ncontrol = "%s"\n[host.apps]\nsocket = "%s"\nrole = "%s"\n' \
      "$work/$side-ctl.sock" "$work/$side-apps.sock" "$side" >>"$work/$side.toml"
  done
  echo "== flatrpc KV service in host mode, backend $backend: dataplane run in $ns-a (client"
  echo "   side) and $ns-b (server side); kv-server and kv-client attach over shared memory"
  ip netns exec "$ns-b" "$bin/dataplane" run --config "$work/server.toml" >"$work/server.out" 2>"$work/server.err" &
  server_pid=$!
  ip netns exec "$ns-a" "$bin/dataplane" run --config "$work/client.toml" >"$work/chost.out" 2>"$work/chost.err" &
  pids+=($!)
  wait_for "$work/server.err" serving
  wait_for "$work/chost.err" serving
  "$bin/kv-server" --attach "$work/server-apps.sock" >"$work/app.out" 2>"$work/app.err" &
  pids+=($!)
  wait_for "$work/app.err" "attached as channel"
  client() { "$bin/kv-client" --attach "$work/client-apps.sock" --timeout 60 "$@"; }
fi

echo "-- SET x$count as alice (reliable, ordered), $conc outstanding"
client --op set --count "$count" --concurrency "$conc" --user alice --value-size 128
echo "-- GET x$count as alice (unreliable): reads back every value"
client --op get --count "$count" --concurrency "$conc" --user alice --value-size 128
echo "-- GET x$count as alice, one at a time (latency)"
client --op get --count "$count" --concurrency 1 --user alice --value-size 128
echo "-- GET x100 as bob (denied by a rule) and as mallory (not listed: denied)"
client --op get --count 100 --user bob || true
client --op get --count 100 --user mallory || true

if [ "$mode" = host ]; then
  echo "-- server-side dataplane (dataplane stats)"
  sleep 0.3 # cores publish their counters every 100 ms
  "$bin/dataplane" stats --control "$work/server-ctl.sock"
fi
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
if [ "$mode" = inprocess ]; then
  echo "-- kv-server (SIGTERM)"
  cat "$work/server.out"
fi
